package app_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestServeAuth: /serve needs a token with read scope whichever path
// answers (the gateway's fast lane for plain GETs, net/http for the
// rest), and a refused request gets the API's problem+json.
func TestServeAuth(t *testing.T) {
	r := apptest.Start(t)
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, r, blue, green)
	read := r.Token(t, "reader", registry.ScopeRead)

	addr := strings.TrimPrefix(r.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	send := func(method, auth, extra string) (*http.Response, string) {
		t.Helper()
		req := method + " /serve/ep/predict HTTP/1.1\r\nHost: " + addr + "\r\n"
		if auth != "" {
			req += "Authorization: Bearer " + auth + "\r\n"
		}
		req += extra + "\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	// A read token: served, with the headers every registry answer has.
	res, body := send("GET", read, "X-Request-ID: req-42\r\n")
	if res.StatusCode != 200 || body != "blue /predict" || res.Header.Get("X-Model-Version") != "1" {
		t.Fatalf("read token: %d %q", res.StatusCode, body)
	}
	if res.Header.Get("X-Request-ID") != "req-42" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: %v", res.Header)
	}
	// The registry token is not passed on to the model server.
	if strings.Contains(body, "mlr_") {
		t.Fatal("token reached the upstream")
	}

	// No token, a bad token: 401 problem+json, and the connection stays
	// usable.
	for _, tok := range []string{"", "mlr_notarealtoken"} {
		res, body = send("GET", tok, "")
		if res.StatusCode != 401 || !strings.Contains(body, `"code":"unauthenticated"`) {
			t.Fatalf("token %q: %d %q", tok, res.StatusCode, body)
		}
	}
	res, body = send("GET", read, "")
	if res.StatusCode != 200 || body != "blue /predict" {
		t.Fatalf("after 401s: %d %q", res.StatusCode, body)
	}

	// A revoked token stops working once the server's token cache
	// (5 s on the registry's clock) lets go of it.
	if err := r.Store.RevokeToken(context.Background(), registry.Actor{Name: "test"}, "reader"); err != nil {
		t.Fatal(err)
	}
	r.Clock.Advance(6 * time.Second)
	res, body = send("GET", read, "")
	if res.StatusCode != 401 {
		t.Fatalf("revoked token: %d %q", res.StatusCode, body)
	}
}
