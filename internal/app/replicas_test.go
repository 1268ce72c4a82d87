package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

func call(t *testing.T, method, url, token string, body any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func mustStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, b)
	}
}

// upstream answers with its own name so the test sees which route served.
func upstream(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// seedEndpoint creates model m, versions 1 and 2 and endpoint "ep" sending
// all traffic to route "blue" (version 1).
func seedEndpoint(t *testing.T, r *apptest.Registry, blue, green string) {
	t.Helper()
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/models", r.AdminToken, map[string]any{"name": "m"}), http.StatusCreated)
	for i := 1; i <= 2; i++ {
		mustStatus(t, call(t, "POST", r.URL+"/api/v1/models/m/versions", r.AdminToken, map[string]any{
			"source": fmt.Sprintf("s3://b/m/%d", i), "checksum": "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i), 32), "format": "onnx",
		}), http.StatusCreated)
	}
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
		"name": "ep", "model": "m",
		"routes": []map[string]any{
			{"name": "blue", "version": 1, "upstream_url": blue, "weight": 100},
			{"name": "green", "version": 2, "upstream_url": green, "weight": 0},
		},
	}), http.StatusCreated)
}

func shiftToGreen(t *testing.T, r *apptest.Registry, blue, green string) {
	t.Helper()
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{
		"routes": []map[string]any{
			{"name": "blue", "version": 1, "upstream_url": blue, "weight": 0},
			{"name": "green", "version": 2, "upstream_url": green, "weight": 100},
		},
	}), http.StatusOK)
}

func servedBy(t *testing.T, r *apptest.Registry, token string) string {
	t.Helper()
	resp := call(t, "GET", r.URL+"/serve/ep/predict", token, nil)
	mustStatus(t, resp, http.StatusOK)
	body, _ := io.ReadAll(resp.Body)
	if want := resp.Header.Get("X-Route") + " /predict"; string(body) != want {
		t.Fatalf("body %q, want %q (X-Route and upstream disagree)", body, want)
	}
	return resp.Header.Get("X-Route")
}

// TestEndpointChangeAppliesAtOnce: on the replica that took the write, the
// very next request follows the new weights (no polling involved: the
// poll interval is set far beyond the test's duration).
func TestEndpointChangeAppliesAtOnce(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.GatewayPollInterval = time.Hour }))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, r, blue, green)
	if got := servedBy(t, r, r.AdminToken); got != "blue" {
		t.Fatalf("before the shift: served by %q, want blue", got)
	}
	shiftToGreen(t, r, blue, green)
	if got := servedBy(t, r, r.AdminToken); got != "green" {
		t.Fatalf("first request after the shift: served by %q, want green", got)
	}
}

// TestEndpointChangeReachesOtherReplicas: two replicas share one
// PostgreSQL database; a change written through replica A is served by
// replica B within 1 s (B polls with the default interval).
func TestEndpointChangeReachesOtherReplicas(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	defaultPoll := func(c *app.Config) { c.GatewayPollInterval = 0 }
	a := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	b := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, a, blue, green)

	// B learns about the new endpoint by polling too.
	deadline := time.Now().Add(time.Second)
	for {
		resp := call(t, "GET", b.URL+"/serve/ep/predict", b.AdminToken, nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B did not serve the new endpoint within 1s (status %d)", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by the deadline
	}

	shiftToGreen(t, a, blue, green)
	start := time.Now()
	for servedBy(t, b, b.AdminToken) != "green" {
		if time.Since(start) > time.Second {
			t.Fatalf("replica B still routes to blue %s after the change", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("replica B followed the change after %s", time.Since(start).Round(time.Millisecond))
}
