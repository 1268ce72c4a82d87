package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CheckMetricsListen refuses an unauthenticated metrics listener on a
// non-loopback address unless public says the operator means it: metrics
// name models and endpoints, and a scrape costs CPU.
func CheckMetricsListen(listen string, public bool) error {
	if listen == "" || public {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--metrics-listen %q: %w", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--metrics-listen %q is not a loopback address and serves /metrics without a token; add --metrics-listen-public to mean it (and firewall it), or keep it on 127.0.0.1", listen)
}

// listenMetrics opens the token-free /metrics listener when configured,
// before the upstream policy is built: it is one of the addresses no
// endpoint may point at.
func (m *Main) listenMetrics() error {
	if m.cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	m.metricsLn = ln
	return nil
}

// serveMetrics serves the listener listenMetrics opened. It serves the
// API's Prometheus registry and nothing else.
func (m *Main) serveMetrics(reg *prometheus.Registry) error {
	ln := m.metricsLn
	if ln == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	m.metricsHTTP = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelWarn),
	}
	m.metricsURL = "http://" + ln.Addr().String()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.metricsHTTP.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case m.serveErr <- fmt.Errorf("metrics listener: %w", err):
			default:
			}
		}
	}()
	m.cfg.Logger.Info("metrics serving without authentication", "metrics_url", m.metricsURL+"/metrics")
	return nil
}

// MetricsURL is the base URL of the token-free metrics listener, "" when
// there is none.
func (m *Main) MetricsURL() string { return m.metricsURL }
