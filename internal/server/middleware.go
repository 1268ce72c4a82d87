package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// reqState is what the middleware learns about a request as it goes
// through the chain. One pointer lives in the request context, so inner
// handlers (routing, auth) can fill it in for the outer ones (logging,
// metrics).
type reqState struct {
	id   string
	base *slog.Logger
	log  *slog.Logger // base with the request ID; built on first use
	// route is the matched ServeMux pattern; "" until a registered route
	// takes the request.
	route string
	token *registry.Token
	// clientGone is set when the request failed because its client went
	// away (its context was canceled): not a server error.
	clientGone bool
	// body tracks whether the request body was read to its end; nil for
	// a request without one.
	body *trackedBody
}

// trackedBody notes whether a request body was read to its end. The
// gateway's proxy may read it on another goroutine, hence the atomic.
type trackedBody struct {
	io.ReadCloser
	done atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done.Store(true)
	}
	return n, err
}

// bodyUnread reports whether r came with a body that nobody read to the
// end (an error answered before the handler got to it).
func bodyUnread(r *http.Request) bool {
	if st := stateFrom(r.Context()); st != nil {
		return st.body != nil && !st.body.done.Load()
	}
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// ActorFromContext returns the authenticated actor of a request served
// through Server.Handler: the token's name, its stage restriction and the
// request ID.
func ActorFromContext(ctx context.Context) (registry.Actor, bool) {
	st := stateFrom(ctx)
	if st == nil || st.token == nil {
		return registry.Actor{}, false
	}
	return registry.Actor{Name: st.token.Name, RequestID: st.id, Stages: st.token.Stages}, true
}

// TokenFromContext returns the token that authenticated the request. With
// InsecureNoAuth it is a synthetic admin token named "anonymous", ID 0.
func TokenFromContext(ctx context.Context) (*registry.Token, bool) {
	st := stateFrom(ctx)
	if st == nil || st.token == nil {
		return nil, false
	}
	return st.token, true
}

// RequestIDFromContext returns the request's ID (as echoed in X-Request-ID).
func RequestIDFromContext(ctx context.Context) (string, bool) {
	st := stateFrom(ctx)
	if st == nil {
		return "", false
	}
	return st.id, true
}

// actor is the actor of an authenticated API request.
func actor(r *http.Request) registry.Actor {
	a, _ := ActorFromContext(r.Context())
	return a
}

// requestLogger returns the logger carrying the request ID.
func requestLogger(r *http.Request) *slog.Logger {
	if st := stateFrom(r.Context()); st != nil {
		return st.logger()
	}
	return slog.Default()
}

// logger returns the request's logger, carrying its ID. It is built on
// first use: most requests never log anything but their access line, and
// gateway traffic normally not even that.
func (st *reqState) logger() *slog.Logger {
	if st.log == nil {
		st.log = st.base.With("request_id", st.id)
	}
	return st.log
}

func newRequestID() string { return registry.NewRequestID() }

// middleware wraps the mux: request ID, security headers, panic recovery,
// problem+json for the mux's own 404/405, metrics and the access log.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if !registry.ValidRequestID(id) {
			id = newRequestID()
		}
		st := &reqState{id: id, base: s.log}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		if r.Body != nil && r.Body != http.NoBody {
			st.body = &trackedBody{ReadCloser: r.Body}
			r.Body = st.body
		}

		h := w.Header()
		h.Set("X-Request-ID", id)
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}

		rw := &responseWriter{ResponseWriter: w, st: st, req: r}
		defer func() {
			v := recover()
			if v != nil {
				if v == http.ErrAbortHandler {
					// The handler chose to abort the connection; that is not
					// a bug, and net/http expects to see the panic.
					s.observe(rw, r, start)
					panic(v)
				}
				st.logger().Error("panic serving request", "method", r.Method, "route", routeLabel(st.route), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rw.wroteHeader {
					WriteProblem(rw, r, registry.ErrInternal)
				} else {
					rw.status = http.StatusInternalServerError
				}
			}
			s.observe(rw, r, start)
		}()
		next.ServeHTTP(rw, r)
	})
}

// matched marks a request as taken by a registered route, recording its
// pattern for logs and metrics.
func (s *Server) matched(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := stateFrom(r.Context()); st != nil {
			st.route = r.Pattern
		}
		h.ServeHTTP(w, r)
	})
}

// observe records metrics and writes the access log line. Never the
// Authorization header, never bodies.
func (s *Server) observe(rw *responseWriter, r *http.Request, start time.Time) {
	st := rw.st
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	if st.clientGone {
		status = statusClientClosedRequest
	}
	s.record(r, routeLabel(st.route), status, time.Since(start), rw.bytes, st.logger, func() string {
		if st.token != nil {
			return st.token.Name
		}
		return ""
	})
}

// ObserveServe records a gateway request that was served outside this
// server's handler chain (by the gateway's fast lane, which authorised it
// with MayServe): the same metrics and access log line the middleware
// records for the /serve/ requests net/http serves. id is the request ID
// its answer carried; status 499 means the client went away.
func (s *Server) ObserveServe(r *http.Request, id string, status int, elapsed time.Duration, bytes int64) {
	logger := func() *slog.Logger { return s.log.With("request_id", id) }
	s.record(r, gatewayRoute, status, elapsed, bytes, logger, func() string {
		if tok, err := s.token(r); err == nil { // the token cache answers
			return tok.Name
		}
		return ""
	})
}

// record is observe's work, shared with ObserveServe: logger and actor
// are asked for only when the line is written.
func (s *Server) record(r *http.Request, route string, status int, elapsed time.Duration, bytes int64, logger func() *slog.Logger, actor func() string) {
	s.metrics.observe(methodLabel(r.Method), route, status, elapsed)
	msg := "http request"
	if status == statusClientClosedRequest {
		msg = "client went away"
	}
	level := slog.LevelInfo
	if route == gatewayRoute {
		// Prediction traffic is the data plane: its per-route counts and
		// latencies are in the gateway's metrics, and a line per request
		// at info would cost more than the proxying. Run with
		// --log-level debug to see each one.
		level = slog.LevelDebug
	}
	if status >= 500 && status != statusClientClosedRequest {
		level = slog.LevelWarn
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	logger().LogAttrs(context.Background(), level, msg,
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
		slog.Int64("bytes", bytes),
		slog.String("actor", actor()),
	)
}

// statusClientClosedRequest is what logs and metrics record for a request
// whose client went away before the answer (nginx's 499). It is never
// sent: there is nobody to send it to.
const statusClientClosedRequest = 499

// gatewayRoute is the route label of the gateway's /serve/ mount.
const gatewayRoute = "/serve/"

// routeLabel turns a mux pattern ("GET /api/v1/models/{model}") into the
// route label ("/api/v1/models/{model}"); unrouted requests share one
// label so raw paths never become label values.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return strings.TrimSpace(pattern[i+1:])
	}
	return pattern
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// responseWriter records the status and size for logs and metrics, and
// replaces the ServeMux's plain-text 404 and 405 with problem+json.
type responseWriter struct {
	http.ResponseWriter
	st          *reqState
	req         *http.Request
	status      int
	bytes       int64
	wroteHeader bool
	// replacing is set while the replacement problem is written.
	replacing bool
	// discard drops the body the mux writes after its replaced header.
	discard bool
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.wroteHeader {
		return
	}
	if !w.replacing && w.st.route == "" && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		// No registered route took the request: the ServeMux itself is
		// answering. Answer the same problem+json as every other error.
		w.replacing = true
		if code == http.StatusNotFound {
			WriteProblem(w, w.req, registry.Errorf(registry.CodeNotFound, "no route for %s %s", w.req.Method, w.req.URL.Path))
		} else {
			writeProblem(w, w.req, http.StatusMethodNotAllowed, registry.Errorf(registry.CodeInvalidArgument,
				"method %s is not allowed on %s; allowed: %s", w.req.Method, w.req.URL.Path, w.Header().Get("Allow")))
		}
		w.replacing = false
		w.discard = true
		return
	}
	w.wroteHeader = true
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.discard {
		return len(b), nil
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
		if w.discard {
			return len(b), nil
		}
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers (the gateway's reverse proxy) flush.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController access to the real writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
