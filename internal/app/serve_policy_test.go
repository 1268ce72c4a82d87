package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// layout is one way to run the data plane: on the API's listener, on a
// listener of its own (--serve-listen), or as 'mlregistry gateway' beside
// the registry. Each has a token-free metrics listener.
type layout struct {
	name string
	// reg is the registry (API); serve is the base URL /serve/ answers on;
	// metrics the base URL of the data plane's process's metrics listener.
	reg            *apptest.Registry
	serve, metrics string
}

func startLayouts(t *testing.T) []layout {
	t.Helper()
	metrics := func(c *app.Config) { c.MetricsListen = "127.0.0.1:0" }
	shared := apptest.Start(t, apptest.WithConfig(metrics))
	own := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { metrics(c); c.ServeListen = "127.0.0.1:0" }))
	db := "sqlite://" + filepath.Join(t.TempDir(), "registry.db")
	beside := apptest.Start(t, apptest.WithDB(db), apptest.WithConfig(metrics))
	gw := app.New(app.Config{Listen: "127.0.0.1:0", DB: db, DataPlaneOnly: true, MetricsListen: "127.0.0.1:0", GatewayPollInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gw.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	return []layout{
		{"shared listener", shared, shared.Main.ServeURL(), shared.Main.MetricsURL()},
		{"serve listener", own, own.Main.ServeURL(), own.Main.MetricsURL()},
		{"gateway", beside, gw.URL(), gw.MetricsURL()},
	}
}

// seedModel creates model m with version 1.
func seedModel(t *testing.T, r *apptest.Registry) {
	t.Helper()
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/models", r.AdminToken, map[string]any{"name": "m"}), http.StatusCreated)
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/models/m/versions", r.AdminToken, map[string]any{
		"source": "s3://b/m/1", "checksum": "sha256:" + strings.Repeat("01", 32), "format": "onnx",
	}), http.StatusCreated)
}

func oneRoute(name, upstream string) map[string]any {
	return map[string]any{"name": name, "model": "m", "routes": []map[string]any{{"name": "a", "version": 1, "upstream_url": upstream, "weight": 100}}}
}

// serveOnce sends one request to /serve/<endpoint>/metrics, waiting (within a
// deadline) for a gateway that polls to see the endpoint. chunked sends a
// chunked body, which the lane hands over to net/http.
func serveOnce(t *testing.T, base, endpoint, token string, chunked bool, hdr http.Header) (int, string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var body io.Reader
		method := http.MethodGet
		if chunked {
			method, body = http.MethodPost, io.MultiReader(strings.NewReader(`{"x":1}`))
		}
		req, err := http.NewRequest(method, base+"/serve/"+endpoint+"/metrics", body)
		if err != nil {
			t.Fatal(err)
		}
		for k, vv := range hdr {
			req.Header[k] = vv
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound || time.Now().After(deadline) {
			return res.StatusCode, string(b)
		}
	}
}

// The UI's session cookie never reaches a model server, on any listener
// layout and on the lane and net/http paths; the model server's own
// cookies do.
func TestServeDropsTheSessionCookieOnEveryLayout(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "cookie="+strings.Join(r.Header["Cookie"], "|"))
	}))
	t.Cleanup(echo.Close)
	for _, l := range startLayouts(t) {
		seedModel(t, l.reg)
		mustStatus(t, call(t, "POST", l.reg.URL+"/api/v1/endpoints", l.reg.AdminToken, oneRoute("ep", echo.URL)), http.StatusCreated)
		token := l.reg.Token(t, "caller", registry.ScopeRead)
		for _, chunked := range []bool{false, true} {
			st, body := serveOnce(t, l.serve, "ep", token, chunked, http.Header{"Cookie": {"theme=dark; " + registry.SessionCookie + "=s3cret"}})
			if st != http.StatusOK || body != "cookie=theme=dark" {
				t.Errorf("%s (chunked %v): %d, upstream saw %q, want only theme=dark", l.name, chunked, st, body)
			}
		}
	}
}

// An endpoint whose upstream is the metrics listener is refused where the
// registry knows the listener (at write), and by the gateway when it
// dials: a serve token never reads the token-free metrics through /serve/.
func TestServeRefusesTheMetricsListenerAsUpstream(t *testing.T) {
	for _, l := range startLayouts(t) {
		seedModel(t, l.reg)
		token := l.reg.Token(t, "caller", registry.ScopeRead)
		if l.name != "gateway" {
			res := call(t, "POST", l.reg.URL+"/api/v1/endpoints", l.reg.AdminToken, oneRoute("metrics", l.metrics))
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "upstream_address") {
				t.Errorf("%s: creating an endpoint on the metrics listener: %d %s, want 400 upstream_address", l.name, res.StatusCode, b)
			}
			// Written past the API (as a row from before the rule), the
			// gateway still refuses it when it dials.
			if _, err := l.reg.Store.CreateEndpoint(t.Context(), registry.Actor{Name: "test"}, registry.EndpointCreate{
				Name: "metrics", Model: "m", Routes: []registry.Route{{Name: "a", Version: 1, UpstreamURL: l.metrics, Weight: 100}},
			}); err != nil && res.StatusCode != http.StatusCreated {
				t.Fatal(err)
			}
		} else {
			// The registry does not know a separate gateway's listeners.
			mustStatus(t, call(t, "POST", l.reg.URL+"/api/v1/endpoints", l.reg.AdminToken, oneRoute("metrics", l.metrics)), http.StatusCreated)
		}
		for _, chunked := range []bool{false, true} {
			st, body := serveOnce(t, l.serve, "metrics", token, chunked, nil)
			if st != http.StatusBadGateway || strings.Contains(body, "go_goroutines") {
				t.Errorf("%s (chunked %v): /serve/metrics answered %d: %.200s", l.name, chunked, st, body)
			}
		}
	}
}

// Writes through the API refuse upstreams that are metadata services in
// any spelling, by name, or by what a name resolves to, and the
// registry's own listeners, with a field error naming the route; model
// servers on loopback and names that do not resolve stay accepted.
func TestEndpointWritesRefuseMetadataAndOwnAddresses(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.ServeListen = "127.0.0.1:0"
	}))
	seedModel(t, r)
	port := func(u string) string { return u[strings.LastIndex(u, ":")+1:] }
	refused := []string{
		"http://[fd00:ec2::254]/",
		"http://100.100.100.200/",
		"http://metadata.google.internal/",
		"http://METADATA.google.internal./computeMetadata/v1/",
		"http://2852039166/",
		"http://0xa9fea9fe/",
		"http://0251.0376.0251.0376/",
		"http://169.254.169.254./",
		"http://0/",
		"http://[fe80::a9fe:a9fe%25eth0]/",
		r.URL + "/api/v1",
		r.Main.ServeURL() + "/serve/x",
		r.Main.MetricsURL(),
		"http://localhost:" + port(r.URL) + "/api/v1",
		"http://localhost:" + port(r.Main.MetricsURL()) + "/",
	}
	for _, up := range refused {
		for _, q := range []string{"", "?dry_run=true"} {
			res := call(t, "POST", r.URL+"/api/v1/endpoints"+q, r.AdminToken, oneRoute("e", up))
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"upstream_address"`) || !strings.Contains(string(b), "routes[0].upstream_url") {
				t.Errorf("POST%s %s: %d %s, want 400 upstream_address on routes[0].upstream_url", q, up, res.StatusCode, b)
			}
		}
	}
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, oneRoute("ok", "http://127.0.0.1:9/v1")), http.StatusCreated)
	for _, up := range refused {
		res := call(t, "PATCH", r.URL+"/api/v1/endpoints/ok", r.AdminToken, map[string]any{"routes": []map[string]any{{"name": "a", "version": 1, "upstream_url": up, "weight": 100}}})
		if res.StatusCode != http.StatusBadRequest {
			b, _ := io.ReadAll(res.Body)
			t.Errorf("PATCH %s: %d %s, want 400", up, res.StatusCode, b)
		}
	}
	for _, up := range []string{"http://localhost:9/v1", "http://churn-v6.invalid:8080"} {
		mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ok", r.AdminToken, map[string]any{"routes": []map[string]any{{"name": "a", "version": 1, "upstream_url": up, "weight": 100}}}), http.StatusOK)
	}
}
