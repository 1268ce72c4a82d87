package app_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/testcert"
)

// TestServeListen and TestServeListenPostgres: with --serve-listen the
// data plane has its own listener. A request there reaches the upstream
// with the route's version headers on every path (the fast lane's GET,
// net/http's POST), a serve token works there for its endpoint only, the
// API, UI and /metrics are not there (not even through dot-segments), and
// the API listener refuses /serve/ with a 404 that names the serve
// listener, whatever the token. Endpoint URLs point at the serve
// listener, and the metrics listener counts its traffic.
func TestServeListen(t *testing.T) {
	testServeListen(t, "")
}

func TestServeListenPostgres(t *testing.T) {
	testServeListen(t, storetest.PostgresDSN(t))
}

func testServeListen(t *testing.T, dsn string) {
	opts := []apptest.Option{apptest.WithConfig(func(c *app.Config) {
		c.ServeListen = "127.0.0.1:0"
		c.MetricsListen = "127.0.0.1:0"
	})}
	if dsn != "" {
		opts = append(opts, apptest.WithDB(dsn))
	}
	r := apptest.Start(t, opts...)
	serveURL := r.Main.ServeURL()
	if serveURL == r.URL || !strings.HasPrefix(serveURL, "http://127.0.0.1:") {
		t.Fatalf("serve URL %q beside API URL %q", serveURL, r.URL)
	}
	var hits atomic.Int64
	echo := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			hits.Add(1)
			b, _ := io.ReadAll(req.Body)
			fmt.Fprintf(w, "%s %s %s version=%s route=%s body=%s", name, req.Method, req.URL.Path, req.Header.Get("X-Model-Version"), req.Header.Get("X-Route"), b)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	seedEndpoint(t, r, echo("blue"), echo("green"))
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
		"name": "other", "model": "m",
		"routes": []map[string]any{{"name": "green", "version": 2, "upstream_url": echo("green"), "weight": 100}},
	}), http.StatusCreated)

	// The endpoint's URL is on the serve listener.
	var ep registry.Endpoint
	res := call(t, "GET", r.URL+"/api/v1/endpoints/ep", r.AdminToken, nil)
	mustStatus(t, res, http.StatusOK)
	if err := json.NewDecoder(res.Body).Decode(&ep); err != nil {
		t.Fatal(err)
	}
	if ep.URL != serveURL+"/serve/ep/" {
		t.Fatalf("endpoint URL %q, want %q", ep.URL, serveURL+"/serve/ep/")
	}
	res = call(t, "POST", r.URL+"/api/v1/tokens", r.AdminToken, map[string]any{"name": "ep-app", "scope": "serve", "endpoints": []string{"ep"}})
	mustStatus(t, res, http.StatusCreated)
	var created registry.TokenCreated
	if err := json.NewDecoder(res.Body).Decode(&created); err != nil {
		t.Fatal(err)
	}
	serve := created.Secret

	for _, c := range []struct {
		base, method, path, token, body string
		status                          int
		want                            string // in the body
	}{
		// The data plane, on the serve listener.
		{serveURL, "GET", "/serve/ep/predict", serve, "", 200, "blue GET /predict version=1 route=blue body="},
		{serveURL, "POST", "/serve/ep/predict", serve, `{"x":1}`, 200, `blue POST /predict version=1 route=blue body={"x":1}`},
		{serveURL, "GET", "/serve/ep/predict", r.AdminToken, "", 200, "blue GET /predict version=1"},
		{serveURL, "GET", "/serve/other/predict", serve, "", 403, `"rule":"token_endpoints"`},
		{serveURL, "GET", "/serve/ep/predict", "", "", 401, `"code":"unauthenticated"`},
		{serveURL, "GET", "/healthz", "", "", 200, `"ok"`},
		{serveURL, "GET", "/readyz", "", "", 200, `"ok"`},
		// Nothing else is there, for any token.
		{serveURL, "GET", "/api/v1/endpoints", r.AdminToken, "", 404, `"rule":"serve_listener"`},
		{serveURL, "POST", "/api/v1/tokens", r.AdminToken, `{"name":"x","scope":"admin"}`, 404, `"rule":"serve_listener"`},
		{serveURL, "GET", "/api/v1/endpoints", serve, "", 404, `"rule":"serve_listener"`},
		{serveURL, "GET", "/metrics", r.AdminToken, "", 404, `"rule":"serve_listener"`},
		{serveURL, "GET", "/openapi.json", r.AdminToken, "", 404, `"rule":"serve_listener"`},
		{serveURL, "GET", "/ui/", "", "", 404, `"rule":"serve_listener"`},
		{serveURL, "GET", "/serve/../api/v1/endpoints", r.AdminToken, "", 404, `"rule":"serve_listener"`},
		// (The gateway itself takes this one: an endpoint named "..".)
		{serveURL, "GET", "/serve/%2e%2e/api/v1/endpoints", r.AdminToken, "", 404, `"code":"not_found"`},
		// The API listener: the API, and /serve/ refused naming where it went.
		{r.URL, "GET", "/api/v1/endpoints/ep", r.AdminToken, "", 200, `"name":"ep"`},
		{r.URL, "GET", "/serve/ep/predict", r.AdminToken, "", 404, serveURL + "/serve/{endpoint}/"},
		{r.URL, "POST", "/serve/ep/predict", serve, `{"x":1}`, 404, `"rule":"api_listener"`},
		{r.URL, "GET", "/serve/ep/predict", "", "", 404, `"rule":"api_listener"`},
		{r.URL, "GET", "/api/../serve/ep/predict", r.AdminToken, "", 404, `"rule":"api_listener"`},
		{r.URL, "GET", "/ui/login", "", "", 200, "<form"},
	} {
		before := hits.Load()
		status, body := rawRequest(t, c.base, c.method, c.path, c.token, c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s %s%s: %d %q, want %d with %q", c.method, c.base, c.path, status, body, c.status, c.want)
		}
		if c.status != 200 && hits.Load() != before {
			t.Errorf("%s %s%s reached an upstream", c.method, c.base, c.path)
		}
	}

	// The metrics listener counts what the serve listener proxied.
	res, err := http.Get(r.Main.MetricsURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`mlregistry_gateway_requests_total\{code_class="2xx",endpoint="ep",route="blue",version="\d+"\} (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no gateway request count for ep/blue in /metrics")
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 3 {
		t.Fatalf("gateway counted %d 2xx requests on ep/blue, want at least 3", n)
	}
	// And the HTTP metrics count them too, whichever path served them:
	// the GETs by the serve token and the admin token, the POST.
	for _, want := range []string{
		`mlregistry_http_requests_total{code="200",method="GET",route="/serve/"} 2`,
		`mlregistry_http_requests_total{code="200",method="POST",route="/serve/"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// rawRequest sends one request on a connection of its own, with the path
// exactly as given (dot-segments and escapes included), so that a plain
// GET is plain enough for the fast lane.
func rawRequest(t *testing.T, base, method, path, token, body string) (int, string) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if body != "" {
		req += "Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestServeListenTLS: --tls-cert and --tls-key serve both listeners with
// the one certificate, and ReloadTLS (SIGHUP) renews it on both.
func TestServeListenTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := testcert.NewCA(t)
	ca.Issue(t, 1, certFile, keyFile)
	m := app.New(app.Config{
		Listen: "127.0.0.1:0", ServeListen: "127.0.0.1:0",
		DB:          "sqlite://" + filepath.Join(dir, "r.db"),
		TLSCertFile: certFile, TLSKeyFile: keyFile,
		ShutdownTimeout: 5 * time.Second,
	})
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if !strings.HasPrefix(m.URL(), "https://") || !strings.HasPrefix(m.ServeURL(), "https://") || m.URL() == m.ServeURL() {
		t.Fatalf("URLs %q and %q", m.URL(), m.ServeURL())
	}
	serial := func(url string, pool *x509.CertPool) int64 {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		res, err := c.Get(url + "/healthz")
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s/healthz: %d", url, res.StatusCode)
		}
		return res.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	for _, u := range []string{m.URL(), m.ServeURL()} {
		if s := serial(u, ca.Pool); s != 1 {
			t.Fatalf("%s: serial %d, want 1", u, s)
		}
	}
	ca.Issue(t, 2, certFile, keyFile)
	if err := m.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{m.URL(), m.ServeURL()} {
		if s := serial(u, ca.Pool); s != 2 {
			t.Fatalf("%s after the reload: serial %d, want 2", u, s)
		}
	}
}

// TestServeListenRefusals: configurations that cannot work are refused
// before anything listens, naming the flag.
func TestServeListenRefusals(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	for _, c := range []struct {
		cfg  app.Config
		want string
	}{
		{app.Config{Listen: "127.0.0.1:0", ServeListen: "0.0.0.0:0", InsecureNoAuth: true}, "--insecure-no-auth is only allowed on a loopback"},
		{app.Config{Listen: "127.0.0.1:0", ServePublicURL: "https://predict.example.com"}, "--serve-public-url needs --serve-listen"},
		{app.Config{Listen: "127.0.0.1:0", DataPlaneOnly: true, ServeListen: "127.0.0.1:0"}, "--serve-listen is for 'mlregistry serve'"},
		{app.Config{Listen: "127.0.0.1:0", DataPlaneOnly: true, InsecureNoAuth: true}, "the gateway has no --insecure-no-auth"},
		{app.Config{Listen: "127.0.0.1:0", ServeListen: "127.0.0.1:notaport"}, "serve listen"},
	} {
		c.cfg.DB = db
		err := app.New(c.cfg).Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.cfg, err, c.want)
		}
	}
}
