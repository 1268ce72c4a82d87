package app_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestServeObservedOnEveryPath: a /serve/ request shows up in the API
// metrics and in the access log, with a request ID in the API's format,
// whichever path served it: the gateway's fast lane (a GET, a POST with a
// Content-Length body) or net/http (a chunked upload, which the lane
// hands over) (issue 9 item 8).
func TestServeObservedOnEveryPath(t *testing.T) {
	logs := &syncBuffer{}
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, r, blue, green)
	read := r.Token(t, "observer", registry.ScopeRead)

	addr := strings.TrimPrefix(r.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, req := range []struct{ name, method, framing string }{
		{"lane GET", "GET", ""},
		{"lane POST", "POST", "Content-Length: 7\r\n\r\n{\"x\":1}"},
		{"net/http POST", "POST", "Transfer-Encoding: chunked\r\n\r\n7\r\n{\"x\":1}\r\n0\r\n\r\n"},
	} {
		raw := req.method + " /serve/ep/predict HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + read + "\r\n"
		if req.framing == "" {
			raw += "\r\n"
		} else {
			raw += req.framing
		}
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, &http.Request{Method: req.method})
		if err != nil {
			t.Fatalf("%s: %v", req.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(body) != "blue /predict" {
			t.Fatalf("%s: %d %q", req.name, res.StatusCode, body)
		}
		id := res.Header.Get("X-Request-ID")
		if !hexID.MatchString(id) {
			t.Fatalf("%s: X-Request-ID %q, want 32 hex digits as the API's", req.name, id)
		}
		// The access line is written after the answer: wait for it.
		line := ""
		for deadline := time.Now().Add(5 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for l := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(l, "request_id="+id) && strings.Contains(l, `msg="http request"`) {
					line = l
				}
			}
		}
		for _, want := range []string{"method=" + req.method, "route=/serve/", "path=/serve/ep/predict", "status=200", "actor=observer", "bytes=13"} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: access log line %q lacks %s", req.name, line, want)
			}
		}
		if strings.Contains(line, read) {
			t.Errorf("%s: the access log holds the token", req.name)
		}
	}

	res := call(t, "GET", r.URL+"/metrics", r.AdminToken, nil)
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`mlregistry_http_requests_total{code="200",method="GET",route="/serve/"} 1`,
		`mlregistry_http_requests_total{code="200",method="POST",route="/serve/"} 2`,
		`mlregistry_http_request_duration_seconds_count{method="POST",route="/serve/"} 2`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
