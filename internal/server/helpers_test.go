package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/receipt"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// fakeClock is shared by the store and the server so tests can move time
// forward (stage soak, token cache expiry).
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// backend is a database the suite runs on.
type backend struct {
	name string
	dsn  func(t *testing.T) string
}

// backends is SQLite always, plus PostgreSQL when a test server is
// configured (MLREGISTRY_TEST_POSTGRES_DSN, see scripts/with-postgres.sh);
// storetest.PostgresDSN skips otherwise.
func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "r.db") }},
		{"postgres", func(t *testing.T) string { return storetest.PostgresDSN(t) }},
	}
}

// forEachBackend runs fn once per backend as parallel subtests, each
// with a fresh database.
func forEachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.dsn(t))
		})
	}
}

type testEnv struct {
	t     *testing.T
	store *sqlstore.Store
	srv   *Server
	ts    *httptest.Server
	clock *fakeClock
	url   string

	// Secrets of the admin, writer and reader tokens.
	admin, writer, reader string
	// tokens by name, as stored.
	tokens map[string]*registry.Token

	mu      sync.Mutex
	changes []string
}

type envOption func(*Options)

// newEnv boots a real server over a real store on dsn, with an admin, a
// writer and a reader token.
func newEnv(t *testing.T, dsn string, opts ...envOption) *testEnv {
	t.Helper()
	return newEnvWith(t, dsn, sqlstore.Options{}, false, opts...)
}

// newEnvWith is newEnv with store options (its clock is the env's) and,
// when cached, the server's answer cache on the store's changes.
func newEnvWith(t *testing.T, dsn string, so sqlstore.Options, cached bool, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clock: newFakeClock(), tokens: map[string]*registry.Token{}}
	ctx := context.Background()
	so.Now = e.clock.Now
	st, err := sqlstore.Open(ctx, dsn, so)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	e.store = st
	receipts, err := receipt.Open(ctx, st, receipt.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("receipt keys: %v", err)
	}

	// The listener first, so PublicURL can be the real address.
	e.ts = httptest.NewUnstartedServer(nil)
	e.url = "http://" + e.ts.Listener.Addr().String()
	o := Options{
		Store:     st,
		Now:       e.clock.Now,
		PublicURL: e.url,
		Receipts:  receipts,
		OnChange: func(kind, name string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.changes = append(e.changes, kind+":"+name)
		},
	}
	if cached {
		c, err := st.Changes(ctx)
		if err != nil {
			t.Fatalf("store changes: %v", err)
		}
		o.Changes = c
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	e.srv = srv
	e.ts.Config.Handler = srv.Handler()
	e.ts.Start()
	t.Cleanup(func() {
		e.ts.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})

	e.admin = e.token("admin", registry.ScopeAdmin)
	e.writer = e.token("writer", registry.ScopeWrite)
	e.reader = e.token("reader", registry.ScopeRead)
	return e
}

// token creates a token in the store and returns its secret.
func (e *testEnv) token(name string, scope registry.Scope, stages ...string) string {
	e.t.Helper()
	secret, hash, err := registry.NewTokenSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.store.CreateToken(context.Background(), registry.Actor{Name: "test"}, registry.Token{
		Name: name, Scope: scope, Stages: stages, Hash: hash,
	})
	if err != nil {
		e.t.Fatalf("create token %s: %v", name, err)
	}
	e.tokens[name] = tok
	return secret
}

func (e *testEnv) Changes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.changes...)
}

// req describes one call. Body: nil (none), string or []byte (raw), or a
// value sent as JSON.
type req struct {
	method, path string
	token        string // "" = no Authorization header
	body         any
	header       map[string]string
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (e *testEnv) call(r req) *resp {
	e.t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	hr, err := http.NewRequest(r.method, e.url+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// do calls and checks the status.
func (e *testEnv) do(r req, want int) *resp {
	e.t.Helper()
	res := e.call(r)
	if res.status != want {
		e.t.Fatalf("%s %s: status %d, want %d; body: %s", r.method, r.path, res.status, want, res.body)
	}
	return res
}

// into decodes a JSON response.
func into[T any](t *testing.T, r *resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %T: %v; body: %s", v, err, r.body)
	}
	return v
}

// problem checks r is a problem+json document with the code and returns it.
func problem(t *testing.T, r *resp, code registry.Code) Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body: %s", ct, r.body)
	}
	p := into[Problem](t, r)
	if p.Code != code {
		t.Fatalf("code = %q, want %q; problem: %+v", p.Code, code, p)
	}
	if p.Status != r.status || p.Title != http.StatusText(r.status) || p.Type != ProblemTypeBase+string(code) {
		t.Fatalf("problem does not match the response status %d: %+v", r.status, p)
	}
	if p.RequestID == "" || p.RequestID != r.header.Get("X-Request-ID") {
		t.Fatalf("problem request_id %q, X-Request-ID %q", p.RequestID, r.header.Get("X-Request-ID"))
	}
	if p.Detail == "" {
		t.Fatalf("problem without detail: %+v", p)
	}
	return p
}

// expectProblem calls, checks status and code, and returns the problem.
func (e *testEnv) expectProblem(r req, status int, code registry.Code) Problem {
	e.t.Helper()
	return problem(e.t, e.do(r, status), code)
}

// sha returns a valid checksum derived from seed.
func sha(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// createModel creates a model with the admin token.
func (e *testEnv) createModel(m registry.ModelCreate) registry.Model {
	e.t.Helper()
	return into[registry.Model](e.t, e.do(req{method: "POST", path: "/api/v1/models", token: e.admin, body: m}, http.StatusCreated))
}

// createVersion creates a version of model with the given checksum seed.
func (e *testEnv) createVersion(model string, v registry.ModelVersionCreate) registry.ModelVersion {
	e.t.Helper()
	if v.Source == "" {
		v.Source = "s3://models/" + model + "/model.onnx"
	}
	if v.Format == "" {
		v.Format = "onnx"
	}
	return into[registry.ModelVersion](e.t, e.do(req{method: "POST", path: "/api/v1/models/" + model + "/versions", token: e.writer, body: v}, http.StatusCreated))
}

func (e *testEnv) assign(model, stage string, version int64, token string, want int) *resp {
	e.t.Helper()
	return e.do(req{method: "PUT", path: "/api/v1/models/" + model + "/stages/" + stage, token: token,
		body: registry.StageAssign{Version: version}}, want)
}

// countEvents counts every audit event in the store.
func (e *testEnv) countEvents() int {
	e.t.Helper()
	n := 0
	opts := registry.EventFilter{ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}}
	for {
		p, err := e.store.ListEvents(context.Background(), opts)
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(p.Items)
		if p.NextPageToken == "" {
			return n
		}
		opts.PageToken = p.NextPageToken
	}
}

// countVersions counts a model's versions in the store.
func (e *testEnv) countVersions(model string) int {
	e.t.Helper()
	p, err := e.store.ListVersions(context.Background(), model, registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(p.Items)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
