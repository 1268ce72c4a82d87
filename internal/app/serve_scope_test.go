package app_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestServeScope: a serve token limited to endpoint "ep" (made through
// the API, as an admin would) calls ep on every path (the fast lane takes
// plain GETs, net/http the bodies) and nothing else: not endpoint
// "other", not the API, not /metrics. Refusals are 403 problem+json with
// the rule that refused them.
func TestServeScope(t *testing.T) {
	r := apptest.Start(t)
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, r, blue, green)
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
		"name": "other", "model": "m",
		"routes": []map[string]any{{"name": "green", "version": 2, "upstream_url": green, "weight": 100}},
	}), http.StatusCreated)
	res := call(t, "POST", r.URL+"/api/v1/tokens", r.AdminToken, map[string]any{"name": "churn-app", "scope": "serve", "endpoints": []string{"ep"}})
	mustStatus(t, res, http.StatusCreated)
	var created registry.TokenCreated
	if err := json.NewDecoder(res.Body).Decode(&created); err != nil {
		t.Fatal(err)
	}
	serve := created.Secret

	// Raw requests, so a GET is plain enough for the fast lane. A
	// connection per request: a refused body closes its connection.
	addr := strings.TrimPrefix(r.URL, "http://")
	send := func(method, path, body string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req := method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + serve + "\r\n"
		if body != "" {
			req += "Content-Type: application/json\r\nContent-Length: " + itoa(len(body)) + "\r\n"
		}
		if _, err := io.WriteString(c, req+"\r\n"+body); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string // in the body
	}{
		{"GET", "/serve/ep/predict", "", 200, "blue /predict"},
		{"POST", "/serve/ep/predict", `{"x":1}`, 200, "blue /predict"},
		{"GET", "/serve/%65p/predict", "", 200, "blue /predict"},
		{"GET", "/serve/other/predict", "", 403, `"rule":"token_endpoints"`},
		{"POST", "/serve/other/predict", `{"x":1}`, 403, `"rule":"token_endpoints"`},
		{"GET", "/serve/%6fther/predict", "", 403, `"rule":"token_endpoints"`},
		{"GET", "/api/v1/endpoints", "", 403, `"rule":"scope"`},
		{"GET", "/api/v1/endpoints/ep", "", 403, `"rule":"scope"`},
		{"GET", "/api/v1/events", "", 403, `"rule":"scope"`},
		{"GET", "/metrics", "", 403, `"rule":"scope"`},
		{"GET", "/openapi.json", "", 403, `"rule":"scope"`},
		{"POST", "/api/v1/tokens", `{"name":"x","scope":"admin"}`, 403, `"rule":"scope"`},
		{"GET", "/healthz", "", 200, ""},
		{"GET", "/serve/ep/again", "", 200, "blue /again"},
	} {
		status, body := send(c.method, c.path, c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.path, status, body, c.status, c.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
