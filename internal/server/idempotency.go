package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const maxIdempotencyKeyLen = 255

// replayedHeaders are the response headers an idempotent replay repeats.
var replayedHeaders = []string{"Content-Type", "ETag", "Location"}

func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotent makes a write route (a create, an update, a delete, a stage
// change) honour Idempotency-Key: a key belongs to the token that sends it
// and names one request. The first response is stored in the database and
// replayed for retries of the same request (same method and path, and
// requestHash: its body, and its If-Match and query when present); the
// same token reusing the key for anything else gets 422. The path is the route pattern filled with the decoded path
// values (idempotencyPath), so a retry that spells the URL differently is
// still the same request.
//
// For a conditional write this is what makes a retry after a lost answer
// safe: the first attempt was applied and moved the revision, so running
// the retry would fail its own If-Match with 412; it gets the first
// answer instead.
func (s *Server) idempotent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Idempotency-Key")
		if len(vals) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if len(vals) != 1 || !validIdempotencyKey(vals[0]) {
			WriteProblem(w, r, &registry.Error{
				Code:    registry.CodeInvalidArgument,
				Field:   "Idempotency-Key",
				Rule:    "idempotency_key",
				Message: "Idempotency-Key must be one value of 1 to 255 printable ASCII characters",
			})
			return
		}
		body, err := s.readBody(w, r)
		if err != nil {
			WriteProblem(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var tokenID int64
		if tok, ok := TokenFromContext(r.Context()); ok {
			tokenID = tok.ID
		}
		key := registry.IdempotencyKey{
			TokenID:     tokenID,
			Key:         vals[0],
			Method:      r.Method,
			Path:        idempotencyPath(r),
			RequestHash: requestHash(r, body),
		}
		rec, err := s.store.BeginIdempotent(r.Context(), key, s.idemTTL)
		if err != nil {
			WriteProblem(w, r, err)
			return
		}
		if rec != nil {
			replay(w, r, key, rec)
			return
		}
		s.runIdempotent(w, r, key, next)
	})
}

// requestHash identifies what a request asks for, so a key reused for
// another request is refused (422) instead of replaying an answer to
// something else. It is the SHA-256 of the body, and of the If-Match
// condition and the query when they are present: the same key with
// another If-Match or ?force=true is another request. (A create has
// neither, so its hash is that of its body alone, as before.)
func requestHash(r *http.Request, body []byte) string {
	h := sha256.New()
	h.Write(body)
	if im := r.Header.Values("If-Match"); len(im) > 0 {
		h.Write([]byte("\x00If-Match\x00" + strings.Join(im, ",")))
	}
	if q := r.URL.Query(); len(q) > 0 {
		h.Write([]byte("\x00?" + q.Encode()))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replay answers a retry from the stored record.
func replay(w http.ResponseWriter, r *http.Request, key registry.IdempotencyKey, rec *registry.IdempotencyRecord) {
	switch {
	case rec.Method != key.Method || rec.Path != key.Path:
		WriteProblem(w, r, registry.Errorf(registry.CodeIdempotencyMismatch,
			"Idempotency-Key %q was already used by this token for another request (%s %s); use a new key for a new request", key.Key, rec.Method, rec.Path))
	case rec.RequestHash != key.RequestHash:
		WriteProblem(w, r, registry.Errorf(registry.CodeIdempotencyMismatch,
			"Idempotency-Key %q was already used by this token for %s %s with a different body, If-Match or query; use a new key for a new request", key.Key, rec.Method, rec.Path))
	case !rec.Completed:
		WriteProblem(w, r, registry.Errorf(registry.CodeConflict, "a request with this Idempotency-Key is still in progress"))
	default:
		h := w.Header()
		for k, v := range rec.Headers {
			h.Set(k, v)
		}
		h.Set("Idempotent-Replayed", "true")
		w.WriteHeader(rec.StatusCode)
		_, _ = w.Write(rec.Body)
	}
}

// runIdempotent runs the handler, keeping its answer.
//
// A write completes the claim itself: the handler's store call finds a
// registry.IdempotentWrite in the request context and stores the answer
// (rendered by renderWritten, byte for byte what the handler then sends)
// in the transaction that makes the change, so no crash can separate the
// two. Other outcomes are recorded here: a 4xx answer (nothing was
// written) is final and stored; after a 5xx or a panic nothing was
// written either, so the claim is dropped and a retry runs again.
func (s *Server) runIdempotent(w http.ResponseWriter, r *http.Request, key registry.IdempotencyKey, next http.Handler) {
	cw := &captureWriter{ResponseWriter: w}
	// The client may be gone; the outcome must be recorded anyway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	iw := &registry.IdempotentWrite{Key: key, Response: func(written any) (registry.IdempotencyRecord, error) {
		a, err := s.renderWritten(r, written)
		if err != nil {
			return registry.IdempotencyRecord{}, err
		}
		return registry.IdempotencyRecord{Completed: true, RequestHash: key.RequestHash, StatusCode: a.status, Headers: a.header, Body: a.body}, nil
	}}
	r = r.WithContext(registry.WithIdempotentWrite(r.Context(), iw))
	completed := false
	defer func() {
		if completed || iw.Committed() {
			return
		}
		if err := s.store.AbandonIdempotent(ctx, key); err != nil {
			requestLogger(r).Warn("could not release idempotency key", "err", err)
		}
	}()

	next.ServeHTTP(cw, r)
	if iw.Committed() {
		return
	}

	status := cw.status
	if status == 0 {
		status = http.StatusOK
	}
	if status >= 500 {
		return
	}
	rec := registry.IdempotencyRecord{
		Completed:   true,
		RequestHash: key.RequestHash,
		StatusCode:  status,
		Headers:     map[string]string{},
		Body:        cw.body.Bytes(),
		CreatedAt:   s.now(),
	}
	for _, name := range replayedHeaders {
		if v := w.Header().Get(name); v != "" {
			rec.Headers[name] = v
		}
	}
	completed = true
	if err := s.store.CompleteIdempotent(ctx, key, rec); err != nil {
		// The change itself is committed: dropping the claim would let a
		// retry repeat it. The in-flight record expires on its own.
		requestLogger(r).Error("could not store idempotent response", "err", err)
	}
}

// captureWriter passes a response through while keeping a copy.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
