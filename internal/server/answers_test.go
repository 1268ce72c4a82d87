package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// cacheURLs are the cached read shapes the consistency tests compare.
var cacheURLs = []string{
	"/api/v1/models",
	"/api/v1/models?page_size=1",
	"/api/v1/models/churn",
	"/api/v1/models/fraud",
	"/api/v1/models/churn/versions",
	"/api/v1/models/churn/versions?page_size=2",
	"/api/v1/models/churn/versions?stage=production",
	"/api/v1/models/churn/versions?flagged=true",
	"/api/v1/models/churn/versions?tag=env%3Dprod&order_by=metrics.auc+desc",
	"/api/v1/models/churn/versions/1",
	"/api/v1/models/churn/versions/2",
	"/api/v1/models/churn/versions/3",
	"/api/v1/models/churn/versions/4",
}

type answer struct {
	status int
	etag   string
	body   []byte
}

func getAnswer(t *testing.T, base, path, token string) answer {
	t.Helper()
	hr, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: res.StatusCode, etag: res.Header.Get("ETag"), body: b}
	if a.status != http.StatusOK {
		// A problem carries its request's ID; its code is what must agree.
		var p Problem
		_ = json.Unmarshal(b, &p)
		a.body = []byte(p.Code)
	}
	return a
}

func (a answer) same(b answer) bool {
	return a.status == b.status && a.etag == b.etag && bytes.Equal(a.body, b.body)
}

// uncachedTwin serves the same store without the answer cache: what every
// cached answer must equal.
func uncachedTwin(t *testing.T, e *testEnv) string {
	t.Helper()
	srv, err := New(Options{Store: e.store, Now: e.clock.Now, PublicURL: e.url})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
	})
	return ts.URL
}

// TestCachedAnswersStayExact warms the cache on every read shape, makes
// one write of each kind, and compares every cached answer (status, ETag,
// body) with the same store's uncached answer. The store polls for other
// processes' commits only once an hour here, so what keeps the answers
// exact is the writing replica's own commit hook.
func TestCachedAnswersStayExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnvWith(t, dsn, sqlstore.Options{ChangePoll: time.Hour}, true)
		twin := uncachedTwin(t, e)
		ctx := context.Background()

		e.createModel(registry.ModelCreate{Name: "churn"})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1"), Metrics: map[string]float64{"auc": 0.8}, Tags: map[string]string{"env": "prod"}})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2"), Metrics: map[string]float64{"auc": 0.9}, Tags: map[string]string{"env": "prod"}})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("3"), Metrics: map[string]float64{"auc": 0.7}, Tags: map[string]string{"env": "dev"}})

		var endpointRev int64
		writes := []struct {
			name string
			do   func()
		}{
			{"model create", func() { e.createModel(registry.ModelCreate{Name: "fraud"}) }},
			{"model update", func() {
				e.do(req{method: "PATCH", path: "/api/v1/models/churn", token: e.admin, body: map[string]any{"description": "churn model", "tags": map[string]string{"team": "ds"}}}, http.StatusOK)
			}},
			{"version create", func() {
				e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("4"), Metrics: map[string]float64{"auc": 0.95}, Tags: map[string]string{"env": "prod"}})
			}},
			{"version update", func() {
				e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/3", token: e.writer, body: map[string]any{"description": "retrained", "tags": map[string]string{"env": "prod"}}}, http.StatusOK)
			}},
			{"add metrics", func() {
				e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: e.writer, body: map[string]any{"add_metrics": map[string]float64{"f1": 0.5}}}, http.StatusOK)
			}},
			{"stage assign", func() { e.assign("churn", "production", 2, e.writer, http.StatusOK) }},
			{"stage promotion", func() { e.assign("churn", "production", 1, e.writer, http.StatusOK) }},
			{"stage unassign", func() {
				e.do(req{method: "DELETE", path: "/api/v1/models/churn/stages/production", token: e.writer}, http.StatusNoContent)
			}},
			{"stage reassign", func() { e.assign("churn", "production", 2, e.writer, http.StatusOK) }},
			{"endpoint create", func() {
				ep := into[registry.Endpoint](t, e.do(req{method: "POST", path: "/api/v1/endpoints", token: e.writer, body: registry.EndpointCreate{
					Name: "churn-api", Model: "churn",
					Routes: []registry.Route{
						{Name: "stable", Version: 1, UpstreamURL: "http://churn-v1:8080", Weight: 90},
						{Name: "canary", Version: 3, UpstreamURL: "http://churn-v3:8080", Weight: 10},
					},
					Guard: &registry.Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"},
				}}, http.StatusCreated))
				endpointRev = ep.Revision
			}},
			{"rollout start", func() {
				e.do(req{method: "PATCH", path: "/api/v1/endpoints/churn-api", token: e.writer, body: map[string]any{
					"rollout": map[string]any{"steps": []int{10, 50, 100}, "bake": "1h", "min_requests": 0},
					"routes": []registry.Route{
						{Name: "stable", Version: 1, UpstreamURL: "http://churn-v1:8080", Weight: 50},
						{Name: "canary", Version: 3, UpstreamURL: "http://churn-v3:8080", Weight: 50},
					},
				}}, http.StatusOK)
			}},
			{"rollout pause", func() {
				if _, err := e.store.ControlRollout(ctx, registry.Actor{Name: "op"}, "churn-api", registry.RolloutOpPause, "hold"); err != nil {
					t.Fatal(err)
				}
			}},
			{"rollout resume", func() {
				if _, err := e.store.ControlRollout(ctx, registry.Actor{Name: "op"}, "churn-api", registry.RolloutOpResume, "go on"); err != nil {
					t.Fatal(err)
				}
			}},
			{"guard rollback", func() {
				cur, err := e.store.GetEndpoint(ctx, "churn-api")
				if err != nil {
					t.Fatal(err)
				}
				endpointRev = cur.Revision
				ep, err := e.store.RecordGuardRollback(ctx, registry.Actor{Name: "guard"}, "churn-api", endpointRev, []registry.Route{
					{Name: "stable", Version: 1, UpstreamURL: "http://churn-v1:8080", Weight: 100},
					{Name: "canary", Version: 3, UpstreamURL: "http://churn-v3:8080", Weight: 0},
				}, "canary failed its guard")
				if err != nil {
					t.Fatal(err)
				}
				endpointRev = ep.Revision
			}},
			{"flag with drain", func() {
				e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/3", token: e.admin, body: map[string]any{"flagged": true, "flag_reason": "bad data"}}, http.StatusOK)
			}},
			{"unflag", func() {
				e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/3", token: e.admin, body: map[string]any{"flagged": false}}, http.StatusOK)
			}},
			{"flag draining a serving route", func() {
				e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: e.admin, body: map[string]any{"flagged": true, "flag_reason": "drift"}}, http.StatusOK)
				ep, err := e.store.GetEndpoint(ctx, "churn-api")
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range ep.Routes {
					if r.Version == 1 && r.Weight != 0 {
						t.Fatalf("the flag left weight %d on version 1: the drain did not run", r.Weight)
					}
				}
			}},
			{"unflag the drained version", func() {
				e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: e.admin, body: map[string]any{"flagged": false}}, http.StatusOK)
			}},
			{"endpoint delete", func() {
				e.do(req{method: "DELETE", path: "/api/v1/endpoints/churn-api", token: e.writer}, http.StatusNoContent)
			}},
			{"version delete", func() {
				e.do(req{method: "DELETE", path: "/api/v1/models/churn/versions/4", token: e.writer}, http.StatusNoContent)
			}},
			{"model delete", func() {
				e.do(req{method: "DELETE", path: "/api/v1/models/fraud", token: e.admin}, http.StatusNoContent)
			}},
		}
		for _, w := range writes {
			for _, path := range cacheURLs {
				getAnswer(t, e.url, path, e.reader)
			}
			before := e.srv.answers.cache.Stats().Hits
			for _, path := range cacheURLs {
				getAnswer(t, e.url, path, e.reader)
			}
			if hits := e.srv.answers.cache.Stats().Hits - before; hits == 0 {
				t.Fatalf("before %s: a warm cache answered nothing", w.name)
			}
			w.do()
			for _, path := range cacheURLs {
				got, want := getAnswer(t, e.url, path, e.reader), getAnswer(t, twin, path, e.reader)
				if !got.same(want) {
					t.Errorf("after %s, GET %s answered from the cache:\n%d %s %s\nthe store answers:\n%d %s %s",
						w.name, path, got.status, got.etag, got.body, want.status, want.etag, want.body)
				}
			}
		}
	})
}

// TestCachedAnswersAcrossReplicas runs two replicas (two stores, each its
// own pool, on one database: two PostgreSQL replicas, or two processes on
// one SQLite file), each with its answer cache. A write answers on the
// replica that took it at once, and on the other within the poll interval.
func TestCachedAnswersAcrossReplicas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		const poll = 100 * time.Millisecond
		a := newEnvWith(t, dsn, sqlstore.Options{ChangePoll: poll}, true)
		b := newReplica(t, a, dsn, poll).url

		a.createModel(registry.ModelCreate{Name: "churn"})
		a.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1"), Tags: map[string]string{"env": "prod"}})
		a.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2"), Tags: map[string]string{"env": "prod"}})

		writes := []struct {
			name, path string
			do         func(e *testEnv, base string)
		}{
			{"version update on a", "/api/v1/models/churn/versions/1", func(e *testEnv, base string) {
				patchAt(t, base, "/api/v1/models/churn/versions/1", e.writer, `{"description":"from a"}`)
			}},
			{"version update on b", "/api/v1/models/churn/versions/1", func(e *testEnv, base string) {
				patchAt(t, base, "/api/v1/models/churn/versions/1", e.writer, `{"description":"from b"}`)
			}},
			{"stage assign on a", "/api/v1/models/churn/versions?stage=production", func(e *testEnv, base string) {
				e.assign("churn", "production", 2, e.writer, http.StatusOK)
			}},
			{"version create on a", "/api/v1/models/churn/versions?tag=env%3Dprod", func(e *testEnv, base string) {
				e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("3"), Tags: map[string]string{"env": "prod"}})
			}},
		}
		for _, w := range writes {
			writer, other := a.url, b
			if w.name[len(w.name)-1] == 'b' {
				writer, other = b, a.url
			}
			// Both replicas hold the answer before the write.
			for range 2 {
				getAnswer(t, a.url, w.path, a.reader)
				getAnswer(t, b, w.path, a.reader)
			}
			w.do(a, writer)
			start := time.Now()
			want := getAnswer(t, uncachedTwin(t, a), w.path, a.reader)
			if got := getAnswer(t, writer, w.path, a.reader); !got.same(want) {
				t.Fatalf("%s: the writing replica answered %s %s, the store has %s %s", w.name, got.etag, got.body, want.etag, want.body)
			}
			for {
				got := getAnswer(t, other, w.path, a.reader)
				if got.same(want) {
					break
				}
				if time.Since(start) > time.Second {
					t.Fatalf("%s: the other replica still answers %s %s after 1s; the store has %s %s", w.name, got.etag, got.body, want.etag, want.body)
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Logf("%s: the other replica answered the write after %v (poll %v)", w.name, time.Since(start).Round(time.Millisecond), poll)
		}
	})
}

type replica struct {
	url   string
	store *sqlstore.Store
}

// newReplica starts a second server, with its own store and answer cache,
// on a's database. Tokens are a's.
func newReplica(t *testing.T, a *testEnv, dsn string, poll time.Duration) replica {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{Now: a.clock.Now, ChangePoll: poll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	changes, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Store: st, Now: a.clock.Now, Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
	})
	return replica{url: ts.URL, store: st}
}

func patchAt(t *testing.T, base, path, token, body string) {
	t.Helper()
	hr, err := http.NewRequest("PATCH", base+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("PATCH %s on %s: %d %s", path, base, res.StatusCode, b)
	}
}

// TestUnrelatedWritesKeepAnswers: writes that change no model or version
// answer (the rollout driver renews its lease several times a second) must
// not move the change generation, or every cached answer is dropped.
func TestUnrelatedWritesKeepAnswers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnvWith(t, dsn, sqlstore.Options{ChangePoll: time.Hour}, true)
		other := newReplica(t, e, dsn, time.Hour)
		ctx := context.Background()
		e.createModel(registry.ModelCreate{Name: "churn"})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1")})
		c, err := e.store.Changes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The poll's first look after the writes above.
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
		gen := c.Generation()
		for i := range 3 {
			for _, st := range []*sqlstore.Store{e.store, other.store} {
				if _, err := st.AcquireLease(ctx, "rollouts", "replica-a", e.clock.Now(), time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if now := c.Generation(); now != gen {
				t.Fatalf("lease renewals (round %d) moved the change generation from %d to %d: every cached answer is dropped", i+1, gen, now)
			}
		}
		// A write that changes an answer, on the other replica, does.
		patchAt(t, other.url, "/api/v1/models/churn/versions/1", e.writer, `{"description":"from b"}`)
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
		if c.Generation() == gen {
			t.Fatal("another replica's version update did not move the change generation")
		}
	})
}
