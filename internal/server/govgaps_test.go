package server

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/faultproxy"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// TestTwoAuthorizationHeadersRefused: with two Authorization headers the
// server cannot tell which credential the caller meant, whichever order
// they come in, so it refuses both orders alike and changes nothing.
func TestTwoAuthorizationHeadersRefused(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	for _, order := range [][2]string{{e.reader, e.admin}, {e.admin, e.reader}} {
		hr, err := http.NewRequest("GET", e.url+"/api/v1/models", nil)
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Add("Authorization", "Bearer "+order[0])
		hr.Header.Add("Authorization", "Bearer "+order[1])
		res := send(t, hr)
		if res.status != http.StatusBadRequest {
			t.Fatalf("two Authorization headers: status %d, want 400; %s", res.status, res.body)
		}
		if p := problem(t, res, registry.CodeInvalidArgument); p.Field != "Authorization" {
			t.Errorf("field %q, want Authorization (%s)", p.Field, p.Detail)
		}
	}
	events := e.countEvents()
	hr, err := http.NewRequest("POST", e.url+"/api/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Add("Authorization", "Bearer "+e.admin)
	hr.Header.Add("Authorization", "Bearer "+e.reader)
	if res := send(t, hr); res.status != http.StatusBadRequest {
		t.Errorf("write with two Authorization headers: status %d, want 400", res.status)
	}
	if got := e.countEvents(); got != events {
		t.Errorf("a refused write wrote %d events", got-events)
	}
}

// TestUnavailableCarriesRetryAfter closes the database under a running
// server: every 503 the API then answers tells the client when to retry.
func TestUnavailableCarriesRetryAfter(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	// A first call caches the reader's token, so the next ones reach the
	// store past authentication.
	e.do(req{method: "GET", path: "/api/v1/models", token: e.reader}, http.StatusOK)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []req{
		{method: "GET", path: "/api/v1/models", token: e.reader},
		{method: "GET", path: "/readyz"},
	} {
		res := e.call(r)
		if res.status != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with the database closed: %d, want 503; %s", r.method, r.path, res.status, res.body)
		}
		problem(t, res, registry.CodeUnavailable)
		ra := res.header.Get("Retry-After")
		if n, err := strconv.Atoi(ra); err != nil || n < 1 || n > 10 {
			t.Errorf("%s %s: Retry-After %q, want a small number of seconds", r.method, r.path, ra)
		}
	}
}

// TestUnreachablePostgresCarriesRetryAfter cuts the connection to
// PostgreSQL under a running server (a proxy between them closes): the
// API answers 503 unavailable with Retry-After, not 500.
func TestUnreachablePostgresCarriesRetryAfter(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(u.Host, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = proxy.Addr()
	e := newEnv(t, u.String())
	e.do(req{method: "GET", path: "/api/v1/models", token: e.reader}, http.StatusOK)
	if err := proxy.Close(); err != nil {
		t.Fatal(err)
	}
	res := e.call(req{method: "GET", path: "/api/v1/models", token: e.reader})
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("with PostgreSQL unreachable: %d, want 503; %s", res.status, res.body)
	}
	problem(t, res, registry.CodeUnavailable)
	if ra := res.header.Get("Retry-After"); ra == "" {
		t.Errorf("503 without Retry-After")
	}
}

func send(t *testing.T, hr *http.Request) *resp {
	t.Helper()
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}
