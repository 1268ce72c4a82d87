// Package server is the registry's HTTP API: routing (net/http ServeMux
// method patterns), bearer-token auth, idempotency keys, ETags and If-Match,
// RFC 9457 problem+json errors, request IDs, access logs and Prometheus
// metrics. Other packages (the gateway, the UI) mount their handlers through
// Server.Handle so they get the same middleware.
//
// It codes against Store, the parts of registry.Store it uses: it must
// not import any storage package (sqlstore) nor the gateway, the UI or
// the app; tests may.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/server/answercache"
)

// Options configures a Server.
type Options struct {
	Store  Store
	Logger *slog.Logger     // nil = discard
	Now    func() time.Time // nil = time.Now
	// PublicURL is the base URL clients reach the server on; it builds
	// Endpoint.URL (PublicURL+"/serve/"+name+"/") and Location headers.
	// Empty: derived from each request's Host.
	PublicURL string
	// ServeURL, when set, is the base URL of a data plane on a listener
	// of its own (app: --serve-listen): Endpoint.URL is built on it
	// instead of PublicURL.
	ServeURL string
	// InsecureNoAuth makes every request act as the admin "anonymous"
	// actor. The CLI only allows it on a loopback listener.
	InsecureNoAuth bool
	// Registry receives the HTTP metrics and is served on /metrics. nil = a
	// fresh registry with the Go and process collectors.
	Registry *prometheus.Registry
	// IdempotencyTTL is how long Idempotency-Key outcomes are replayed.
	// 0 = 24h.
	IdempotencyTTL time.Duration
	// MaxBodyBytes limits request bodies. 0 = 1 MiB.
	MaxBodyBytes int64
	// Version is reported as the mlregistry_build_info metric.
	Version string
	// TokenCacheTTL is how long a validated token is trusted without asking
	// the store again. 0 = 5s; negative disables the cache.
	TokenCacheTTL time.Duration
	// Upstreams is the upstream policy routes are checked against when
	// they are written (the gateway checks it again when it dials); the
	// zero value is registry's default policy.
	Upstreams registry.UpstreamPolicy
	// LookupUpstream resolves a route's host name for that check; nil is
	// the system's resolver.
	LookupUpstream func(ctx context.Context, host string) ([]netip.Addr, error)
	// OnChange is called after every successful write, before the response
	// is sent, with kind "model", "model_version", "stage_assignment" or
	// "endpoint" and the resource's id ("churn", "churn/7",
	// "churn/production"). The gateway uses it to reload at once.
	OnChange func(kind, name string)
	// Changes is the store's change generation (sqlstore.Store.Changes).
	// With it, model and version reads answer from a cache of encoded
	// answers while it has not moved; nil disables that cache.
	Changes answercache.Counter
	// AnswerCacheBytes bounds that cache. 0 = 32 MiB; negative disables
	// it.
	AnswerCacheBytes int64
	// PrometheusURL is the Prometheus that rollouts' prometheus gates
	// query; here only whether it is set matters: without it a rollout
	// with prometheus gates is refused at write.
	PrometheusURL string
	// Receipts verifies the receipts feedback carries and rotates their
	// keys; nil refuses feedback (unavailable).
	Receipts Receipts
}

// Kinds passed to Options.OnChange.
const (
	KindModel           = "model"
	KindModelVersion    = "model_version"
	KindStageAssignment = "stage_assignment"
	KindEndpoint        = "endpoint"
)

const (
	defaultIdempotencyTTL = 24 * time.Hour
	defaultMaxBodyBytes   = 1 << 20
	defaultTokenCacheTTL  = 5 * time.Second
	// maxNegativeCacheTTL bounds how long an unknown token is remembered,
	// so a token created a moment ago works almost at once.
	maxNegativeCacheTTL = time.Second
	// touchInterval is how often a token's last_used_at is written.
	touchInterval = time.Minute
)

// Server serves the registry API. Create it with New.
type Server struct {
	store          Store
	log            *slog.Logger
	now            func() time.Time
	publicURL      string
	serveURL       string
	insecure       bool
	idemTTL        time.Duration
	maxBody        int64
	onChange       func(kind, name string)
	receipts       Receipts
	upstreams      *registry.UpstreamRule
	lookup         func(ctx context.Context, host string) ([]netip.Addr, error)
	metricsHandler http.Handler
	openapiJSON    []byte
	prometheusURL  string

	mux      *http.ServeMux
	patterns []string // every pattern given to Handle, in order
	handler  http.Handler
	metrics  *httpMetrics
	tokens   *tokenCache
	answers  *answerCache

	// wg tracks background token touches so Close can wait for them.
	wg sync.WaitGroup
}

// New builds a Server with every API route registered.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("server: Options.Store is required")
	}
	s := &Server{
		store:         opts.Store,
		log:           opts.Logger,
		now:           opts.Now,
		publicURL:     strings.TrimRight(opts.PublicURL, "/"),
		serveURL:      strings.TrimRight(opts.ServeURL, "/"),
		insecure:      opts.InsecureNoAuth,
		idemTTL:       opts.IdempotencyTTL,
		maxBody:       opts.MaxBodyBytes,
		onChange:      opts.OnChange,
		lookup:        opts.LookupUpstream,
		prometheusURL: opts.PrometheusURL,
		receipts:      opts.Receipts,
		mux:           http.NewServeMux(),
	}
	var err error
	if s.upstreams, err = registry.NewUpstreamRule(opts.Upstreams); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if s.lookup == nil {
		s.lookup = lookupIP
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.idemTTL <= 0 {
		s.idemTTL = defaultIdempotencyTTL
	}
	if s.maxBody <= 0 {
		s.maxBody = defaultMaxBodyBytes
	}
	ttl := opts.TokenCacheTTL
	if ttl == 0 {
		ttl = defaultTokenCacheTTL
	}
	s.tokens = newTokenCache(ttl)
	s.answers = newAnswerCache(opts.Changes, opts.AnswerCacheBytes)

	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m, err := newHTTPMetrics(reg, opts.Version)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.answers != nil {
		if err := s.answers.register(reg); err != nil {
			return nil, err
		}
	}
	s.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})

	s.openapiJSON, err = openapiAsJSON()
	if err != nil {
		return nil, err
	}

	s.routes()
	s.handler = s.middleware(s.mux)
	return s, nil
}

// Handler returns the whole API with its middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// Handle mounts h on pattern (a ServeMux pattern such as "/serve/" or
// "GET /ui/") behind the same request-id, logging, recovery, metrics and
// auth middleware as the API; need is the scope a token must have, ""
// for no authentication at all. Call it before serving requests.
func (s *Server) Handle(pattern string, need registry.Scope, h http.Handler) {
	s.patterns = append(s.patterns, pattern)
	s.mux.Handle(pattern, s.matched(s.authenticate(need, h)))
}

// Routes lists the patterns mounted so far (the API's own and any added
// with Handle), so tests can check each is covered.
func (s *Server) Routes() []string { return append([]string(nil), s.patterns...) }

// Close waits for background work (token last-use updates) to finish.
// Call it after the HTTP server has shut down and before closing the store.
func (s *Server) Close() error {
	s.wg.Wait()
	return nil
}

// routes registers every API route with the scope it needs. Handlers that
// need more (admin for forced deletes, stage restrictions) check it
// themselves.
func (s *Server) routes() {
	const r, w = registry.ScopeRead, registry.ScopeWrite

	s.public("GET /healthz", s.handleHealthz)
	s.public("GET /readyz", s.handleReadyz)
	s.Handle("GET /metrics", r, s.metricsHandler)
	s.api("GET /openapi.json", r, s.handleOpenAPI)

	s.api("GET /api/v1/models", r, s.listModels)
	s.create("POST /api/v1/models", s.createModel)
	s.api("GET /api/v1/models/{model}", r, s.getModel)
	s.write("PATCH /api/v1/models/{model}", w, s.updateModel)
	s.write("DELETE /api/v1/models/{model}", w, s.deleteModel)

	s.api("GET /api/v1/models/{model}/versions", r, s.listVersions)
	s.create("POST /api/v1/models/{model}/versions", s.createVersion)
	s.api("GET /api/v1/models/{model}/versions/{version}", r, s.getVersion)
	s.write("PATCH /api/v1/models/{model}/versions/{version}", w, s.updateVersion)
	s.write("DELETE /api/v1/models/{model}/versions/{version}", w, s.deleteVersion)

	s.api("GET /api/v1/models/{model}/stages", r, s.listStages)
	s.api("GET /api/v1/models/{model}/stages/{stage}", r, s.getStage)
	// A dry run needs only read scope; assignStage checks write scope and
	// the token's stages for a real assignment.
	s.write("PUT /api/v1/models/{model}/stages/{stage}", r, s.assignStage)
	s.write("DELETE /api/v1/models/{model}/stages/{stage}", w, s.unassignStage)
	s.api("GET /api/v1/models/{model}/stages/{stage}/history", r, s.stageHistory)

	s.api("GET /api/v1/endpoints", r, s.listEndpoints)
	// Dry runs need only read scope; the handlers check the rest.
	s.Handle("POST /api/v1/endpoints", r, s.idempotentUnlessDryRun(s.createEndpoint))
	s.api("GET /api/v1/endpoints/{endpoint}", r, s.getEndpoint)
	s.write("PATCH /api/v1/endpoints/{endpoint}", r, s.updateEndpoint)
	s.write("DELETE /api/v1/endpoints/{endpoint}", w, s.deleteEndpoint)
	s.create("POST /api/v1/endpoints/{endpoint}/rollout/{op}", s.controlRollout)

	s.api("GET /api/v1/models/{model}/versions/{version}/live-metrics", r, s.versionLiveMetrics)
	s.api("GET /api/v1/models/{model}/compare", r, s.compareVersions)
	s.api("GET /api/v1/endpoints/{endpoint}/live-metrics", r, s.endpointLiveMetrics)
	// Serve tokens send feedback for the endpoints they may call; the
	// handler refuses read tokens (mayFeedBack). Receipts make a retried
	// batch harmless (each request ID counts once), so no Idempotency-Key.
	s.api("POST /api/v1/endpoints/{endpoint}/feedback", registry.ScopeServe, s.postFeedback)

	s.api("GET /api/v1/events", r, s.listEvents)

	// Tokens are admin only. Creating one does not honour Idempotency-Key:
	// a replay would need the secret, which is never stored.
	s.api("GET /api/v1/tokens", registry.ScopeAdmin, s.listTokens)
	s.api("POST /api/v1/tokens", registry.ScopeAdmin, s.createToken)
	s.api("GET /api/v1/tokens/{id}", registry.ScopeAdmin, s.getToken)
	s.api("DELETE /api/v1/tokens/{id}", registry.ScopeAdmin, s.revokeToken)

	// Receipt keys are admin only; the secrets never leave the database.
	s.api("GET /api/v1/receipt-keys", registry.ScopeAdmin, s.listReceiptKeys)
	s.api("POST /api/v1/receipt-keys", registry.ScopeAdmin, s.rotateReceiptKey)
}

// apiFunc is an API handler: it writes a success response or returns the
// error to answer as problem+json.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func (f apiFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		WriteProblem(w, r, err)
	}
}

// api registers an authenticated API route.
func (s *Server) api(pattern string, need registry.Scope, f apiFunc) {
	s.Handle(pattern, need, f)
}

// create registers a POST route that creates something: it needs write
// scope and honours Idempotency-Key.
func (s *Server) create(pattern string, f apiFunc) {
	s.Handle(pattern, registry.ScopeWrite, s.idempotent(f))
}

// write registers a PATCH, PUT or DELETE route: it honours
// Idempotency-Key like a create (but not for a dry run), so a
// conditional write retried after a lost answer gets the first answer
// instead of failing its own If-Match.
func (s *Server) write(pattern string, need registry.Scope, f apiFunc) {
	s.Handle(pattern, need, s.idempotentUnlessDryRun(f))
}

// idempotentUnlessDryRun honours Idempotency-Key for a create, but not for
// its dry run: a dry run's answer must never be replayed for the create.
func (s *Server) idempotentUnlessDryRun(f apiFunc) http.Handler {
	withKey := s.idempotent(f)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dry, err := flagQuery(r, "dry_run"); dry || err != nil {
			f.ServeHTTP(w, r)
			return
		}
		withKey.ServeHTTP(w, r)
	})
}

// public registers a route that needs no token.
func (s *Server) public(pattern string, f apiFunc) {
	s.Handle(pattern, "", f)
}

// changed tells the OnChange hook about a successful write.
func (s *Server) changed(kind, name string) {
	if s.onChange != nil {
		s.onChange(kind, name)
	}
}
