package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// chromiumPath finds Debian's Chromium. Without it the browser test is
// skipped on a developer machine and fails under CI=true (.ci/run installs
// it).
func chromiumPath(t *testing.T) string {
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium); CI runs the browser test")
	}
	t.Skip("chromium is not installed; apt-get install chromium to run the browser test")
	return ""
}

// TestBrowser drives the UI in headless Chromium against a real registry
// whose data was created through the API: a wrong token is refused, a
// read token signs in, every page opens by following links, the versions
// table sorts, the chart's metric select submits (app.js under the CSP),
// a description <script>alert(1)</script> shows as text and never runs,
// and no page writes an error to the console. Screenshots go to the
// test's artefact directory (go test -artifacts -run TestBrowser
// ./internal/ui/ keeps them); the two README shows are also written to
// $MLREGISTRY_UI_SCREENSHOTS when set, so
// MLREGISTRY_UI_SCREENSHOTS=$PWD/docs/images refreshes them.
func TestBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	reg := apptest.Start(t)
	seed(t, reg)
	admin := reg.AdminToken
	for i := range 10 {
		api(t, reg, "POST", "/api/v1/models/churn/versions", admin, map[string]any{
			"source": fmt.Sprintf("s3://models/churn/%d/model.onnx", i+6), "checksum": checksum(fmt.Sprint("more", i)), "format": "onnx",
			"metrics": map[string]float64{"auc": 0.85 + float64(i%4)/50, "f1": 0.6 + float64(i)/40},
		}, http.StatusCreated)
	}
	api(t, reg, "PUT", "/api/v1/models/churn/stages/staging", admin, map[string]any{"version": 14, "reason": "nightly retrain"}, http.StatusOK)
	// Real upstreams, so the endpoint page shows traffic in the guard
	// window: the canary fails every request.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"p":0.1}`) }))
	t.Cleanup(ok.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }))
	t.Cleanup(bad.Close)
	// With a rollout, the weight change starts one: its first step (half
	// of the way, 85/15) holds on the test's clock.
	api(t, reg, "PATCH", "/api/v1/endpoints/churn", admin, map[string]any{"rollout": map[string]any{"steps": []int{50, 100}, "bake": "5m"}}, http.StatusOK)
	api(t, reg, "PATCH", "/api/v1/endpoints/churn", admin, map[string]any{"routes": []map[string]any{
		{"name": "stable", "version": 2, "upstream_url": ok.URL, "weight": 80},
		{"name": "canary", "version": 4, "upstream_url": bad.URL, "weight": 20},
	}}, http.StatusOK)
	for i := range 30 {
		req, _ := http.NewRequest("POST", reg.URL+"/serve/churn/predict", strings.NewReader(`{"x":[1]}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("X-Request-ID", fmt.Sprint("b", i))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	read := reg.Token(t, "alice", registry.ScopeRead)

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)

	// Start the browser, then listen to the console (console API calls,
	// uncaught exceptions, browser log entries such as CSP violations)
	// and to dialogs for the whole session.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var (
		mu       sync.Mutex
		problems []string
		dialogs  []string
		where    = "start"
	)
	messages := chromedp.Console(ctx)
	opened := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleWarning && !m.IsException() {
				continue
			}
			mu.Lock()
			// The refused login is answered 401 on purpose; Chromium logs
			// any 4xx document as a failed load.
			if expected := where == "wrong token" && m.Source == "network" && strings.Contains(m.Text, "401"); !expected {
				problems = append(problems, fmt.Sprintf("[%s] %s %s: %s (%s)", where, m.Type, m.Source, m.Text, m.URL))
			}
			mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range opened {
			if err != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, ev.Message)
			mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	step := func(name string) {
		mu.Lock()
		where = name
		mu.Unlock()
		t.Log("step:", name)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
	}
	// follow clicks something that loads a new page and waits for it.
	follow := func(sel chromedp.CSS) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(sel)))
		must(err)
	}
	eval := func(expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		must(err)
		return s
	}
	path := func() string { return eval(`location.pathname + location.search`) }
	readmeDir := os.Getenv("MLREGISTRY_UI_SCREENSHOTS")
	readmeShots := map[string]bool{"ui-model.png": true, "ui-endpoint.png": true}
	screenshot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		must(err)
		must(os.WriteFile(filepath.Join(t.ArtifactDir(), name), buf, 0o644))
		if readmeDir != "" && readmeShots[name] {
			must(os.WriteFile(filepath.Join(readmeDir, name), buf, 0o644))
		}
	}

	step("signed out")
	must(chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/models/churn")))
	if p := path(); !strings.HasPrefix(p, "/ui/login?next=") {
		t.Fatalf("signed out, /ui/models/churn went to %s", p)
	}

	step("wrong token")
	must(chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), "mlr_notarealtoken")))
	follow("#signin")
	if msg := eval(`document.getElementById("login-error").textContent`); !strings.Contains(msg, "not valid") {
		t.Errorf("wrong token: message %q", msg)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{reg.URL + "/ui/"}})
	must(err)
	if len(cookies.Cookies) != 0 {
		t.Errorf("a wrong token got cookies: %+v", cookies.Cookies)
	}

	step("sign in")
	must(chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), read)))
	follow("#signin")
	if p := path(); p != "/ui/models/churn" {
		t.Fatalf("after sign-in: %s, want the page asked for", p)
	}
	cookies, err = chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{reg.URL + "/ui/"}})
	must(err)
	if len(cookies.Cookies) != 1 || !cookies.Cookies[0].HTTPOnly || cookies.Cookies[0].SameSite != network.CookieSameSiteStrict {
		t.Errorf("session cookie: %+v", cookies.Cookies)
	}
	if eval(`document.cookie`) != "" {
		t.Error("script can read the session cookie")
	}

	step("model page")
	if got := eval(`document.getElementById("model-description").textContent`); got != xss {
		t.Errorf("description shows %q, want the text %q", got, xss)
	}
	if n := eval(`String(document.querySelectorAll("main script").length)`); n != "0" {
		t.Errorf("%s script elements in the page body", n)
	}
	versions := func() []string {
		return strings.Fields(eval(`Array.from(document.querySelectorAll("#versions .version-link")).map(a => a.textContent).join(" ")`))
	}
	if v := versions(); len(v) != 15 || v[0] != "v15" || v[14] != "v1" {
		t.Errorf("versions, newest first: %v", v)
	}
	if eval(`String(document.querySelectorAll("#versions tr.flagged").length)`) != "1" {
		t.Error("the flagged version is not marked")
	}
	if eval(`String(document.querySelectorAll("#chart circle").length)`) != "15" {
		t.Error("chart does not plot 15 versions")
	}
	screenshot("ui-model.png")

	step("sort by version")
	follow("#sort-version")
	if v := versions(); len(v) != 15 || v[0] != "v1" || v[14] != "v15" {
		t.Errorf("sorted by version ascending: %v", v)
	}
	step("sort by auc")
	follow(`#versions a[data-metric="auc"]`)
	aucs := strings.Fields(eval(`Array.from(document.querySelectorAll("#versions tbody tr")).map(r => r.children[4].textContent.trim()).join(" ")`))
	if len(aucs) != 15 || !slices.IsSorted(aucs) {
		t.Errorf("sorted by auc ascending: %v", aucs)
	}
	follow(`#versions a[data-metric="auc"]`)
	aucs = strings.Fields(eval(`Array.from(document.querySelectorAll("#versions tbody tr")).map(r => r.children[4].textContent.trim()).join(" ")`))
	if len(aucs) != 15 || !slices.IsSortedFunc(aucs, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("sorted by auc descending: %v", aucs)
	}

	step("chart metric select")
	_, err = chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.getElementById("metric"); s.value = "f1"; s.dispatchEvent(new Event("change", {bubbles: true})); })()`)))
	must(err)
	if p := path(); !strings.Contains(p, "metric=f1") || !strings.Contains(p, "sort=metrics.auc+desc") {
		t.Errorf("metric select submitted %s", p)
	}

	step("version page")
	follow(`#versions a.version-link[href$="/versions/3"]`)
	if p := path(); p != "/ui/models/churn/versions/3" {
		t.Fatalf("version link went to %s", p)
	}
	if got := eval(`document.getElementById("flag-reason").textContent`); got != "Flagged: label leak "+xss {
		t.Errorf("flag reason %q", got)
	}
	follow(`#crumb-model`)
	follow(`#versions a.version-link[href$="/versions/2"]`)
	if held := eval(`document.getElementById("held").textContent`); !strings.Contains(held, "production") || !strings.Contains(held, "staging") {
		t.Errorf("v2 held %q, want production and staging", held)
	}
	if got := eval(`document.querySelector("#lineage tr:nth-child(3) td").textContent`); got != xss {
		t.Errorf("lineage dataset %q", got)
	}
	if n := eval(`String(document.querySelectorAll("#events tbody tr").length)`); n == "0" || n == "1" {
		t.Errorf("v2 shows %s events, want its create and stage changes", n)
	}
	if href := eval(`document.getElementById("api-link").getAttribute("href")`); href != "/api/v1/models/churn/versions/2" {
		t.Errorf("API link %q", href)
	}
	screenshot("ui-version.png")

	step("audit log of the model")
	follow(`#crumb-model`)
	follow(`#model-events`)
	if p := path(); p != "/ui/events?model=churn" {
		t.Errorf("model events link went to %s", p)
	}
	if n := eval(`String(document.querySelectorAll("#events tbody tr").length)`); n == "0" {
		t.Error("no events for churn")
	}
	step("audit log by actor")
	must(chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#event-filters input[name="actor"]`), "nobody")))
	_, err = chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Submit(chromedp.CSS(`#event-filters input[name="actor"]`))))
	must(err)
	if txt := eval(`document.querySelector("#events tbody").textContent`); !strings.Contains(txt, "No events") {
		t.Errorf("actor nobody shows events: %q", txt)
	}
	step("event subject link")
	must(chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/events?model=churn")))
	follow(`#events a.subject[href="/ui/models/churn/versions/1"]`)
	if p := path(); p != "/ui/models/churn/versions/1" {
		t.Errorf("event subject link went to %s", p)
	}

	step("endpoints")
	follow(`header nav a[href="/ui/endpoints"]`)
	follow(`a.endpoint-link`)
	if p := path(); p != "/ui/endpoints/churn" {
		t.Fatalf("endpoint link went to %s", p)
	}
	if rows := eval(`document.querySelector("#routes tbody").textContent`); !strings.Contains(rows, "stable") || !strings.Contains(rows, "canary") {
		t.Errorf("routes: %q", rows)
	}
	if n := eval(`String(Array.from(document.querySelectorAll("#routes tbody tr")).reduce((n, r) => n + Number(r.children[4].textContent), 0))`); n != "30" {
		t.Errorf("guard window requests sum to %s, want 30", n)
	}
	// The window's p99 latency shows beside its error rate, for each
	// route that served requests in it.
	if p99 := eval(`Array.from(document.querySelectorAll("#routes tbody tr")).map(r => r.children[6].textContent.trim()).join(",")`); !regexp.MustCompile(`^\d+ ms,\d+ ms$`).MatchString(p99) {
		t.Errorf("guard window p99 per route: %q, want a latency in ms for stable and canary", p99)
	}
	if state := eval(`document.getElementById("rollout-state").textContent + " " + document.getElementById("rollout-step").textContent`); state != "progressing step 1 of 2 (50%)" {
		t.Errorf("rollout state %q, want progressing at step 1 of 2 (50%%)", state)
	}
	if inForce := eval(`Array.from(document.querySelectorAll("#rollout-routes tbody tr")).map(r => r.children[0].textContent + "=" + r.children[3].textContent.trim()).join(" ")`); inForce != "stable=85% canary=15%" {
		t.Errorf("weights in force %q, want stable=85%% canary=15%%", inForce)
	}
	screenshot("ui-endpoint.png")

	step("models")
	follow(`header nav a[href="/ui/"]`)
	if names := eval(`Array.from(document.querySelectorAll("#models .model-link")).map(a => a.textContent).join(" ")`); names != "churn fraud" {
		t.Errorf("models: %q", names)
	}
	must(chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("search"), "risk")))
	_, err = chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Submit(chromedp.ID("search"))))
	must(err)
	if names := eval(`Array.from(document.querySelectorAll("#models .model-link")).map(a => a.textContent).join(" ")`); names != "fraud" {
		t.Errorf("search risk: %q", names)
	}
	must(chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/")))
	screenshot("ui-models.png")

	step("sign out")
	follow("#logout")
	if p := path(); p != "/ui/login" {
		t.Errorf("after sign-out: %s", p)
	}
	must(chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/endpoints")))
	if p := path(); !strings.HasPrefix(p, "/ui/login") {
		t.Errorf("signed out, /ui/endpoints showed %s", p)
	}

	// A round trip after the last page, so its console messages are in.
	eval(`"done"`)
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("console: %s", p)
	}
	if len(dialogs) > 0 {
		t.Errorf("dialogs opened (a script ran): %q", dialogs)
	}
}
