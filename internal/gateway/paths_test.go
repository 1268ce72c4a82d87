package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The tests in this file send the same requests through every way a
// request can take through the gateway and check what the upstream
// receives: the lane with the lean client (a plain GET, a small POST),
// the lane with http.Transport (a POST body too large for the lean
// client, streamed), net/http with the lean client (an OPTIONS, which
// the lane does not take; a POST with Expect: 100-continue), net/http
// with http.Transport (a chunked upload) and the upgrade path
// (httputil.ReverseProxy).

// echoed is what the echo upstream saw of a request.
type echoed struct {
	Method string              `json:"method"`
	URI    string              `json:"uri"`
	Header map[string][]string `json:"header"`
	Body   string              `json:"body"`
}

// echoUpstream answers every request with what it received, as JSON, and
// counts the requests.
func echoUpstream(t *testing.T) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	url = upstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Header: r.Header, Body: string(body)})
	})
	return url, hits
}

// gatewayPath is one way through the gateway.
type gatewayPath struct {
	name   string
	method string
	body   string
	// chunked sends the body with chunked framing (no Content-Length).
	chunked bool
	header  http.Header
	// viaNetHTTP: the lane hands the request over (net/http answers).
	viaNetHTTP bool
	// viaTransport: http.Transport carries the request upstream.
	viaTransport bool
}

// bigBody is larger than the lean client carries (h1.MaxBody).
var bigBody = `{"inputs":"` + strings.Repeat("x", 80<<10) + `"}`

var gatewayPaths = []gatewayPath{
	{name: "lane", method: http.MethodGet},
	{name: "lane-post", method: http.MethodPost, body: `{"x":1}`},
	{name: "lean", method: http.MethodOptions, viaNetHTTP: true},
	{name: "lean-expect", method: http.MethodPost, body: `{"x":2}`, header: http.Header{"Expect": {"100-continue"}}, viaNetHTTP: true},
	{name: "lane-stream", method: http.MethodPost, body: bigBody, viaTransport: true},
	{name: "transport", method: http.MethodPost, body: `{"x":1}`, chunked: true, viaNetHTTP: true, viaTransport: true},
	{name: "upgrade", method: http.MethodGet, header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"echo"}}, viaNetHTTP: true, viaTransport: true},
}

// bodyReader is p's request body for an http.Client (nil: none); a
// chunked one hides its length.
func (p gatewayPath) bodyReader() io.Reader {
	switch {
	case p.body == "":
		return nil
	case p.chunked:
		return io.MultiReader(strings.NewReader(p.body))
	}
	return strings.NewReader(p.body)
}

// send sends one request along p and returns the answer; the upstream's
// echo, when it answered, is decoded into e.
func (p gatewayPath) send(t *testing.T, h *laneHarness, path string, hdr http.Header) (*http.Response, string, *echoed) {
	t.Helper()
	req, err := http.NewRequest(p.method, "http://"+h.addr+path, p.bodyReader())
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range p.header {
		req.Header[k] = vv
	}
	for k, vv := range hdr {
		req.Header[k] = vv
	}
	// Keep-alive: the client's "Connection: close" would make the lane
	// hand the request over.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.name, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Header.Get("X-Served-By") == "net/http"; got != p.viaNetHTTP {
		t.Fatalf("%s %v: served by net/http = %v, want %v: the request did not take the path under test", p.name, hdr, got, p.viaNetHTTP)
	}
	var e *echoed
	if res.Header.Get("Content-Type") == "application/json" {
		e = new(echoed)
		if err := json.Unmarshal(b, e); err != nil {
			t.Fatalf("%s: decode echo %q: %v", p.name, b, err)
		}
	}
	return res, string(b), e
}

func TestRegistryTokensNeverReachUpstream(t *testing.T) {
	up, _ := echoUpstream(t)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
	token, _, err := registry.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		auth []string
		want []string // Authorization values the upstream receives
	}{
		{"token only", []string{"Bearer " + token}, nil},
		{"token then model credential", []string{"Bearer " + token, "Bearer model-secret"}, []string{"Bearer model-secret"}},
		{"model credential then token", []string{"Basic dXNlcjpwYXNz", "Bearer " + token}, []string{"Basic dXNlcjpwYXNz"}},
		{"two spaces", []string{"Bearer  " + token}, nil},
		{"tab after the space", []string{"Bearer \t" + token}, nil},
		{"lower-case scheme", []string{"bearer " + token}, nil},
		{"trailing space", []string{"BEARER " + token + " "}, nil},
		{"two tokens", []string{"Bearer " + token, "Bearer  " + token}, nil},
		{"model bearer passes", []string{"Bearer model-secret"}, []string{"Bearer model-secret"}},
	}
	for _, p := range gatewayPaths {
		for _, c := range cases {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				res, body, e := p.send(t, h, "/serve/e/predict", http.Header{"Authorization": c.auth})
				if res.StatusCode != http.StatusOK || e == nil {
					t.Fatalf("status %d: %s", res.StatusCode, body)
				}
				got := e.Header["Authorization"]
				if !slices.Equal(got, c.want) {
					t.Errorf("upstream received Authorization %q, want %q", got, c.want)
				}
				for _, v := range got {
					if strings.Contains(v, registry.TokenPrefix) {
						t.Errorf("registry token reached the upstream: %q", v)
					}
				}
			})
		}
	}
}

func TestEncodedPathsReachTheRightUpstreamPath(t *testing.T) {
	up, hits := echoUpstream(t)
	h := newLaneHarness(t, newMemSource(
		endpointOf("churn", rt("a", 1, up+"/v1", 100)),
		endpointOf("stall", rt("a", 1, up+"/v1/", 100)),
	), LaneOptions{})
	cases := []struct {
		path string
		// want is the upstream's request URI; "" means refused with
		// status and never forwarded.
		want   string
		status int
		// handedOver: the lane leaves plain dot segments to net/http.
		handedOver bool
	}{
		{"/serve/churn/predict", "/v1/predict", 200, false},
		{"/serve/%63hurn/predict", "/v1/predict", 200, false},
		{"/serve/%63%68%75%72%6E/predict?x=%2F", "/v1/predict?x=%2F", 200, false},
		{"/serve/st%61ll/x", "/v1/x", 200, false},
		{"/serve/churn", "/v1", 200, false},
		{"/serve/churn/a%2Fb", "/v1/a%2Fb", 200, false},
		{"/serve/churn/a.b/..c/c..", "/v1/a.b/..c/c..", 200, false},
		{"/serve/churn/%2e%2e/admin", "", 400, false},
		{"/serve/churn/%2E/admin", "", 400, false},
		{"/serve/churn/..%2fadmin", "", 400, false},
		{"/serve/churn/x/%2e%2e%2F%2e%2e%2Fadmin", "", 400, false},
		{"/serve/churn/..%5cadmin", "", 400, false},
		{"/serve/churn/../admin", "", 400, true},
		{"/serve/churn/./x", "", 400, true},
		{"/serve/churn/x/..", "", 400, true},
		{"/serve/ch%2Furn/x", "", 400, false},
		{"/serve/%2e%2e/x", "", 404, false},
	}
	for _, p := range gatewayPaths {
		for _, c := range cases {
			t.Run(p.name+c.path, func(t *testing.T) {
				before := hits.Load()
				p := p
				if c.handedOver {
					p.viaNetHTTP = true
				}
				res, body, e := p.send(t, h, c.path, nil)
				if res.StatusCode != c.status {
					t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, body)
				}
				if c.want == "" {
					if n := hits.Load() - before; n != 0 {
						t.Fatalf("refused request reached the upstream (%d requests)", n)
					}
					return
				}
				if e == nil || e.URI != c.want {
					t.Fatalf("upstream got %+v, want %s", e, c.want)
				}
			})
		}
	}
}

// The registry's own cookies (the UI session) authenticate a browser to
// the registry; like its tokens they must never reach a model server.
// Every other cookie passes as the client sent it.
func TestRegistryCookiesNeverReachUpstream(t *testing.T) {
	up, _ := echoUpstream(t)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
	cases := []struct {
		name   string
		cookie []string
		want   []string // Cookie values the upstream receives
	}{
		{"session only", []string{registry.SessionCookie + "=s3cret"}, nil},
		{"session among others", []string{"theme=dark; " + registry.SessionCookie + "=s3cret; lang=en"}, []string{"theme=dark; lang=en"}},
		{"session first", []string{registry.SessionCookie + "=s3cret;model=m1"}, []string{"model=m1"}},
		{"spaces around the name", []string{"a=1;  " + registry.SessionCookie + " =s3cret"}, []string{"a=1"}},
		{"two lines", []string{"a=1", registry.SessionCookie + "=s3cret"}, []string{"a=1"}},
		{"empty session value", []string{registry.SessionCookie + "=; b=2"}, []string{"b=2"}},
		{"other registry cookie", []string{"mlregistry_csrf=x; b=2"}, []string{"b=2"}},
		{"model cookies pass", []string{"session=model-abc; mlregistry=not-ours"}, []string{"session=model-abc; mlregistry=not-ours"}},
		{"a value naming the cookie passes", []string{"note=" + registry.SessionCookie}, []string{"note=" + registry.SessionCookie}},
	}
	for _, p := range gatewayPaths {
		for _, c := range cases {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				res, body, e := p.send(t, h, "/serve/e/predict", http.Header{"Cookie": c.cookie})
				if res.StatusCode != http.StatusOK || e == nil {
					t.Fatalf("status %d: %s", res.StatusCode, body)
				}
				got := e.Header["Cookie"]
				if !slices.Equal(got, c.want) {
					t.Errorf("upstream received Cookie %q, want %q", got, c.want)
				}
				for _, v := range got {
					if strings.Contains(v, "s3cret") {
						t.Errorf("the session cookie reached the upstream: %q", v)
					}
				}
			})
		}
	}
}
