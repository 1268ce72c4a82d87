package main

// Tests that hold the guides' CLI examples to what the CLI prints and
// does: the output blocks are compared with a real run.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// guideBlock returns the first fenced block of the given language that
// follows the line `after` in a guide template.
func guideBlock(t *testing.T, guide, after, lang string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "templates", "guides", guide))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, after)
	if i < 0 {
		t.Fatalf("%s has no %q", guide, after)
	}
	open := "```" + lang + "\n"
	j := strings.Index(text[i:], open)
	if j < 0 {
		t.Fatalf("%s has no ```%s block after %q", guide, lang, after)
	}
	body := text[i+j+len(open):]
	return body[:strings.Index(body, "```")]
}

// TestCanaryGuideEndpointsShow: the guide's `endpoints show` output after
// the guard rolled a failing canary back is what the CLI prints.
func TestCanaryGuideEndpointsShow(t *testing.T) {
	f := newFixture(t)
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"churn_probability":0.1}`)
	}))
	t.Cleanup(stable.Close)
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "model failed to load", http.StatusInternalServerError)
	}))
	t.Cleanup(canary.Close)
	// The quickstart's endpoint at 50/50, as in the guide.
	if st, out := do(t, "POST", f.srv.url+"/api/v1/endpoints", f.admin, map[string]any{"name": "canary-demo", "model": "churn", "routes": []map[string]any{
		{"name": "stable", "version": 1, "upstream_url": stable.URL, "weight": 50},
		{"name": "canary", "version": 2, "upstream_url": canary.URL, "weight": 50},
	}, "guard": map[string]any{"max_error_rate": 0.05, "min_requests": 20, "window": "1m"}}); st != 201 {
		t.Fatalf("create endpoint: %d %v", st, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := do(t, "POST", f.srv.url+"/serve/canary-demo/predict", f.admin, map[string]any{"features": map[string]float64{"tenure_months": 4}})
		if st == http.StatusOK || st == http.StatusBadGateway || st == http.StatusInternalServerError {
			if _, ep := do(t, "GET", f.srv.url+"/api/v1/endpoints/canary-demo", f.admin, nil); ep["status"] == "rolled_back" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the guard did not roll the canary back within 30s")
		}
	}
	out := f.ok(t, "endpoints", "show", "canary-demo")
	out = strings.NewReplacer(stable.URL, "http://127.0.0.1:8501", canary.URL, "http://127.0.0.1:8502").Replace(out)
	got := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		got[strings.TrimRight(l, " ")] = true
	}
	want := guideBlock(t, "canary-deployments.md.tmpl", "mlregistry endpoints show churn", "text")
	for _, l := range strings.Split(strings.TrimRight(want, "\n"), "\n") {
		l = strings.TrimRight(l, " ")
		if l == "..." {
			continue
		}
		if !got[l] {
			t.Errorf("the guide shows the line\n%q\nthat `mlregistry endpoints show` does not print; it prints:\n%s", l, out)
		}
	}
}
