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
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/server"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// Defaults used by the CLI and by New when a field is empty.
const (
	DefaultListen = "127.0.0.1:8080"
	DefaultDB     = "sqlite://./mlregistry.db"

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
	// UpstreamAllow, when not empty, lists the only networks (CIDR)
	// endpoint upstreams may be in; UpstreamDeny lists networks refused
	// besides link-local, unspecified and this registry's own listener
	// (see gateway.UpstreamPolicy).
	UpstreamAllow, UpstreamDeny []string
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
}

// Main is a running registry: store, API server and gateway on one
// listener.
type Main struct {
	cfg Config

	store   *sqlstore.Store
	server  *server.Server
	gateway *gateway.Gateway
	http    *http.Server
	ln      net.Listener
	lane    *gateway.Lane
	certs   *certReloader
	url     string

	metricsHTTP *http.Server
	metricsURL  string

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	serveErr chan error
	closeMu  sync.Mutex
	closed   bool
}

// New returns a Main that Run starts.
func New(cfg Config) *Main {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
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

// Run opens the store (applying migrations), starts listening and serving
// in the background, and returns once requests are accepted. Call Close to
// stop; Err reports a serving failure.
func (m *Main) Run(ctx context.Context) (err error) {
	if err := CheckListen(m.cfg.Listen, m.cfg.InsecureNoAuth); err != nil {
		return err
	}
	if err := CheckMetricsListen(m.cfg.MetricsListen, m.cfg.MetricsListenPublic); err != nil {
		return err
	}
	log := m.cfg.Logger
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()

	m.store, err = sqlstore.Open(ctx, m.cfg.DB, sqlstore.Options{Now: m.cfg.Now, Logger: log})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}

	if (m.cfg.TLSCertFile == "") != (m.cfg.TLSKeyFile == "") {
		return errors.New("TLS needs both --tls-cert and --tls-key")
	}
	if m.cfg.TLSCertFile != "" {
		if m.certs, err = newCertReloader(m.cfg.TLSCertFile, m.cfg.TLSKeyFile); err != nil {
			return err
		}
	}
	m.ln, err = net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.url = "http://" + m.ln.Addr().String()
	if m.certs != nil {
		m.url = "https://" + m.ln.Addr().String()
	} else if !isLoopbackListen(m.cfg.Listen) {
		log.Warn("listening on a non-loopback address without TLS: tokens and model traffic cross the network in clear text; pass --tls-cert and --tls-key, or terminate TLS in front of the registry",
			"listen", m.cfg.Listen)
	}
	publicURL := strings.TrimRight(m.cfg.PublicURL, "/")
	if publicURL == "" {
		publicURL = m.url
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel

	// The registry's own listener is never an upstream: a route pointing
	// at it would loop through /serve/ or reach the API with any method.
	upstreams := gateway.UpstreamPolicy{Self: []string{m.ln.Addr().String()}}
	if upstreams.Allow, err = parsePrefixes("upstream allow", m.cfg.UpstreamAllow); err != nil {
		return err
	}
	if upstreams.Deny, err = parsePrefixes("upstream deny", m.cfg.UpstreamDeny); err != nil {
		return err
	}
	m.gateway, err = gateway.New(gateway.Options{
		Source:       m.store,
		Logger:       log.With("component", "gateway"),
		Now:          m.cfg.Now,
		Registerer:   reg,
		PollInterval: m.cfg.GatewayPollInterval,
		Upstreams:    upstreams,
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

	m.server, err = server.New(server.Options{
		Store:          m.store,
		Logger:         log,
		Now:            m.cfg.Now,
		PublicURL:      publicURL,
		InsecureNoAuth: m.cfg.InsecureNoAuth,
		TokenCacheTTL:  m.cfg.TokenCacheTTL,
		Registry:       reg,
		Version:        m.cfg.Version,
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
	if err := m.mountUI(); err != nil {
		return err
	}

	// Connections go through the gateway's fast lane, which serves plain
	// authorised /serve/ GETs itself and hands everything else (the API,
	// request bodies, refused tokens) to m.http. gateway.Listener serves
	// connections with raw non-blocking socket calls. Behind TLS there is
	// no lane (it reads plain sockets): net/http serves every connection.
	if m.certs == nil {
		m.lane = m.gateway.Lane(gateway.Listener(m.ln), gateway.LaneOptions{
			Authorize: func(r *http.Request) bool { return m.server.MayServe(r, gateway.EndpointName(r)) },
			Header:    http.Header{"X-Content-Type-Options": {"nosniff"}},
			// The same header the API middleware echoes or generates.
			RequestIDHeader: "X-Request-ID",
			IdleTimeout:     120 * time.Second,
			HeaderTimeout:   max(m.cfg.ReadHeaderTimeout, 0),
			Logger:          log.With("component", "gateway"),
		})
	}
	m.http = &http.Server{
		Handler:           m.server.Handler(),
		ReadHeaderTimeout: max(m.cfg.ReadHeaderTimeout, 0),
		ReadTimeout:       max(m.cfg.ReadTimeout, 0),
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if err := m.serveMetrics(reg); err != nil {
		return err
	}
	m.wg.Add(3)
	var serveLn net.Listener = m.lane
	if m.certs != nil {
		m.http.TLSConfig = m.certs.config()
		serveLn = tls.NewListener(m.ln, m.http.TLSConfig)
	}
	go func() {
		defer m.wg.Done()
		if err := m.http.Serve(serveLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.serveErr <- err
		}
	}()
	go func() {
		defer m.wg.Done()
		if err := m.gateway.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("gateway poller stopped", "err", err)
		}
	}()
	go func() {
		defer m.wg.Done()
		m.purgeLoop(bg)
	}()
	log.Info("mlregistry serving", "addr", m.url, "db", sqlstore.RedactDSN(m.cfg.DB), "public_url", publicURL, "auth", !m.cfg.InsecureNoAuth)
	return nil
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
// (https:// with TLS).
func (m *Main) URL() string { return m.url }

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
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
		if err := m.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			// Past the deadline: Shutdown leaves busy connections open
			// (a stream on a stalled upstream would hold Close forever).
			_ = m.http.Close()
		}
		// Behind TLS there is no lane: net/http owned the listener.
		if m.lane != nil {
			if err := m.lane.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("gateway lane shutdown: %w", err))
			}
		}
		if m.metricsHTTP != nil {
			if err := m.metricsHTTP.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("metrics listener shutdown: %w", err))
			}
		}
		cancel()
	} else if m.ln != nil {
		_ = m.ln.Close()
	}
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
