package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// LaneOptions configures Lane.
type LaneOptions struct {
	// Authorize reports whether a /serve/ request may be served on the
	// fast path (for the registry: a valid token with read scope). A
	// request it refuses is handed to net/http, whose handler writes the
	// 401/403. nil allows everything.
	Authorize func(*http.Request) bool
	// Header is added to every response of the fast path (for the
	// registry: the security headers its middleware sets on every route).
	Header http.Header
	// RequestIDHeader, when set, names a response header that carries the
	// request's ID: the client's own when it sent a valid one under the
	// same name, else a generated one (registry.NewRequestID, the API's
	// format). The upstream receives it too.
	RequestIDHeader string
	// IdleTimeout, HeaderTimeout and ReadTimeout: see h1.ServerOptions
	// (defaults 120 s, 10 s, 30 s).
	IdleTimeout   time.Duration
	HeaderTimeout time.Duration
	ReadTimeout   time.Duration
	// Observe, when set, is called after every request the fast path
	// served (see h1.ServerOptions.Observe): for the registry, the same
	// API metrics and access log line that net/http's middleware records
	// for the requests it serves.
	Observe func(r *http.Request, id string, status int, elapsed time.Duration, bytes int64)
	// Logger for accept errors (default: the gateway's).
	Logger *slog.Logger
}

// Lane serves the gateway's /serve/ requests through the h1 engine's
// server, which parses the common ones itself and hands the rest of the
// connections to net/http. It is a net.Listener: pass it to
// http.Server.Serve with a handler that mounts the gateway. Close (which
// http.Server.Shutdown calls) stops accepting; Shutdown then waits for
// the engine's connections and the gateway's upgraded ones.
type Lane struct {
	*h1.Server
	g *Gateway
}

// Lane starts serving ln's connections.
func (g *Gateway) Lane(ln net.Listener, opts LaneOptions) *Lane {
	log := opts.Logger
	if log == nil {
		log = g.log
	}
	srv := h1.NewServer(ln, h1.ServerOptions{
		Handler:         g,
		PathPrefix:      servePrefix,
		Authorize:       opts.Authorize,
		Header:          opts.Header,
		RequestIDHeader: opts.RequestIDHeader,
		NewRequestID:    registry.NewRequestID,
		ValidRequestID:  registry.ValidRequestID,
		WriteError: func(w http.ResponseWriter, status int, detail string) {
			writeProblem(w, nil, status, registry.CodeInvalidArgument, detail)
		},
		IdleTimeout:   opts.IdleTimeout,
		HeaderTimeout: opts.HeaderTimeout,
		ReadTimeout:   opts.ReadTimeout,
		Observe:       opts.Observe,
		Logger:        log,
	})
	return &Lane{Server: srv, g: g}
}

// Shutdown closes the idle connections and waits until the busy ones
// finished their request and the upgraded connections ended, or ctx
// ends: then it closes them. Call it after Close.
func (l *Lane) Shutdown(ctx context.Context) error {
	waited := make(chan struct{})
	go func() { l.g.upgrades.Wait(); close(waited) }()
	err := l.Server.Shutdown(ctx)
	select {
	case <-waited:
	case <-ctx.Done():
		l.g.abortAll()
		<-waited
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Listener wraps a TCP listener so that the connections it accepts read
// and write with raw non-blocking system calls (see h1.Listener).
func Listener(l net.Listener) net.Listener { return h1.Listener(l) }
