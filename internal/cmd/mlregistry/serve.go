package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
)

func newServeCmd() *cobra.Command {
	var (
		listen, db, publicURL, serveListen, servePublicURL string
		insecure                                           bool
		answerCacheMB                                      int
		sf                                                 serverFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry API and gateway",
		Long: `Run the registry: the API (/api/v1), the gateway (/serve/), /healthz,
/readyz, /metrics (read token) and /openapi.json on one listener. Migrations
are applied on start. SIGTERM or Ctrl-C shut down gracefully.

--tls-cert and --tls-key serve HTTPS; SIGHUP reloads the pair without
dropping connections (a pair that fails to load is logged and the old one
keeps serving). Without TLS on a non-loopback address the server warns at
start: terminate TLS in front of it, or pass the pair.

A revoked token keeps working on other replicas for at most
--token-cache-ttl (default 5s; on the replica that revoked it, at once).

--metrics-listen serves /metrics alone on a second address without a token,
for a Prometheus scrape; it must be a loopback address unless
--metrics-listen-public is given too. It counts gateway traffic on every
listener.

--serve-listen moves the data plane to an address of its own: there
/serve/ (and /healthz, /readyz) is served and nothing else; on --listen the
API and the UI stay, and /serve/ answers 404 naming the serve listener.
Endpoint URLs then use --serve-public-url. TLS, SIGHUP and tokens work the
same on both. To run the data plane in processes of its own, see
'mlregistry gateway'.

--prometheus-url names the Prometheus that endpoint rollouts' prometheus
gates query; without it such gates are refused. Replicas and gateways
share the rollouts through a lease in the database, and any of them may
lead: give them all the same URL.

Model and version reads are answered from a cache of encoded answers while
nothing changed: a write shows at once on the replica that took it, and
on other replicas (or after another process wrote the same SQLite file)
within 200ms. --answer-cache-mb bounds its memory; 0 turns it off.`,
		Example: `  mlregistry serve
  mlregistry serve --listen 0.0.0.0:8080 --db sqlite:///var/lib/mlregistry/registry.db \
      --public-url https://registry.example.com --log-format json
  mlregistry serve --metrics-listen 127.0.0.1:9090
  mlregistry serve --listen 10.0.0.5:8080 --serve-listen 0.0.0.0:8081 \
      --public-url https://registry.internal --serve-public-url https://predict.example.com
  mlregistry serve --listen 0.0.0.0:8443 --tls-cert /etc/mlregistry/tls.crt --tls-key /etc/mlregistry/tls.key
  mlregistry serve --listen 127.0.0.1:0 --insecure-no-auth     # local experiments only`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			stderr := cmd.ErrOrStderr()
			if err := sf.check(); err != nil {
				return err
			}
			if !cmd.Flags().Changed("listen") {
				listen = envOr("MLREGISTRY_LISTEN", listen)
			}
			logger, err := sf.logger(stderr)
			if err != nil {
				return err
			}
			if insecure {
				logger.Warn("authentication is DISABLED (--insecure-no-auth); every request acts as admin")
			}
			cfg := app.Config{
				Listen:         listen,
				DB:             dsn(cmd, db),
				PublicURL:      publicURL,
				InsecureNoAuth: insecure,
				Logger:         logger,
				Version:        version,
				ServeListen:    serveListen,
				ServePublicURL: servePublicURL,
			}
			if answerCacheMB < 0 {
				return usageErrorf("--answer-cache-mb %d must be 0 (no cache) or more", answerCacheMB)
			}
			cfg.AnswerCacheBytes = int64(answerCacheMB) << 20
			if answerCacheMB == 0 {
				cfg.AnswerCacheBytes = -1
			}
			sf.apply(&cfg)
			return runMain(ctx, app.New(cfg), logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", app.DefaultListen, "TCP address to listen on (env MLREGISTRY_LISTEN)")
	addDBFlag(cmd, &db)
	f.StringVar(&publicURL, "public-url", "", "base URL clients use to reach this server (default http://LISTEN)")
	f.StringVar(&serveListen, "serve-listen", "", "serve /serve/ on this address only, apart from the API, e.g. 0.0.0.0:8081 (default: on --listen with the API)")
	f.StringVar(&servePublicURL, "serve-public-url", "", "base URL clients use to reach --serve-listen; endpoint URLs use it (default http://SERVE-LISTEN)")
	f.BoolVar(&insecure, "insecure-no-auth", false, "disable authentication (loopback listen addresses only)")
	f.IntVar(&answerCacheMB, "answer-cache-mb", app.DefaultAnswerCacheMB, "memory for cached model and version answers, in MiB (0: no cache)")
	sf.register(cmd, serverFlagHelp{
		metricsListen: "also serve /metrics without a token on this address, e.g. 127.0.0.1:9090 (default off)",
		upstreamDeny:  "networks (CIDR), addresses or host names endpoint upstreams may not be, besides link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0, ::), multicast, --upstream-metadata and this registry's own listeners (API, serve, metrics)",
		tokenCacheTTL: "how long a validated token is trusted before the database is asked again: the longest a revoked token keeps working on other replicas (negative: no cache)",
	})
	return cmd
}

// runMain runs m until ctx ends (SIGTERM, Ctrl-C) or serving fails,
// reloading the TLS pair on SIGHUP, then shuts it down gracefully.
func runMain(ctx context.Context, m *app.Main, logger *slog.Logger) error {
	if err := m.Run(ctx); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
			break wait
		case err := <-m.Err():
			_ = m.Close()
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			if err := m.ReloadTLS(); err != nil {
				logger.Error("TLS reload failed; the previous certificate keeps serving", "err", err)
			}
		}
	}
	if err := m.Close(); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level %q must be debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q must be text or json", format)
}
