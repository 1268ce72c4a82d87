package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/testcert"
)

// TestGatewaySQLite and TestGatewayPostgres: `mlregistry gateway`, a
// process of its own beside `mlregistry serve` on the same database,
// serves what the registry configures (changes within 1 s), authenticates
// callers against the registry's tokens, has no API, records its guard's
// rollback where the registry shows it, and stops cleanly on SIGTERM.
func TestGatewaySQLite(t *testing.T) {
	testGateway(t, "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
}

func TestGatewayPostgres(t *testing.T) {
	testGateway(t, storetest.PostgresDSN(t))
}

// routeEcho is a model server that answers with its name and the routing
// headers it received; fail makes it answer 500.
func routeEcho(t *testing.T, name string, fail *atomic.Bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail != nil && fail.Load() {
			http.Error(w, "model crashed", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s %s version=%s route=%s auth=%q", name, r.URL.Path, r.Header.Get("X-Model-Version"), r.Header.Get("X-Route"), r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func testGateway(t *testing.T, db string) {
	admin := createToken(t, db, "admin", "admin")
	srv := startServer(t, db)
	gw := startProc(t, "gateway", "--listen", "127.0.0.1:0", "--db", db, "--metrics-listen", "127.0.0.1:0")
	metricsURL := regexp.MustCompile(`metrics_url=(http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(gw.logText())
	if !strings.Contains(gw.logText(), "mlregistry gateway serving") || metricsURL == nil {
		t.Fatalf("gateway log: %s", gw.logText())
	}

	var greenFails atomic.Bool
	blue, green := routeEcho(t, "blue", nil), routeEcho(t, "green", &greenFails)
	mustDo := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		st, out := do(t, method, srv.url+path, admin, body)
		if st != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
		}
		return out
	}
	mustDo("POST", "/api/v1/models", map[string]any{"name": "m"}, http.StatusCreated)
	for i := 1; i <= 2; i++ {
		mustDo("POST", "/api/v1/models/m/versions", map[string]any{
			"source": fmt.Sprintf("s3://b/m/%d", i), "checksum": "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i), 32), "format": "onnx",
		}, http.StatusCreated)
	}
	routes := func(blueWeight, greenWeight int) []map[string]any {
		return []map[string]any{
			{"name": "blue", "version": 1, "upstream_url": blue, "weight": blueWeight},
			{"name": "green", "version": 2, "upstream_url": green, "weight": greenWeight},
		}
	}
	mustDo("POST", "/api/v1/endpoints", map[string]any{
		"name": "a", "model": "m", "routes": routes(100, 0),
		"guard": map[string]any{"max_error_rate": 0.5, "min_requests": 5, "window": "1m"},
	}, http.StatusCreated)
	mustDo("POST", "/api/v1/endpoints", map[string]any{"name": "b", "model": "m", "routes": routes(100, 0)}, http.StatusCreated)
	read := mustDo("POST", "/api/v1/tokens", map[string]any{"name": "reader", "scope": "read"}, http.StatusCreated)["secret"].(string)
	serveA := mustDo("POST", "/api/v1/tokens", map[string]any{"name": "app-a", "scope": "serve", "endpoints": []string{"a"}}, http.StatusCreated)["secret"].(string)

	// waitRoute polls the gateway until endpoint a answers from route
	// want, and says how long that took.
	waitRoute := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			res, body := get(t, gw.url+"/serve/a/predict", read)
			if res.StatusCode == http.StatusOK && res.Header.Get("X-Route") == want {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("gateway: endpoint a not served by %s %s after the change: %d %q", want, time.Since(start), res.StatusCode, body)
			}
			time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by within
		}
	}
	// The gateway learns about new endpoints by polling the database
	// (the 1 s promise is checked on the change below).
	took := waitRoute("blue", 5*time.Second)
	t.Logf("gateway served the new endpoint %s after it was created", took.Round(time.Millisecond))

	// Routed with the version headers both ways; the token stays here.
	res, body := get(t, gw.url+"/serve/a/predict", serveA)
	if res.StatusCode != http.StatusOK || body != `blue /predict version=1 route=blue auth=""` || res.Header.Get("X-Model-Version") != "1" {
		t.Fatalf("serve token on a: %d %q %v", res.StatusCode, body, res.Header)
	}
	// A serve token limited to a cannot reach b.
	if res, body := get(t, gw.url+"/serve/b/predict", serveA); res.StatusCode != http.StatusForbidden || !strings.Contains(body, `"rule":"token_endpoints"`) {
		t.Fatalf("serve token for a on b: %d %q", res.StatusCode, body)
	}
	// No token, an unknown one: 401.
	for _, tok := range []string{"", "mlr_notarealtoken"} {
		if res, body := get(t, gw.url+"/serve/a/predict", tok); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %q on the gateway: %d %q", tok, res.StatusCode, body)
		}
	}
	// The gateway has no API: not for a read token, not for admin.
	for _, tok := range []string{read, admin} {
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/v1/models"},
			{"GET", "/api/v1/endpoints/a"},
			{"DELETE", "/api/v1/endpoints/a"},
			{"POST", "/api/v1/tokens"},
			{"GET", "/metrics"},
			{"GET", "/ui/"},
			{"GET", "/serve/../api/v1/models"},
		} {
			var body io.Reader
			if c.method == "POST" {
				body = strings.NewReader(`{"name":"x","scope":"admin"}`)
			}
			req, _ := http.NewRequest(c.method, gw.url+c.path, body)
			req.URL.Opaque = c.path // as sent, dot-segments included
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound || !strings.Contains(string(b), `"rule":"serve_listener"`) {
				t.Errorf("%s %s on the gateway: %d %s", c.method, c.path, res.StatusCode, b)
			}
		}
	}
	if res, _ := get(t, gw.url+"/healthz", ""); res.StatusCode != http.StatusOK {
		t.Fatalf("gateway /healthz: %d", res.StatusCode)
	}
	if res, _ := get(t, gw.url+"/readyz", ""); res.StatusCode != http.StatusOK {
		t.Fatalf("gateway /readyz: %d", res.StatusCode)
	}

	// The gateway's metrics listener counts what it proxied.
	if _, body := get(t, metricsURL[1], ""); !regexp.MustCompile(`mlregistry_gateway_requests_total\{code_class="2xx",endpoint="a",route="blue",version="\d+"\} [1-9]`).MatchString(body) {
		t.Fatalf("gateway /metrics lacks the requests to a:\n%s", body)
	}

	// A change made through the registry is routed within 1 s.
	mustDo("PATCH", "/api/v1/endpoints/a", map[string]any{"routes": routes(0, 100)}, http.StatusOK)
	took = waitRoute("green", time.Second)
	t.Logf("gateway routed the change %s after the registry acknowledged it", took.Round(time.Millisecond))

	// The gateway's guard: green fails, its weight goes back to blue, and
	// the registry shows the event and the new routes.
	greenFails.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, _ := get(t, gw.url+"/serve/a/predict", read)
		if res.StatusCode == http.StatusOK && res.Header.Get("X-Route") == "blue" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway's guard never rolled back (last answer %d from %s)\n%s", res.StatusCode, res.Header.Get("X-Route"), gw.logText())
		}
	}
	for {
		_, events := do(t, "GET", srv.url+"/api/v1/events?endpoint=a", admin, nil)
		if hasEvent(events, "endpoint.guard_rollback", "gateway-guard") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no guard rollback event in the registry: %v", events)
		}
		time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by deadline
	}
	if ep := mustDo("GET", "/api/v1/endpoints/a", nil, http.StatusOK); ep["status"] != "rolled_back" {
		t.Fatalf("endpoint a in the registry after the gateway's rollback: %v", ep)
	}

	// SIGTERM: a clean stop, exit code 0.
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := gw.wait(t); err != nil {
		t.Fatalf("gateway after SIGTERM: %v\n%s", err, gw.logText())
	}
	if !strings.Contains(gw.logText(), "stopped") {
		t.Fatalf("gateway did not log its stop:\n%s", gw.logText())
	}
	// The registry is unaffected.
	mustDo("GET", "/api/v1/endpoints/a", nil, http.StatusOK)
}

// hasEvent reports whether an events page holds action by actor.
func hasEvent(page map[string]any, action, actor string) bool {
	items, _ := page["items"].([]any)
	for _, it := range items {
		e, _ := it.(map[string]any)
		if e["action"] == action && e["actor"] == actor {
			return true
		}
	}
	return false
}

// TestGatewayRefusesEmptyDatabase: the gateway never creates or migrates
// a schema; on a database no registry made it says what to do.
func TestGatewayRefusesEmptyDatabase(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "empty.db")
	_, stderr, err := runCLI(t, "gateway", "--listen", "127.0.0.1:0", "--db", db)
	if err == nil || !strings.Contains(stderr, "holds no registry") || !strings.Contains(stderr, "mlregistry migrate") {
		t.Fatalf("gateway on an empty database: %v\n%s", err, stderr)
	}
}

// TestGatewayTLSReloadsOnSIGHUP: `gateway --tls-cert --tls-key` answers
// HTTPS, and SIGHUP makes new connections get the new certificate.
func TestGatewayTLSReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "r.db")
	if _, stderr, err := runCLI(t, "migrate", "--db", db); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := testcert.NewCA(t)
	ca.Issue(t, 1, certFile, keyFile)
	gw := startProc(t, "gateway", "--listen", "127.0.0.1:0", "--db", db, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(gw.url, "https://") {
		t.Fatalf("gateway URL %q, want https", gw.url)
	}
	serial := func() (int64, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, DisableKeepAlives: true}}
		res, err := c.Get(gw.url + "/healthz")
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if s, err := serial(); err != nil || s != 1 {
		t.Fatalf("first certificate: serial %d, %v", s, err)
	}
	ca.Issue(t, 2, certFile, keyFile)
	if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := serial()
		if err == nil && s == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: serial %d, %v\n%s", s, err, gw.logText())
		}
		time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by deadline
	}
}
