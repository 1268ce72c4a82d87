package client

// These tests exercise the client's transport (retries, Retry-After,
// Idempotency-Key reuse, error decoding) against a tiny httptest server
// that misbehaves on purpose, which the real registry cannot be made to
// do. Behaviour of the API itself is tested against the real server in
// client_test.go.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const testToken = "mlr_supersecrettokenvalue0123456789abcd"

type capturedLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *capturedLog) log(_ context.Context, msg string, fields map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%s %v", msg, fields))
}

func (l *capturedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newTestClient(t *testing.T, url string, log *capturedLog, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{
		Address:      url,
		Token:        testToken,
		MaxRetries:   3,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
		UserAgent:    "terraform-provider-mlregistry/test",
		Timeout:      5 * time.Second,
	}
	if log != nil {
		opts.Logger = log.log
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"detail":%q,"code":%q,"request_id":"req-1"}`,
		http.StatusText(status), status, detail, code)
}

func TestRetriesTransientStatusesAndReusesIdempotencyKey(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var mu sync.Mutex
			var keys, bodies []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				keys = append(keys, r.Header.Get("Idempotency-Key"))
				b := make([]byte, 1024)
				n, _ := r.Body.Read(b)
				bodies = append(bodies, string(b[:n]))
				if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
					t.Errorf("Authorization = %q", got)
				}
				if got := r.Header.Get("User-Agent"); got != "terraform-provider-mlregistry/test" {
					t.Errorf("User-Agent = %q", got)
				}
				if len(keys) < 3 {
					writeProblem(w, status, "unavailable", "try later")
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("ETag", `"1"`)
				w.WriteHeader(http.StatusCreated)
				fmt.Fprint(w, `{"name":"churn","revision":1}`)
			}))
			defer srv.Close()
			log := &capturedLog{}
			c := newTestClient(t, srv.URL, log, nil)
			m, err := c.CreateModel(context.Background(), registry.ModelCreate{Name: "churn"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "churn" || m.Revision != 1 {
				t.Fatalf("model = %+v", m)
			}
			if len(keys) != 3 {
				t.Fatalf("attempts = %d, want 3", len(keys))
			}
			if keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
				t.Fatalf("Idempotency-Key must be set once and reused across retries, got %q", keys)
			}
			for _, b := range bodies {
				if b != `{"name":"churn"}` {
					t.Fatalf("body of a retry = %q", b)
				}
			}
			if !strings.Contains(log.String(), "retrying registry request") {
				t.Fatalf("retry not logged:\n%s", log)
			}
			if strings.Contains(log.String(), testToken) {
				t.Fatal("log contains the token")
			}
		})
	}
}

func TestEachCreateCallGetsItsOwnIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"model":"churn","version":1}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil, nil)
	for range 2 {
		if _, err := c.CreateVersion(context.Background(), "churn", registry.ModelVersionCreate{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) != 2 || keys[0] == keys[1] || keys[0] == "" {
		t.Fatalf("keys = %q, want two different keys", keys)
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			var attempts atomic.Int32
			var first, second time.Time
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch attempts.Add(1) {
				case 1:
					first = time.Now()
					w.Header().Set("Retry-After", "1")
					writeProblem(w, status, "unavailable", "slow down")
				default:
					second = time.Now()
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, `{"name":"churn","revision":3}`)
				}
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL, nil, nil)
			// A deadline that leaves room for the wait does not stop it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := c.GetModel(ctx, "churn"); err != nil {
				t.Fatal(err)
			}
			// The backoff without Retry-After would be a few milliseconds.
			if d := second.Sub(first); d < 900*time.Millisecond {
				t.Fatalf("second attempt after %s, want >= 1s (Retry-After: 1)", d)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	resp := func(status int, retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: status, Header: h}
	}
	tests := []struct {
		name string
		resp *http.Response
		want time.Duration
	}{
		{"503 seconds", resp(503, "7"), 7 * time.Second},
		{"429 seconds", resp(429, "2"), 2 * time.Second},
		{"capped", resp(429, "86400"), 30 * time.Second},
		{"date in the past", resp(503, "Mon, 02 Jan 2006 15:04:05 GMT"), 0},
		{"garbage falls back", resp(503, "soon"), 400 * time.Millisecond},
		{"502 ignores Retry-After", resp(502, "30"), 400 * time.Millisecond},
		{"connection error", nil, 400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff(100*time.Millisecond, time.Second, 2, tt.resp); got != tt.want {
				t.Fatalf("backoff = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDoesNotRetryOtherErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		code   string
		want   error
	}{
		{http.StatusBadRequest, "invalid_argument", registry.ErrInvalidArgument},
		{http.StatusUnauthorized, "unauthenticated", registry.ErrUnauthenticated},
		{http.StatusForbidden, "permission_denied", registry.ErrPermissionDenied},
		{http.StatusNotFound, "not_found", registry.ErrNotFound},
		{http.StatusConflict, "already_exists", registry.ErrAlreadyExists},
		{http.StatusPreconditionFailed, "precondition_failed", registry.ErrPreconditionFailed},
		{http.StatusUnprocessableEntity, "policy_violation", registry.ErrPolicyViolation},
		{http.StatusInternalServerError, "internal", registry.ErrInternal},
	} {
		t.Run(tt.code, func(t *testing.T) {
			var attempts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				writeProblem(w, tt.status, tt.code, "the detail")
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL, nil, nil)
			_, err := c.GetModel(context.Background(), "churn")
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if n := attempts.Load(); n != 1 {
				t.Fatalf("attempts = %d, want 1 (no retry)", n)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || apiErr.RequestID != "req-1" {
				t.Fatalf("err = %#v", err)
			}
			var regErr *registry.Error
			if !errors.As(err, &regErr) || regErr.Message != "the detail" {
				t.Fatalf("registry error = %#v", regErr)
			}
		})
	}
}

func TestGivesUpAfterMaxRetries(t *testing.T) {
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "database is down")
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil, nil)
	_, err := c.GetModel(context.Background(), "churn")
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "database is down") {
		t.Fatalf("err = %v", err)
	}
	if n := attempts.Load(); n != 4 {
		t.Fatalf("attempts = %d, want 1 + 3 retries", n)
	}
}

func TestNonProblemBodiesUseTheStatusCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html>nope</html>")
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil, nil)
	_, err := c.GetModel(context.Background(), "churn")
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "<html>") {
		t.Fatalf("error leaks the HTML body: %v", err)
	}
}

func TestRetriesConnectionErrorsAndReportsUnreachable(t *testing.T) {
	// A listener that is closed at once: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	log := &capturedLog{}
	c := newTestClient(t, addr, log, nil)
	err = c.Ping(context.Background())
	if !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "could not reach the registry at "+addr) {
		t.Fatalf("err = %v", err)
	}
	if strings.Count(log.String(), "will retry") != 4 {
		t.Fatalf("want 4 failed attempts logged:\n%s", log)
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%v %+v %#v", c, c, c), log.String()} {
		if strings.Contains(s, testToken) {
			t.Fatalf("token leaked: %s", s)
		}
	}
}

func TestIfMatchAndQuery(t *testing.T) {
	type seen struct{ method, path, query, ifMatch, ctype string }
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("If-Match"), r.Header.Get("Content-Type")})
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/", nil, nil)
	ctx := context.Background()
	desc := "d"
	flagged := false
	calls := []func() error{
		func() error {
			_, err := c.UpdateModel(ctx, "churn", registry.ModelPatch{Description: &desc}, 7)
			return err
		},
		func() error { return c.DeleteModel(ctx, "churn", true, 0) },
		func() error {
			_, err := c.AssignStage(ctx, "churn", "production", registry.StageAssign{Version: 2}, 3)
			return err
		},
		func() error {
			_, err := c.DryRunAssignStage(ctx, "churn", "production", registry.StageAssign{Version: 2})
			return err
		},
		func() error {
			_, err := c.ListVersions(ctx, "churn", registry.VersionFilter{
				ListOptions: registry.ListOptions{PageSize: 5, PageToken: "abc"},
				Stage:       "staging", Tag: "team=ds", Flagged: &flagged, OrderBy: "metrics.auc desc",
			})
			return err
		},
	}
	for _, call := range calls {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	want := []seen{
		{"PATCH", "/api/v1/models/churn", "", `"7"`, "application/json"},
		{"DELETE", "/api/v1/models/churn", "force=true", "", ""},
		{"PUT", "/api/v1/models/churn/stages/production", "", `"3"`, "application/json"},
		{"PUT", "/api/v1/models/churn/stages/production", "dry_run=true", "", "application/json"},
		{"GET", "/api/v1/models/churn/versions", "flagged=false&order_by=metrics.auc+desc&page_size=5&page_token=abc&stage=staging&tag=team%3Dds", "", ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requests:\n got %v\nwant %v", got, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Address: "127.0.0.1:8080"},
		{Address: "ftp://host"},
		{Address: "http://user:" + testToken + "@host"},
		{Address: "http://host?x=1"},
		{Address: "http://host", Token: "a\nb"},
	} {
		_, err := New(o)
		if err == nil {
			t.Fatalf("New(%v) succeeded", o)
		}
		if strings.Contains(err.Error(), testToken) {
			t.Fatalf("error leaks the token: %v", err)
		}
	}
	o := Options{Address: "http://host", Token: testToken}
	for _, s := range []string{o.String(), fmt.Sprintf("%v|%+v|%#v|%s", o, o, o, o)} {
		if strings.Contains(s, testToken) {
			t.Fatalf("Options print the token: %s", s)
		}
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "later")
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil, func(o *Options) {
		o.MaxRetries = 100
		o.RetryWaitMin, o.RetryWaitMax = 50*time.Millisecond, 50*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetModel(ctx, "churn")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("did not stop at the context deadline")
	}
}

// TestRetryAfterBeyondDeadline: when the server asks for a wait the
// caller's deadline does not leave, the client answers with the server's
// 503 at once instead of sleeping into the deadline and reporting a
// timeout that hides what the registry said.
func TestRetryAfterBeyondDeadline(t *testing.T) {
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.Header().Set("Retry-After", "20")
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "database unreachable")
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.GetModel(ctx, "churn")
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "database unreachable") {
		t.Fatalf("err = %v, want the registry's 503", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("returned after %s; the Retry-After wait outlasts the deadline, so it should not wait", d)
	}
	if n := attempts.Load(); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestIdempotencyKeyFormat(t *testing.T) {
	k := newIdempotencyKey()
	if len(k) != 36 || k[14] != '4' || strings.Count(k, "-") != 4 {
		t.Fatalf("key %q is not a UUIDv4", k)
	}
}
