// Progressive enhancement only: every page works without this file.
// A select marked data-autosubmit submits its form when it changes.
document.addEventListener("change", function (ev) {
  var el = ev.target;
  if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
    el.form.submit();
  }
});
