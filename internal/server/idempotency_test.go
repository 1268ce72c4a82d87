package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
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
		// Another model is another resource, even with the same key.
		e.createModel(registry.ModelCreate{Name: "idem-b"})
		r := e.do(req{method: "POST", path: "/api/v1/models/idem-b/versions", token: e.writer, body: body, header: key}, http.StatusCreated)
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("a create on another model was replayed")
		}
	})
}

// crashingStore loses every CompleteIdempotent, as a server that dies
// between committing a create and recording its answer would.
type crashingStore struct {
	registry.Store
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
