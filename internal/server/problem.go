package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// retryAfterSeconds is the Retry-After of every 503: short, because an
// outage the registry recovers from on its own (a restarted database, a
// replica taking over) usually lasts seconds.
const retryAfterSeconds = "2"

// ProblemTypeBase prefixes the code to form a problem's type URI.
const ProblemTypeBase = "https://mlregistry.dev/problems/"

// Problem is the RFC 9457 problem+json body of every error response, with
// the registry's code (and, for validation and policy failures, the field
// and rule) as extension members.
type Problem struct {
	Type      string        `json:"type"`
	Title     string        `json:"title"`
	Status    int           `json:"status"`
	Detail    string        `json:"detail"`
	Code      registry.Code `json:"code"`
	Field     string        `json:"field,omitempty"`
	Rule      string        `json:"rule,omitempty"`
	Instance  string        `json:"instance,omitempty"`
	RequestID string        `json:"request_id,omitempty"`
}

// WriteProblem answers err as application/problem+json. A *registry.Error
// keeps its code, message, field and rule; any other error (and any
// internal one) is logged with the request ID and answered as a bare 500
// "internal error", so SQL, paths or stacks never reach a client.
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	e := problemError(r, err)
	writeProblem(w, r, registry.HTTPStatus(e.Code), e)
}

// WriteProblemStatus is WriteProblem with an explicit HTTP status, for
// answers whose status is not the code's own (a gateway's 502 or 504 with
// code unavailable). A status outside 400-599 falls back to the code's.
func WriteProblemStatus(w http.ResponseWriter, r *http.Request, status int, err error) {
	e := problemError(r, err)
	if status < 400 || status > 599 || e.Code == registry.CodeInternal {
		status = registry.HTTPStatus(e.Code)
	}
	writeProblem(w, r, status, e)
}

// problemError maps any error to the registry error to answer.
func problemError(r *http.Request, err error) *registry.Error {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		requestLogger(r).Error("WriteProblem called with a nil error")
		return &registry.Error{Code: registry.CodeInternal, Message: "internal error"}
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.Is(err, context.DeadlineExceeded):
		requestLogger(r).Warn("request timed out", "err", err)
		return registry.Errorf(registry.CodeUnavailable, "the request timed out; try again")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer. The access log
		// says so (status 499, like nginx), instead of a 503 warning.
		if st := stateFrom(r.Context()); st != nil {
			st.clientGone = true
		}
		return registry.Errorf(registry.CodeUnavailable, "the request was canceled")
	}
	var re *registry.Error
	if errors.As(err, &re) && re.Code != registry.CodeInternal && registry.HTTPStatus(re.Code) != http.StatusInternalServerError {
		return re
	}
	requestLogger(r).Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	return &registry.Error{Code: registry.CodeInternal, Message: "internal error"}
}

func tooLarge(limit int64) *registry.Error {
	return registry.Errorf(registry.CodeTooLarge, "request body is larger than the limit of %d bytes", limit)
}

// writeProblem writes e with an explicit status (405 has no registry code
// of its own).
func writeProblem(w http.ResponseWriter, r *http.Request, status int, e *registry.Error) {
	h := w.Header()
	// Headers meant for a success answer must not describe the problem.
	h.Del("ETag")
	h.Del("Location")
	h.Del("Content-Length")
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		// Every 503 is temporary (a database outage, a shutdown, a busy
		// lock): say when to come back, so clients back off together
		// instead of guessing.
		h.Set("Retry-After", retryAfterSeconds)
	}
	if status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", `Bearer realm="mlregistry"`)
	}
	if bodyUnread(r) {
		// The request failed before its body was read (a refused token,
		// say). net/http would read what is left of it before answering,
		// to keep the connection, which lets a client that announces a
		// body and never sends it hold the connection and get no answer.
		// Answer now and close instead.
		h.Set("Connection", "close")
		defer func() {
			// After the answer, end the read at once: net/http still
			// tries to drain the body before closing.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		}()
	}
	p := Problem{
		Type:     ProblemTypeBase + string(e.Code),
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   e.Message,
		Code:     e.Code,
		Field:    e.Field,
		Rule:     e.Rule,
		Instance: r.URL.Path,
	}
	if id, ok := RequestIDFromContext(r.Context()); ok {
		p.RequestID = id
	} else {
		p.RequestID = h.Get("X-Request-ID")
	}
	body, err := json.Marshal(p)
	if err != nil {
		// Only strings and ints: cannot happen.
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal error","code":"internal"}`)
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
