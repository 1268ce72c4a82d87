// Package app wires the registry together: configuration -> store ->
// API server, gateway (and later the UI). It is the only package that
// knows every piece; the CLI and the end-to-end tests both boot Main.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/receipt"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/rollout"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/server"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/server/answercache"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// Defaults used by the CLI and by New when a field is empty.
const (
	DefaultListen = "127.0.0.1:8080"
	// DefaultGatewayListen is where 'mlregistry gateway' listens: beside
	// a registry on DefaultListen.
	DefaultGatewayListen = "127.0.0.1:8081"
	DefaultDB            = "sqlite://./mlregistry.db"

	// receiptKeyReload is how often a process reads the receipt keys
	// again, so a rotation elsewhere takes over its signing.
	receiptKeyReload = 30 * time.Second

	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
)

// Config is everything Main needs. The zero value serves on DefaultListen
// with DefaultDB.
type Config struct {
	// Listen is the TCP address; "127.0.0.1:0" picks a free port.
	Listen string
	// DB is sqlite://path, a bare path, or postgres://...
	DB string
	// PublicURL is the base URL clients reach this replica at; it is used
	// for endpoint URLs. Default: http://<listen address>.
	PublicURL string
	// InsecureNoAuth turns authentication off; refused unless Listen is a
	// loopback address.
	InsecureNoAuth bool
	Logger         *slog.Logger
	// Now is the clock of store and server; tests inject a fake one.
	Now     func() time.Time
	Version string
	// ShutdownTimeout bounds graceful shutdown in Close. Default 15s.
	ShutdownTimeout time.Duration
	// GatewayPollInterval: how often other replicas' endpoint changes are
	// looked for. Default 250ms.
	GatewayPollInterval time.Duration
	// ChangePollInterval: how often other replicas' (or processes')
	// commits are looked for, which bounds how long this replica answers
	// a model or version read from its cache after another replica changed
	// it. Default 200ms.
	ChangePollInterval time.Duration
	// AnswerCacheBytes bounds the cache of encoded model and version
	// answers (server.Options.AnswerCacheBytes): 0 = 32 MiB, negative
	// disables it.
	AnswerCacheBytes int64
	// UpstreamAllow, when not empty, lists the only networks (CIDR)
	// endpoint upstreams may be in; UpstreamDeny lists networks,
	// addresses and host names refused besides link-local, unspecified,
	// multicast, the metadata services and this process's own listeners
	// (see registry.UpstreamPolicy).
	UpstreamAllow, UpstreamDeny []string
	// UpstreamMetadata lists the cloud metadata services (addresses,
	// networks, host names) upstreams may not be: nil means
	// registry.DefaultMetadataUpstreams, an empty list none.
	UpstreamMetadata []string
	// ReadHeaderTimeout bounds reading a request's header (default 10s);
	// ReadTimeout bounds reading a whole request, body included (default
	// 30s), so a client that announces a body and stops sending cannot
	// hold a connection. Negative disables either.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// MetricsListen, when set, serves GET /metrics (the same Prometheus
	// registry as the API's /metrics) on its own listener without
	// authentication, for scrapers that hold no registry token. Refused
	// off loopback unless MetricsListenPublic.
	MetricsListen       string
	MetricsListenPublic bool
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS with this pair;
	// ReloadTLS (the CLI calls it on SIGHUP) reads them again without
	// dropping connections.
	TLSCertFile, TLSKeyFile string
	// TokenCacheTTL is how long a validated token is trusted without asking
	// the database: the longest a token revoked on another replica keeps
	// working. 0 = 5s; negative disables the cache.
	TokenCacheTTL time.Duration
	// ServeListen, when set, puts the data plane on a listener of its own:
	// it serves /serve/ (and /healthz, /readyz) and nothing else, and
	// Listen serves the API and the UI, answering /serve/ with a 404 that
	// names the serve listener. Empty: /serve/ shares Listen with the API
	// (the quickstart's layout). TLS applies to both.
	ServeListen string
	// ServePublicURL is the base URL clients reach the serve listener at;
	// endpoint URLs are built on it. Default: http(s)://<serve listen
	// address>. Only with ServeListen.
	ServePublicURL string
	// DataPlaneOnly runs the gateway alone (mlregistry gateway): Listen
	// serves /serve/, /healthz and /readyz and nothing else, routes and
	// tokens are read from DB (changes are picked up by polling, as
	// replicas do), the guard records its actions there. There is no API
	// and no UI, and the database is never migrated: a registry must have
	// created its schema.
	DataPlaneOnly bool
	// PrometheusURL is the Prometheus the rollouts' prometheus gates ask
	// (/api/v1/query); empty: none, and such gates are refused at write.
	// Every process that may lead the rollouts (each serve replica and
	// gateway) should be given the same one.
	PrometheusURL string
	// PrometheusTimeout bounds one gate query. Default 10s.
	PrometheusTimeout time.Duration
	// RolloutTick is how often the rollout driver evaluates the active
	// rollouts and renews its lease. Default 200ms.
	RolloutTick time.Duration
	// RolloutLeaseTTL is how long the rollouts lease outlives its holder's
	// last renewal. Default 3s.
	RolloutLeaseTTL time.Duration
	// ObservationFlushInterval is how often the gateway writes what it
	// observed on the routes of rollouts in force, for the rollout
	// driver's gates. Default 500ms.
	ObservationFlushInterval time.Duration
	// NoGroupCommit commits every SQLite write on its own (see
	// sqlstore.Options.NoGroupCommit): for benchmarks that measure what
	// group commit buys.
	NoGroupCommit bool
}

// DefaultAnswerCacheMB is the answer cache's memory, in MiB, when
// Config.AnswerCacheBytes is 0.
const DefaultAnswerCacheMB = server.DefaultAnswerCacheBytes >> 20

// Main is a running registry: store, API server and gateway, on one
// listener or two (Config.ServeListen), or the gateway alone
// (Config.DataPlaneOnly).
type Main struct {
	cfg Config

	store   *sqlstore.Store
	server  *server.Server
	gateway *gateway.Gateway
	driver  *rollout.Driver
	certs   *certReloader
	url     string

	// listeners: the API's (absent in DataPlaneOnly) and the data
	// plane's when it has its own; api and data point into it (the same
	// listener when /serve/ shares the API's).
	listeners []*listener
	api, data *listener

	metricsLn   net.Listener
	metricsHTTP *http.Server
	metricsURL  string

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	serveErr chan error
	closeMu  sync.Mutex
	closed   bool
}

// listener is one address Main serves: its socket, the net/http server
// and, when it carries /serve/ without TLS, the gateway's fast lane.
type listener struct {
	role string // "api", "serve" or "api+serve", for logs
	ln   net.Listener
	http *http.Server
	lane *gateway.Lane
	url  string
}

// New returns a Main that Run starts.
func New(cfg Config) *Main {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
		if cfg.DataPlaneOnly {
			cfg.Listen = DefaultGatewayListen
		}
	}
	if cfg.DB == "" {
		cfg.DB = DefaultDB
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	return &Main{cfg: cfg, serveErr: make(chan error, 1)}
}

// CheckListen refuses --insecure-no-auth on a non-loopback address.
func CheckListen(listen string, insecureNoAuth bool) error {
	if !insecureNoAuth {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--insecure-no-auth is only allowed on a loopback listen address (127.0.0.1, ::1 or localhost), not %q", listen)
	}
	return nil
}

// Run opens the store (applying migrations, except in DataPlaneOnly),
// starts listening and serving in the background, and returns once
// requests are accepted. Call Close to stop; Err reports a serving
// failure.
func (m *Main) Run(ctx context.Context) (err error) {
	if err := m.checkConfig(); err != nil {
		return err
	}
	log := m.cfg.Logger
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()

	m.store, err = sqlstore.Open(ctx, m.cfg.DB, sqlstore.Options{Now: m.cfg.Now, Logger: log, NoMigrate: m.cfg.DataPlaneOnly, NoGroupCommit: m.cfg.NoGroupCommit, ChangePoll: m.cfg.ChangePollInterval})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if m.cfg.DataPlaneOnly {
		// The data plane reads what a registry wrote; it never creates or
		// upgrades the schema under that registry.
		v, err := m.store.SchemaVersion(ctx)
		if err != nil {
			return fmt.Errorf("open database: %w", err)
		}
		if v == 0 {
			return fmt.Errorf("database %s holds no registry: start 'mlregistry serve' on it (or run 'mlregistry migrate') before the gateway", sqlstore.RedactDSN(m.cfg.DB))
		}
	}

	if m.cfg.TLSCertFile != "" {
		if m.certs, err = newCertReloader(m.cfg.TLSCertFile, m.cfg.TLSKeyFile); err != nil {
			return err
		}
	}
	switch {
	case m.cfg.DataPlaneOnly:
		if m.data, err = m.listen("serve", m.cfg.Listen); err != nil {
			return err
		}
	case m.cfg.ServeListen != "":
		if m.api, err = m.listen("api", m.cfg.Listen); err != nil {
			return err
		}
		if m.data, err = m.listen("serve", m.cfg.ServeListen); err != nil {
			return err
		}
	default:
		if m.api, err = m.listen("api+serve", m.cfg.Listen); err != nil {
			return err
		}
		m.data = m.api
	}
	m.url = m.listeners[0].url
	publicURL := strings.TrimRight(m.cfg.PublicURL, "/")
	if publicURL == "" {
		publicURL = m.url
	}
	// Endpoint URLs point at the data plane when it has its own listener.
	var serveURL string
	if m.api != nil && m.data != m.api {
		if serveURL = strings.TrimRight(m.cfg.ServePublicURL, "/"); serveURL == "" {
			serveURL = m.data.url
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel

	if err := m.listenMetrics(); err != nil {
		return err
	}
	upstreams, err := m.upstreamPolicy()
	if err != nil {
		return err
	}
	// Every replica and gateway process signs with the keys in the
	// database, so each accepts the receipts the others signed.
	receipts, err := receipt.Open(ctx, m.store, receipt.Options{Now: m.cfg.Now})
	if err != nil {
		return err
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		_ = receipts.Run(bg, receiptKeyReload)
	}()
	// The gateway's rollout observations go to the store, where the
	// rollout driver (on whichever process leads) sums every process's.
	m.gateway, err = gateway.New(gateway.Options{
		Receipts:      receipts,
		Source:        m.store,
		Observations:  m.store,
		FlushInterval: m.cfg.ObservationFlushInterval,
		Logger:        log.With("component", "gateway"),
		Now:           m.cfg.Now,
		Registerer:    reg,
		PollInterval:  m.cfg.GatewayPollInterval,
		Upstreams:     upstreams,
		WriteProblem: func(w http.ResponseWriter, r *http.Request, status int, code registry.Code, detail string) {
			server.WriteProblemStatus(w, r, status, &registry.Error{Code: code, Message: detail})
		},
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := m.gateway.Refresh(ctx); err != nil {
		return fmt.Errorf("gateway: load endpoints: %w", err)
	}

	var changes answercache.Counter
	if !m.cfg.DataPlaneOnly && m.cfg.AnswerCacheBytes >= 0 {
		c, err := m.store.Changes(ctx)
		if err != nil {
			return fmt.Errorf("open database: %w", err)
		}
		changes = c
	}

	// The data plane uses the server too, for what every request gets
	// (request IDs, access log, metrics, problem+json) and for tokens;
	// its listener lets only /serve/ and the probes through (dataPlane).
	m.server, err = server.New(server.Options{
		Changes:          changes,
		AnswerCacheBytes: m.cfg.AnswerCacheBytes,
		Store:            m.store,
		Logger:           log,
		Now:              m.cfg.Now,
		PublicURL:        publicURL,
		ServeURL:         serveURL,
		InsecureNoAuth:   m.cfg.InsecureNoAuth,
		TokenCacheTTL:    m.cfg.TokenCacheTTL,
		Upstreams:        upstreams,
		Registry:         reg,
		Version:          m.cfg.Version,
		PrometheusURL:    m.cfg.PrometheusURL,
		Receipts:         receipts,
		OnChange: func(kind, _ string) {
			if kind == "endpoint" {
				// The writer's own replica applies endpoint changes to the
				// very next request; other replicas poll. Model and version
				// writes cannot change routing (the gateway routes from the
				// endpoint row; deletes of routed versions are refused), so
				// they cost no reload.
				if err := m.gateway.Refresh(bg); err != nil {
					log.Warn("gateway refresh failed", "err", err)
				}
			}
		},
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	// Every scope may serve; a serve token only that, and only its
	// endpoints when it names some. The lane's Authorize asks the same.
	m.server.HandleServe("/serve/", gateway.EndpointName, m.gateway)
	if !m.cfg.DataPlaneOnly {
		if err := m.mountUI(); err != nil {
			return err
		}
	}

	switch m.api {
	case m.data:
		m.start(m.api, m.server.Handler())
	case nil:
		m.start(m.data, dataPlane(m.server.Handler()))
	default:
		m.start(m.api, withoutServe(m.server.Handler(), serveURL))
		m.start(m.data, dataPlane(m.server.Handler()))
	}
	if err := m.serveMetrics(reg); err != nil {
		return err
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.gateway.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("gateway poller stopped", "err", err)
		}
	}()
	if err := m.startDriver(bg, reg); err != nil {
		return err
	}
	if m.cfg.DataPlaneOnly {
		log.Info("mlregistry gateway serving", "addr", m.url, "db", sqlstore.RedactDSN(m.cfg.DB))
		return nil
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.purgeLoop(bg)
	}()
	attrs := []any{"addr", m.url}
	if m.data != m.api {
		attrs = append(attrs, "serve_addr", m.data.url, "serve_public_url", serveURL)
	}
	attrs = append(attrs, "db", sqlstore.RedactDSN(m.cfg.DB), "public_url", publicURL, "auth", !m.cfg.InsecureNoAuth)
	log.Info("mlregistry serving", attrs...)
	return nil
}

// checkConfig refuses combinations that cannot work or would expose more
// than meant, before anything is opened.
func (m *Main) checkConfig() error {
	c := m.cfg
	if c.DataPlaneOnly && c.InsecureNoAuth {
		return errors.New("the gateway has no --insecure-no-auth: it authenticates callers against the registry's tokens")
	}
	if c.DataPlaneOnly && c.ServeListen != "" {
		return errors.New("the gateway serves /serve/ on its --listen address; --serve-listen is for 'mlregistry serve'")
	}
	if c.ServePublicURL != "" && c.ServeListen == "" {
		return errors.New("--serve-public-url needs --serve-listen: without it /serve/ is on the API listener and endpoint URLs use --public-url")
	}
	if err := CheckListen(c.Listen, c.InsecureNoAuth); err != nil {
		return err
	}
	if c.ServeListen != "" {
		if err := CheckListen(c.ServeListen, c.InsecureNoAuth); err != nil {
			return err
		}
	}
	if err := CheckMetricsListen(c.MetricsListen, c.MetricsListenPublic); err != nil {
		return err
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("TLS needs both --tls-cert and --tls-key")
	}
	if c.PrometheusURL != "" {
		if _, err := rollout.NewPrometheus(c.PrometheusURL, c.PrometheusTimeout); err != nil {
			return fmt.Errorf("--prometheus-url: %w", err)
		}
	}
	return nil
}

// startDriver runs this process's rollout driver: every serve replica and
// gateway process runs one, and the one holding the database lease moves
// the rollouts, so they go on whichever processes are up.
func (m *Main) startDriver(ctx context.Context, reg *prometheus.Registry) error {
	log := m.cfg.Logger.With("component", "rollouts")
	var prom rollout.Querier
	if m.cfg.PrometheusURL != "" {
		p, err := rollout.NewPrometheus(m.cfg.PrometheusURL, m.cfg.PrometheusTimeout)
		if err != nil {
			return fmt.Errorf("--prometheus-url: %w", err)
		}
		prom = p
	}
	d, err := rollout.New(rollout.Options{
		Store:      m.store,
		Now:        m.cfg.Now,
		Tick:       m.cfg.RolloutTick,
		LeaseTTL:   m.cfg.RolloutLeaseTTL,
		Prometheus: prom,
		Logger:     log,
		Registerer: reg,
		LiveGuard:  m.store,
		OnChange: func(string) {
			// This process's gateway serves the new step with its very next
			// request; the others see the rollout's sequence move on their
			// next poll.
			if err := m.gateway.Refresh(ctx); err != nil && ctx.Err() == nil {
				log.Warn("gateway refresh failed", "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	m.driver = d
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("rollout driver stopped", "err", err)
		}
	}()
	return nil
}

// RolloutLeader reports whether this process's rollout driver holds the
// lease: it is the one moving rollouts.
func (m *Main) RolloutLeader() bool { return m.driver != nil && m.driver.Leader() }

// listen opens one of Main's addresses.
func (m *Main) listen(role, addr string) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if role == "serve" && m.cfg.ServeListen != "" {
			return nil, fmt.Errorf("serve listen: %w", err)
		}
		return nil, fmt.Errorf("listen: %w", err)
	}
	l := &listener{role: role, ln: ln, url: "http://" + ln.Addr().String()}
	m.listeners = append(m.listeners, l)
	if m.certs != nil {
		l.url = "https://" + ln.Addr().String()
	} else if !isLoopbackListen(addr) {
		m.cfg.Logger.Warn("listening on a non-loopback address without TLS: tokens and model traffic cross the network in clear text; pass --tls-cert and --tls-key, or terminate TLS in front of the registry",
			"listen", addr, "role", role)
	}
	return l, nil
}

// start serves l with h in the background.
func (m *Main) start(l *listener, h http.Handler) {
	log := m.cfg.Logger
	l.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: max(m.cfg.ReadHeaderTimeout, 0),
		ReadTimeout:       max(m.cfg.ReadTimeout, 0),
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln := l.ln
	switch {
	case m.certs != nil:
		// Behind TLS there is no lane (it reads plain sockets): net/http
		// serves every connection, with the one reloadable certificate.
		l.http.TLSConfig = m.certs.config()
		ln = tls.NewListener(l.ln, l.http.TLSConfig)
	case l == m.data:
		// Connections go through the gateway's fast lane, which serves
		// authorised /serve/ requests without a body or with a
		// Content-Length one itself and hands everything else (the API
		// on a shared listener, chunked uploads, 100-continue, refused
		// tokens) to l.http. gateway.Listener serves connections with raw
		// non-blocking socket calls.
		l.lane = m.gateway.Lane(gateway.Listener(l.ln), gateway.LaneOptions{
			Authorize: func(r *http.Request) bool { return m.server.MayServe(r, gateway.EndpointName(r)) },
			Header:    http.Header{"X-Content-Type-Options": {"nosniff"}},
			// The same header the API middleware echoes or generates.
			RequestIDHeader: "X-Request-ID",
			IdleTimeout:     120 * time.Second,
			HeaderTimeout:   max(m.cfg.ReadHeaderTimeout, 0),
			ReadTimeout:     max(m.cfg.ReadTimeout, 0),
			// The same API metrics and access log line as the requests
			// net/http serves.
			Observe: m.server.ObserveServe,
			Logger:  log.With("component", "gateway"),
		})
		ln = l.lane
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := l.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case m.serveErr <- fmt.Errorf("%s listener: %w", l.role, err):
			default:
			}
		}
	}()
}

// purgeLoop drops idempotency records past their 24 h life every hour.
func (m *Main) purgeLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := m.store.PurgeIdempotency(ctx, m.cfg.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			m.cfg.Logger.Warn("idempotency purge failed", "err", err)
		} else if n > 0 {
			m.cfg.Logger.Info("idempotency records purged", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// URL is the base URL the listener answers on, e.g. http://127.0.0.1:41234
// (https:// with TLS): the API's, or in DataPlaneOnly the gateway's.
func (m *Main) URL() string { return m.url }

// ServeURL is the base URL /serve/ answers on: URL unless ServeListen
// gave the data plane a listener of its own.
func (m *Main) ServeURL() string {
	if m.data == nil {
		return ""
	}
	return m.data.url
}

// ReloadTLS reads the certificate and key files again; connections already
// open keep theirs. Without TLS it does nothing. A pair that fails to load
// leaves the current one serving and is returned as the error.
func (m *Main) ReloadTLS() error {
	if m.certs == nil {
		return nil
	}
	if err := m.certs.Reload(); err != nil {
		return err
	}
	m.cfg.Logger.Info("TLS certificate reloaded", "cert", m.cfg.TLSCertFile)
	return nil
}

// upstreamPolicy is the one upstream policy of this process: the
// server checks routes against it when they are written, the gateway
// every address it dials.
func (m *Main) upstreamPolicy() (registry.UpstreamPolicy, error) {
	var p registry.UpstreamPolicy
	// The process's own listeners are never upstreams: a route pointing
	// at one would loop through /serve/, reach the API with any method,
	// or hand the token-free metrics to a serve token.
	for _, l := range m.listeners {
		p.Self = append(p.Self, l.ln.Addr().String())
	}
	if m.metricsLn != nil {
		p.Self = append(p.Self, m.metricsLn.Addr().String())
	}
	var err error
	if p.Allow, err = parsePrefixes("upstream allow", m.cfg.UpstreamAllow); err != nil {
		return p, err
	}
	if p.Deny, p.DenyNames, err = registry.ParseUpstreamList(m.cfg.UpstreamDeny); err != nil {
		return p, fmt.Errorf("upstream deny: %w", err)
	}
	p.Metadata = m.cfg.UpstreamMetadata
	if _, err := registry.NewUpstreamRule(p); err != nil {
		return p, fmt.Errorf("upstream metadata: %w", err)
	}
	return p, nil
}

// parsePrefixes parses CIDR networks ("10.0.0.0/8", "fd00::/8"); a bare
// address stands for itself.
func parsePrefixes(what string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is not a network such as 10.0.0.0/8 or an IP address", what, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Store is the open store (nil before Run).
func (m *Main) Store() registry.Store { return m.store }

// Err delivers a serving failure (the listener died).
func (m *Main) Err() <-chan error { return m.serveErr }

// Close shuts down gracefully: in-flight requests finish (within
// ShutdownTimeout), background loops stop, the database closes.
func (m *Main) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
	// The listeners drain side by side, within the one deadline.
	var (
		mu   sync.Mutex
		wait sync.WaitGroup
	)
	for _, l := range m.listeners {
		if l.http == nil {
			_ = l.ln.Close()
			continue
		}
		wait.Add(1)
		go func() {
			defer wait.Done()
			var lerrs []error
			if err := l.http.Shutdown(ctx); err != nil {
				lerrs = append(lerrs, fmt.Errorf("http shutdown (%s listener): %w", l.role, err))
				// Past the deadline: Shutdown leaves busy connections open
				// (a stream on a stalled upstream would hold Close forever).
				_ = l.http.Close()
			}
			// Behind TLS there is no lane: net/http owned the listener.
			if l.lane != nil {
				if err := l.lane.Shutdown(ctx); err != nil {
					lerrs = append(lerrs, fmt.Errorf("gateway lane shutdown (%s listener): %w", l.role, err))
				}
			}
			mu.Lock()
			errs = append(errs, lerrs...)
			mu.Unlock()
		}()
	}
	wait.Wait()
	if m.metricsHTTP != nil {
		if err := m.metricsHTTP.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics listener shutdown: %w", err))
		}
	} else if m.metricsLn != nil {
		_ = m.metricsLn.Close() // opened, never served: Run failed before
	}
	cancel()
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.server != nil {
		if err := m.server.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server close: %w", err))
		}
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	return errors.Join(errs...)
}
