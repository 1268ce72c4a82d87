package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestServeHeaderMatch: on a real registry with real upstreams, every
// request carrying the canary's match header reaches the canary, on both
// serving paths (a GET takes the fast lane, a POST net/http), while the
// others are split by weight. The API stores and returns the match and
// refuses one on a credential header, naming the field and the rule.
func TestServeHeaderMatch(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.ServeListen = "127.0.0.1:0" }))
	serveURL := r.Main.ServeURL()
	stable, canary := upstream(t, "stable"), upstream(t, "canary")
	seedEndpoint(t, r, stable, canary)
	routes := []map[string]any{
		{"name": "stable", "version": 1, "upstream_url": stable, "weight": 90},
		{"name": "canary", "version": 2, "upstream_url": canary, "weight": 10,
			"match": map[string]any{"header": "X-Canary", "value": "always"}},
	}
	res := call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{"routes": routes})
	mustStatus(t, res, http.StatusOK)
	var ep registry.Endpoint
	if err := json.NewDecoder(res.Body).Decode(&ep); err != nil {
		t.Fatal(err)
	}
	if m := ep.Routes[1].Match; m == nil || *m != (registry.RouteMatch{Header: "X-Canary", Value: "always"}) {
		t.Fatalf("stored match %+v", m)
	}

	routeOf := func(method string, hdr ...string) string {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"x":1}`)
		}
		req, err := http.NewRequest(method, serveURL+"/serve/ep/predict", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+r.AdminToken)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		route := res.Header.Get("X-Route")
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), route+" /predict") {
			t.Fatalf("%s: %d %q from route %q", method, res.StatusCode, b, route)
		}
		return route
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for i := range 200 {
			if got := routeOf(method, "X-Canary", "always"); got != "canary" {
				t.Fatalf("%s with X-Canary: always, request %d went to %q", method, i, got)
			}
		}
		counts := map[string]int{}
		for range 400 {
			counts[routeOf(method)]++
		}
		// 10% of 400 is 40; these bounds fail once in billions of runs.
		if counts["canary"] < 10 || counts["canary"] > 90 || counts["stable"]+counts["canary"] != 400 {
			t.Errorf("%s without the header: %v, want about 360 stable / 40 canary", method, counts)
		}
	}

	routes[1]["match"] = map[string]any{"header": "Authorization", "value": "Bearer x"}
	res = call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{"routes": routes})
	mustStatus(t, res, http.StatusBadRequest)
	var p struct{ Field, Rule, Detail string }
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.Field != "routes[1].match.header" || p.Rule != "match_header" || !strings.Contains(p.Detail, "Authorization") {
		t.Errorf("problem %+v", p)
	}
}
