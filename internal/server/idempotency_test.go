package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestIdempotencyKeyDecodedPath: a retry that spells the URL differently
// (an escaped unreserved character) is the same request: it gets the
// replay, not a second create or a conflict.
func TestIdempotencyKeyDecodedPath(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "idem-a"})
		body, _ := json.Marshal(registry.ModelVersionCreate{Source: "s3://m/1", Checksum: sha("1"), Format: "onnx"})
		key := map[string]string{"Idempotency-Key": "retry-1"}
		first := e.do(req{method: "POST", path: "/api/v1/models/idem%2Da/versions", token: e.writer, body: body, header: key}, http.StatusCreated)
		for _, path := range []string{"/api/v1/models/idem-a/versions", "/api/v1/models/%69dem-a/versions", "/api/v1/models/idem%2Da/versions"} {
			again := e.do(req{method: "POST", path: path, token: e.writer, body: body, header: key}, http.StatusCreated)
			if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, first.body) {
				t.Errorf("%s: not a replay: %v %s", path, again.header, again.body)
			}
		}
		if n := e.countVersions("idem-a"); n != 1 {
			t.Errorf("%d versions, want 1", n)
		}
		// Another model is another request: the key is spent.
		e.createModel(registry.ModelCreate{Name: "idem-b"})
		e.expectProblem(req{method: "POST", path: "/api/v1/models/idem-b/versions", token: e.writer, body: body, header: key},
			http.StatusUnprocessableEntity, registry.CodeIdempotencyMismatch)
		if n := e.countVersions("idem-b"); n != 0 {
			t.Errorf("idem-b has %d versions, want 0", n)
		}
	})
}

// TestIdempotencyKeyScopedToTokenAndRequest: a key names one request of
// one token. The same token reusing it for another method, path or body
// gets 422 and nothing is applied; another token's key of the same
// spelling is its own: it is neither replayed the first token's answer
// nor refused.
func TestIdempotencyKeyScopedToTokenAndRequest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "a"})
		e.createModel(registry.ModelCreate{Name: "b"})
		key := map[string]string{"Idempotency-Key": "k-1"}
		patch := map[string]any{"description": "from k-1"}
		first := e.do(req{method: "PATCH", path: "/api/v1/models/a", token: e.writer, body: patch, header: key}, http.StatusOK)
		again := e.do(req{method: "PATCH", path: "/api/v1/models/a", token: e.writer, body: patch, header: key}, http.StatusOK)
		if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, first.body) {
			t.Errorf("the same request again was not replayed: %v %s", again.header, again.body)
		}
		events := e.countEvents()
		for _, r := range []req{
			{method: "PATCH", path: "/api/v1/models/b", body: patch},
			{method: "PATCH", path: "/api/v1/models/a", body: map[string]any{"description": "other"}},
			{method: "POST", path: "/api/v1/models", body: map[string]any{"name": "c"}},
			{method: "DELETE", path: "/api/v1/models/a"},
		} {
			r.token, r.header = e.writer, key
			p := e.expectProblem(r, http.StatusUnprocessableEntity, registry.CodeIdempotencyMismatch)
			if !strings.Contains(p.Detail, "k-1") {
				t.Errorf("%s %s: detail does not name the key: %s", r.method, r.path, p.Detail)
			}
		}
		if got := e.countEvents(); got != events {
			t.Errorf("refused reuses wrote %d events", got-events)
		}
		b := into[registry.Model](t, e.do(req{method: "GET", path: "/api/v1/models/b", token: e.reader}, http.StatusOK))
		if b.Description != "" {
			t.Errorf("model b was changed through a reused key: %+v", b)
		}
		e.do(req{method: "GET", path: "/api/v1/models/c", token: e.reader}, http.StatusNotFound)

		// Another token, same key: its own request, run for real.
		other := e.token("writer-2", registry.ScopeWrite)
		r := e.do(req{method: "PATCH", path: "/api/v1/models/b", token: other, body: map[string]any{"description": "from writer-2"}, header: key}, http.StatusOK)
		if r.header.Get("Idempotent-Replayed") != "" || into[registry.Model](t, r).Description != "from writer-2" {
			t.Errorf("another token's key: %v %s", r.header, r.body)
		}
		r = e.do(req{method: "PATCH", path: "/api/v1/models/a", token: e.admin, body: patch, header: key}, http.StatusOK)
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("the admin was replayed the writer's answer")
		}
	})
}

// crashingStore loses every CompleteIdempotent, as a server that dies
// between committing a create and recording its answer would.
type crashingStore struct {
	Store
	completes atomic.Int32
}

func (s *crashingStore) CompleteIdempotent(context.Context, registry.IdempotencyKey, registry.IdempotencyRecord) error {
	s.completes.Add(1)
	return errors.New("simulated crash after the commit")
}

// TestIdempotencyCompletedWithWrite: the answer to a create is stored in
// the create's own transaction, so losing everything after the commit
// still leaves a completed record: the retry is replayed at once instead
// of getting 409 "in progress" (and, a minute later, a second create).
func TestIdempotencyCompletedWithWrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		cs := &crashingStore{}
		e := newEnv(t, dsn, func(o *Options) {
			cs.Store = o.Store
			o.Store = cs
		})
		e.createModel(registry.ModelCreate{Name: "churn"})
		for _, c := range []struct {
			path string
			body any
		}{
			{"/api/v1/models", registry.ModelCreate{Name: "fraud"}},
			{"/api/v1/models/churn/versions", registry.ModelVersionCreate{Source: "s3://m/1", Checksum: sha("1"), Format: "onnx"}},
			{"/api/v1/endpoints", registry.EndpointCreate{Name: "api", Model: "churn", Routes: []registry.Route{{Name: "a", Version: 1, UpstreamURL: "http://a:1", Weight: 100}}}},
		} {
			body, _ := json.Marshal(c.body)
			key := map[string]string{"Idempotency-Key": "once " + c.path}
			first := e.do(req{method: "POST", path: c.path, token: e.admin, body: body, header: key}, http.StatusCreated)
			events := e.countEvents()
			again := e.do(req{method: "POST", path: c.path, token: e.admin, body: body, header: key}, http.StatusCreated)
			if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, first.body) {
				t.Errorf("%s: retry after a lost completion: %v %s", c.path, again.header, again.body)
			}
			for _, h := range []string{"ETag", "Location", "Content-Type"} {
				if again.header.Get(h) != first.header.Get(h) {
					t.Errorf("%s: %s first %q, replay %q", c.path, h, first.header.Get(h), again.header.Get(h))
				}
			}
			if got := e.countEvents(); got != events {
				t.Errorf("%s: the retry wrote %d events", c.path, got-events)
			}
		}
		if n := cs.completes.Load(); n != 0 {
			t.Errorf("successful creates called CompleteIdempotent %d times; their transaction completes the claim", n)
		}
	})
}

// TestIdempotentConditionalWrites: PATCH, PUT and DELETE honour
// Idempotency-Key. The first attempt of a conditional write moves the
// revision, so its retry with the same If-Match would get 412; with the
// same key it gets the first answer (from the write's own transaction:
// the store here loses every CompleteIdempotent) and writes nothing.
// The same key with another If-Match, query or body is 422.
func TestIdempotentConditionalWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		cs := &crashingStore{}
		e := newEnv(t, dsn, func(o *Options) {
			cs.Store = o.Store
			o.Store = cs
		})
		e.createModel(registry.ModelCreate{Name: "churn"})
		e.createModel(registry.ModelCreate{Name: "gone"})
		v1 := e.createVersion("churn", registry.ModelVersionCreate{Source: "s3://m/1", Checksum: sha("1"), Format: "onnx"})
		e.createVersion("churn", registry.ModelVersionCreate{Source: "s3://m/2", Checksum: sha("2"), Format: "onnx"})
		v3 := e.createVersion("churn", registry.ModelVersionCreate{Source: "s3://m/3", Checksum: sha("3"), Format: "onnx"})
		e.do(req{method: "POST", path: "/api/v1/endpoints", token: e.admin, body: registry.EndpointCreate{Name: "api", Model: "churn",
			Routes: []registry.Route{{Name: "a", Version: 1, UpstreamURL: "http://a:1", Weight: 100}}}}, http.StatusCreated)
		e.assign("churn", "staging", 1, e.admin, http.StatusOK)

		desc := "updated"
		routes := []registry.Route{{Name: "a", Version: 1, UpstreamURL: "http://a:1", Weight: 60}, {Name: "b", Version: 2, UpstreamURL: "http://b:1", Weight: 40}}
		for _, c := range []struct {
			method, path string
			body         any
			ifMatch      string
			status       int
		}{
			{"PATCH", "/api/v1/models/churn", registry.ModelPatch{Description: &desc}, `"1"`, http.StatusOK},
			{"PATCH", "/api/v1/models/churn/versions/1", registry.ModelVersionPatch{Description: &desc}, etag(v1.Revision), http.StatusOK},
			{"PUT", "/api/v1/models/churn/stages/staging", registry.StageAssign{Version: 2}, `"1"`, http.StatusOK},
			{"DELETE", "/api/v1/models/churn/stages/staging", nil, `"2"`, http.StatusNoContent},
			{"PATCH", "/api/v1/endpoints/api", registry.EndpointPatch{Routes: &routes}, `"1"`, http.StatusOK},
			{"DELETE", "/api/v1/endpoints/api", nil, `"2"`, http.StatusNoContent},
			{"DELETE", "/api/v1/models/churn/versions/3", nil, etag(v3.Revision), http.StatusNoContent},
			{"DELETE", "/api/v1/models/gone", nil, `"1"`, http.StatusNoContent},
		} {
			key := map[string]string{"Idempotency-Key": "k " + c.method + " " + c.path, "If-Match": c.ifMatch}
			first := e.do(req{method: c.method, path: c.path, token: e.admin, body: c.body, header: key}, c.status)
			events := e.countEvents()
			again := e.do(req{method: c.method, path: c.path, token: e.admin, body: c.body, header: key}, c.status)
			if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, first.body) ||
				again.header.Get("ETag") != first.header.Get("ETag") {
				t.Errorf("%s %s: retry is not the first answer: %v %s / %v %s", c.method, c.path, first.header, first.body, again.header, again.body)
			}
			if got := e.countEvents(); got != events {
				t.Errorf("%s %s: the retry wrote %d events", c.method, c.path, got-events)
			}
			// Without the key the same retry fails: its own If-Match, or the
			// thing it deletes is gone.
			status, code := http.StatusPreconditionFailed, registry.CodePreconditionFailed
			if c.method == "DELETE" {
				status, code = http.StatusNotFound, registry.CodeNotFound
			}
			e.expectProblem(req{method: c.method, path: c.path, token: e.admin, body: c.body, header: map[string]string{"If-Match": c.ifMatch}}, status, code)
			// The same key for another request is refused.
			other := map[string]string{"Idempotency-Key": key["Idempotency-Key"], "If-Match": `"99"`}
			e.expectProblem(req{method: c.method, path: c.path, token: e.admin, body: c.body, header: other}, http.StatusUnprocessableEntity, registry.CodeIdempotencyMismatch)
		}
		e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn", token: e.admin, body: registry.ModelPatch{Owner: &desc},
			header: map[string]string{"Idempotency-Key": "k PATCH /api/v1/models/churn", "If-Match": `"1"`}}, http.StatusUnprocessableEntity, registry.CodeIdempotencyMismatch)
		e.expectProblem(req{method: "DELETE", path: "/api/v1/models/gone?force=true", token: e.admin,
			header: map[string]string{"Idempotency-Key": "k DELETE /api/v1/models/gone", "If-Match": `"1"`}}, http.StatusUnprocessableEntity, registry.CodeIdempotencyMismatch)
		if n := cs.completes.Load(); n != 0 {
			t.Errorf("successful writes called CompleteIdempotent %d times; their transaction completes the claim", n)
		}

		// A dry run is never recorded under the key: the real write with the
		// same key runs.
		dry := map[string]string{"Idempotency-Key": "dry-then-real"}
		e.do(req{method: "PUT", path: "/api/v1/models/churn/stages/production?dry_run=true", token: e.admin, body: registry.StageAssign{Version: 1}, header: dry}, http.StatusOK)
		if r := e.do(req{method: "PUT", path: "/api/v1/models/churn/stages/production", token: e.admin, body: registry.StageAssign{Version: 1}, header: dry}, http.StatusOK); r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("the assignment replayed its dry run")
		}
	})
}

// gatedStore holds the first UpdateModel until released, so a request
// can be kept in flight; later calls pass.
type gatedStore struct {
	Store
	held             atomic.Bool
	entered, release chan struct{}
}

func (s *gatedStore) UpdateModel(ctx context.Context, a registry.Actor, name string, p registry.ModelPatch, pre registry.Precondition) (*registry.Model, error) {
	if s.held.CompareAndSwap(false, true) {
		close(s.entered)
		<-s.release
	}
	return s.Store.UpdateModel(ctx, a, name, p, pre)
}

// TestIdempotentWriteInFlight: a retry that arrives while the first
// attempt of a conditional write is still running gets 409 conflict, and
// the first answer once it is done.
func TestIdempotentWriteInFlight(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		gs := &gatedStore{entered: make(chan struct{}), release: make(chan struct{})}
		e := newEnv(t, dsn, func(o *Options) {
			gs.Store = o.Store
			o.Store = gs
		})
		e.do(req{method: "POST", path: "/api/v1/models", token: e.admin, body: registry.ModelCreate{Name: "churn"}}, http.StatusCreated)
		desc := "slow"
		r := req{method: "PATCH", path: "/api/v1/models/churn", token: e.admin, body: registry.ModelPatch{Description: &desc},
			header: map[string]string{"Idempotency-Key": "slow-1", "If-Match": `"1"`}}
		done := make(chan *resp)
		go func() { done <- e.call(r) }()
		<-gs.entered
		release := sync.OnceFunc(func() { close(gs.release) })
		t.Cleanup(release) // a failure below must not leave the server waiting
		e.expectProblem(r, http.StatusConflict, registry.CodeConflict)
		release()
		first := <-done
		if first.status != http.StatusOK {
			t.Fatalf("first attempt: %d %s", first.status, first.body)
		}
		again := e.do(r, http.StatusOK)
		if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, first.body) {
			t.Errorf("retry after the first finished: %v %s", again.header, again.body)
		}
	})
}
