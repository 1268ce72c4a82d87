// Package gateway is the endpoint traffic router behind /serve/{endpoint}/:
// a weighted reverse proxy with header and sticky routing, a rollback
// guard, the data-plane side of rollouts (it serves a running rollout's
// weights in force and counts each step's traffic for its gates,
// rollout.go) and shadow routes that get copies of requests (shadow.go).
//
// It keeps an immutable routing table compiled from the store's endpoints
// and swaps it atomically when they change (Refresh on this replica, Run's
// poll of every endpoint's revision for changes made by other replicas).
// Requests read the table without locks. The guard counts each route's
// requests and errors in a sliding window and, when a route fails too
// often, moves its weight to the healthiest other route and records that
// through the Source, so the next terraform plan shows the drift.
//
// The HTTP/1.1 protocol work lives in the h1 engine (internal/gateway/h1):
// its server parses the common /serve/ request or hands the connection to
// net/http (Lane), its client carries one exchange to a plain-http
// upstream on the handler's goroutine. This package holds no HTTP parsing;
// it keeps routing, the guard, the forwarding rules (headers.go), the
// upstream policy, and one choice per request of how the request goes
// upstream (proxy.go: the engine's client, http.Transport for TLS and
// streamed or chunked bodies, httputil.ReverseProxy for upgrades).
// bench/gateway.sh compares the result with nginx.
//
// The package imports registry and its own h1 engine only; it must not
// import the server, the store implementations or the app.
// Authentication happens outside it.
package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Source is where the gateway reads endpoints and records guard actions:
// the part of registry.EndpointStore it uses.
type Source interface {
	ListEndpoints(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Endpoint], error)
	// EndpointRevisions is every endpoint's revision stamp; Run polls it.
	EndpointRevisions(ctx context.Context) (map[string]registry.EndpointRevision, error)
	RecordGuardRollback(ctx context.Context, actor registry.Actor, name string, expectedRevision int64, routes []registry.Route, message string) (*registry.Endpoint, error)
	// RecordGuardDegraded records that every route failed (the guard
	// moved nothing).
	RecordGuardDegraded(ctx context.Context, actor registry.Actor, name string, expectedRevision int64, message string) (*registry.Endpoint, error)
}

var _ Source = registry.EndpointStore(nil)

// Options configures a Gateway. Only Source is required.
type Options struct {
	Source Source
	// Logger gets guard actions and refresh failures; nil discards.
	Logger *slog.Logger
	// Now is the clock of the guard's windows and of latency metrics; nil
	// means time.Now.
	Now func() time.Time
	// Registerer gets the gateway's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// PollInterval is how often Run compares the endpoints' revisions
	// with the table's to pick up changes made by other replicas; 0 means
	// 250ms.
	PollInterval time.Duration
	// Transport carries requests upstream; nil means the gateway's own
	// tuned transport. A custom transport brings its own dial and TLS
	// settings; the gateway still enforces UpstreamTimeout.
	Transport http.RoundTripper
	// UpstreamTimeout bounds the wait for an upstream's response headers
	// (504 when it passes); 0 means 30s. Streaming bodies are not bounded.
	UpstreamTimeout time.Duration
	// WriteProblem writes error answers; nil means a built-in
	// application/problem+json writer in the server's format.
	WriteProblem func(w http.ResponseWriter, r *http.Request, status int, code registry.Code, detail string)
	// Upstreams says which addresses upstreams may have (see
	// UpstreamPolicy); the zero value denies link-local, unspecified and
	// multicast addresses and registry.DefaultMetadataUpstreams. A custom
	// Transport brings its own dialer and is not checked.
	Upstreams UpstreamPolicy
	// Observations receives what this process observed on the routes of
	// rollouts in force (see RolloutObservation), every FlushInterval
	// (0 means 500ms) while Run runs, under the name Process (which must
	// be unique among the processes sharing a database; "" means a
	// random one). nil: nothing is written (Observations still reports
	// this process's counts).
	Observations  ObservationSink
	FlushInterval time.Duration
	Process       string
	// ShadowQueue bounds the shadow copies waiting to be sent (0 means
	// 256) and ShadowWorkers how many are sent at once (0 means 4); a
	// copy that finds the queue full is dropped and counted.
	ShadowQueue   int
	ShadowWorkers int
	// Receipts signs the receipt (registry.ReceiptHeader) every answer
	// from a route carries; nil sends none.
	Receipts ReceiptSigner
}

// ReceiptSigner signs prediction receipts.
type ReceiptSigner interface {
	Sign(registry.Receipt) string
}

// GuardActor is the actor name of the events the guard records.
const GuardActor = "gateway-guard"

// Gateway routes /serve/{endpoint}/{path...} to the endpoint's routes.
type Gateway struct {
	src             Source
	log             *slog.Logger
	now             func() time.Time
	realClock       bool // now is time.Now
	pollInterval    time.Duration
	upstreamTimeout time.Duration
	problem         func(w http.ResponseWriter, r *http.Request, status int, code registry.Code, detail string)
	metrics         *metrics
	receipts        ReceiptSigner

	// transport is used for every request when Options.Transport is set,
	// else for what the engine's client does not take (TLS, upgrades, large or
	// unknown-length request bodies).
	transport http.RoundTripper
	// ownTransport: transport is ours and enforces UpstreamTimeout itself.
	ownTransport bool
	// pools are the engine client's connections (nil with a custom
	// Transport).
	pools *h1.Pools
	// upstreams is the upstream policy (nil with a custom Transport, which
	// brings its own dialer).
	upstreams *policy

	table atomic.Pointer[table]
	// mu serialises writers of the table (Refresh and the guard); readers
	// never take it.
	mu sync.Mutex
	// refreshMu serialises Refresh, so a table listed earlier never
	// replaces one listed later, and guards seen.
	refreshMu sync.Mutex
	// seen holds the revision stamps of the endpoints the last Refresh
	// listed (nil before the first). poll refreshes when the store's
	// differ: comparing every endpoint's stamp, rather than a global
	// marker such as MAX(events.id), misses no change whatever order
	// transactions commit in.
	seen map[string]registry.EndpointRevision
	// bg tracks the guard's background writes.
	bg sync.WaitGroup
	// bufs holds copy buffers for the http.Transport path.
	bufs sync.Pool
	// wires holds the buffers the engine client's requests are built in.
	wires sync.Pool
	// upgrades counts upgraded connections being spliced; abort ends
	// them (Lane.Shutdown, past its deadline: net/http's Shutdown and
	// Close do not see hijacked connections).
	upgrades sync.WaitGroup
	abort    context.Context
	abortAll context.CancelFunc

	// obs is the rollout observations' sink and flusher state.
	obs observations
	// shadow is the queue and workers of shadow copies.
	shadow shadowQueue
}

// New builds a Gateway. Its table is empty until the first Refresh (which
// ServeHTTP does itself if nobody did) or Run.
func New(opts Options) (*Gateway, error) {
	if opts.Source == nil {
		return nil, errors.New("gateway: Options.Source is required")
	}
	g := &Gateway{
		src:             opts.Source,
		log:             opts.Logger,
		now:             opts.Now,
		pollInterval:    opts.PollInterval,
		upstreamTimeout: opts.UpstreamTimeout,
		problem:         opts.WriteProblem,
		transport:       opts.Transport,
		receipts:        opts.Receipts,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now, g.realClock = time.Now, true
	}
	if g.pollInterval <= 0 {
		g.pollInterval = 250 * time.Millisecond
	}
	if g.upstreamTimeout <= 0 {
		g.upstreamTimeout = 30 * time.Second
	}
	if g.problem == nil {
		g.problem = writeProblem
	}
	if g.transport == nil {
		pol, err := compilePolicy(opts.Upstreams)
		if err != nil {
			return nil, err
		}
		g.upstreams = pol
		g.transport = newTransport(max(g.upstreamTimeout, registry.MaxEndpointTimeout), pol.control)
		g.ownTransport = true
		g.pools = h1.NewPools(h1.PoolOptions{Control: pol.control, KeepHeader: keepResponseHeader})
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	g.abort, g.abortAll = context.WithCancel(context.Background())
	g.obs.init(opts)
	g.shadow.init(opts)
	return g, nil
}

// newTransport is the transport for what the engine's client does not carry:
// many idle connections per host (a gateway talks to few hosts, often), no
// transparent gzip (bodies pass through untouched), HTTP/2 only where TLS
// negotiates it, a short dial timeout so a dead upstream fails fast.
func newTransport(headerTimeout time.Duration, control func(network, address string, c syscall.RawConn) error) *http.Transport {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second, Control: control}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    1024,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  headerTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true, // only negotiated over TLS
		WriteBufferSize:        32 << 10,
		ReadBufferSize:         32 << 10,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// Refresh reloads every endpoint from the Source and swaps the routing
// table. The server calls it after an endpoint write, so the change
// applies to the next request on this replica.
func (g *Gateway) Refresh(ctx context.Context) error {
	g.refreshMu.Lock()
	defer g.refreshMu.Unlock()
	var eps []registry.Endpoint
	opts := registry.ListOptions{PageSize: registry.MaxPageSize}
	for {
		page, err := g.src.ListEndpoints(ctx, opts)
		if err != nil {
			return err
		}
		eps = append(eps, page.Items...)
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}

	// Remember each endpoint as listed (pages may come from different
	// snapshots; whatever changed after its page was read differs from
	// seen at the next poll).
	seen := make(map[string]registry.EndpointRevision, len(eps))
	for _, e := range eps {
		seen[e.Name] = registry.EndpointRevision{Revision: e.Revision, CreatedAt: e.CreatedAt, RolloutSeq: rolloutSeq(&e)}
	}
	g.mu.Lock()
	g.install(eps)
	g.mu.Unlock()
	g.seen = seen
	return nil
}

// install compiles eps into a new table and publishes it. Callers hold mu.
func (g *Gateway) install(eps []registry.Endpoint) {
	var old map[string]*endpoint
	if t := g.table.Load(); t != nil {
		old = t.endpoints
	}
	nt := &table{endpoints: make(map[string]*endpoint, len(eps))}
	for _, e := range eps {
		prev := old[e.Name]
		if prev != nil && prev.revision == e.Revision && prev.createdAt.Equal(e.CreatedAt) && prev.rolloutSeq == rolloutSeq(&e) {
			// Unchanged (or changed by the guard here and not yet stored).
			nt.endpoints[e.Name] = prev
			continue
		}
		ce, err := g.compile(e, prev, false)
		if err != nil {
			// The store validates endpoints, so this is a bug or a
			// hand-edited database; skip the endpoint rather than the table.
			g.log.Error("gateway: skipping endpoint", "endpoint", e.Name, "err", err)
			continue
		}
		nt.endpoints[e.Name] = ce
	}
	g.forgetGone(old, nt.endpoints)
	g.table.Store(nt)
	if g.pools != nil {
		keep := map[string]bool{}
		for _, e := range nt.endpoints {
			for _, r := range e.routes {
				if r.pool != nil {
					keep[r.host] = true
				}
			}
		}
		g.pools.Retain(keep)
	}
}

// forgetGone drops the metric series of routes, and of route versions,
// that left the table.
func (g *Gateway) forgetGone(old, cur map[string]*endpoint) {
	for name, oe := range old {
		ne := cur[name]
		for _, r := range oe.routes {
			var nr *route
			if ne != nil {
				nr = ne.route(r.name)
			}
			if nr == nil {
				g.metrics.forgetRoute(name, r.name)
			}
			if nr == nil || nr.version != r.version {
				g.metrics.forget(name, r.name, r.version)
			}
		}
		for _, sh := range oe.shadows {
			var ns *shadowRoute
			if ne != nil {
				ns = ne.shadow(sh.rt.name)
			}
			if ns == nil {
				g.metrics.forgetShadowRoute(name, sh.rt.name)
			}
			if ns == nil || ns.rt.version != sh.rt.version {
				g.metrics.forgetShadow(name, sh.rt.name, sh.rt.version)
			}
		}
	}
}

func (e *endpoint) shadow(name string) *shadowRoute {
	for _, sh := range e.shadows {
		if sh.rt.name == name {
			return sh
		}
	}
	return nil
}

func (e *endpoint) route(name string) *route {
	for _, r := range e.routes {
		if r.name == name {
			return r
		}
	}
	return nil
}

// Run reads every endpoint's revision stamp each PollInterval and
// refreshes when one changed, appeared or disappeared since the last
// Refresh, so changes made through other replicas (and guard rollbacks
// and rollout steps they record) apply within a second. With
// Options.Observations it also flushes the rollouts' observations. It
// returns nil when ctx is done.
func (g *Gateway) Run(ctx context.Context) error {
	if g.obs.sink != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			g.flushLoop(ctx)
		}()
	}
	t := time.NewTicker(g.pollInterval)
	defer t.Stop()
	failing := false
	for {
		if err := g.poll(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				g.log.Warn("gateway: cannot load endpoints", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if g.pools != nil {
			g.pools.Prune(time.Now())
		}
	}
}

func (g *Gateway) poll(ctx context.Context) error {
	revs, err := g.src.EndpointRevisions(ctx)
	if err != nil {
		return err
	}
	g.refreshMu.Lock()
	same := g.seen != nil && maps.EqualFunc(revs, g.seen, func(a, b registry.EndpointRevision) bool {
		return a.Revision == b.Revision && a.CreatedAt.Equal(b.CreatedAt) && a.RolloutSeq == b.RolloutSeq
	})
	g.refreshMu.Unlock()
	if same {
		return nil
	}
	return g.Refresh(ctx)
}

// lookup returns the current table, loading it on first use.
func (g *Gateway) current(ctx context.Context) (*table, error) {
	if t := g.table.Load(); t != nil {
		return t, nil
	}
	if err := g.Refresh(ctx); err != nil {
		return nil, err
	}
	return g.table.Load(), nil
}

// copyBody streams src to dst through a pooled buffer, flushing after
// every write when flush is set. It reports which side failed.
func copyBody(dst io.Writer, src io.Reader, buf []byte, flush func()) (readErr, writeErr error) {
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
			if flush != nil {
				flush()
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil, nil
			}
			return rerr, nil
		}
	}
}
