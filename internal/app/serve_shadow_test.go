package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestServeShadowThroughTheAPI: a shadow route written through the API
// gets a copy of each request served through the registry (its answers
// discarded: the client gets the primary's), and /metrics carries the
// copies' outcomes per endpoint, route and version.
func TestServeShadowThroughTheAPI(t *testing.T) {
	r := apptest.Start(t)
	blue, green := upstream(t, "blue"), upstream(t, "green")
	var copies atomic.Int64
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Mlregistry-Shadow") == "1" {
			copies.Add(1)
		}
		io.WriteString(w, "mirror")
	}))
	t.Cleanup(mirror.Close)
	seedEndpoint(t, r, blue, green)
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{
		"routes": []map[string]any{
			{"name": "blue", "version": 1, "upstream_url": blue, "weight": 100},
			{"name": "green", "version": 2, "upstream_url": green, "weight": 0},
			{"name": "mirror", "version": 2, "upstream_url": mirror.URL, "weight": 0, "shadow": true, "share": 1},
		},
	}), http.StatusOK)
	read := r.Token(t, "caller", registry.ScopeRead)
	for range 5 {
		res := call(t, "POST", r.URL+"/serve/ep/predict", read, map[string]any{"x": 1})
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || string(body) != "blue /predict" {
			t.Fatalf("%d %q, want blue's answer", res.StatusCode, body)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); copies.Load() < 5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shadow got %d copies, want 5", copies.Load())
		}
	}
	want := `mlregistry_gateway_shadow_requests_total{code_class="2xx",endpoint="ep",route="mirror",version="2"} 5`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		res := call(t, "GET", r.URL+"/metrics", r.AdminToken, nil)
		metrics, _ := io.ReadAll(res.Body)
		if strings.Contains(string(metrics), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
}
