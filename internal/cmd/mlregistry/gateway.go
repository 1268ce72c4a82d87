package main

import (
	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
)

func newGatewayCmd() *cobra.Command {
	var (
		listen, db string
		sf         serverFlags
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the gateway (/serve/) alone, apart from the registry",
		Long: `Run the data plane alone: /serve/{endpoint}/ (and /healthz, /readyz) on
--listen, with no API and no UI, so prediction traffic scales apart from
the registry. Run as many as the traffic needs, each beside or far from
'mlregistry serve'.

It reads endpoints from the registry's database (--db, SQLite or
PostgreSQL; a SQLite file only works on the registry's own machine) and
picks up changes made through the registry within a second. Callers send a
registry token with serve scope (limited to the endpoints it names) or
read scope or above, checked against the database; a token revoked in the
registry stops working here within --token-cache-ttl. The rollback guard
runs in each gateway on that gateway's own traffic; what it does is written
to the database, as an event in the registry's audit log. The database is
never migrated from here: start the registry (or run 'mlregistry migrate')
first, and upgrade the registry before its gateways.

Rollouts move on whichever process holds a lease in the database: each
gateway and each registry replica runs the rollout driver, and one leads.
Give them all the same --prometheus-url when rollouts use prometheus gates.

--tls-cert and --tls-key serve HTTPS (SIGHUP reloads the pair), as in
'mlregistry serve'. --metrics-listen serves this gateway's /metrics.

Upstreams are never the gateway's own listener, nor link-local or
unspecified addresses. The registry's API is somewhere else: deny it with
--upstream-deny (or allow only the model servers' networks with
--upstream-allow), so no endpoint can point the gateway at it.

SIGTERM or Ctrl-C shut down gracefully.`,
		Example: `  mlregistry gateway --listen 0.0.0.0:8081 --db postgres://mlr@db:5432/mlr \
      --upstream-allow 10.20.0.0/16 --metrics-listen 127.0.0.1:9091
  mlregistry gateway --db sqlite:///var/lib/mlregistry/registry.db    # beside 'serve' on the same machine
  mlregistry gateway --listen 0.0.0.0:8443 --db postgres://mlr@db:5432/mlr \
      --tls-cert /etc/mlregistry/tls.crt --tls-key /etc/mlregistry/tls.key
  curl -H "Authorization: Bearer $SERVE_TOKEN" http://127.0.0.1:8081/serve/churn/predict`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sf.check(); err != nil {
				return err
			}
			if !cmd.Flags().Changed("listen") {
				listen = envOr("MLREGISTRY_GATEWAY_LISTEN", listen)
			}
			logger, err := sf.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg := app.Config{
				DataPlaneOnly: true,
				Listen:        listen,
				DB:            dsn(cmd, db),
				Logger:        logger,
				Version:       version,
			}
			sf.apply(&cfg)
			return runMain(cmd.Context(), app.New(cfg), logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", app.DefaultGatewayListen, "TCP address to serve /serve/ on (env MLREGISTRY_GATEWAY_LISTEN)")
	addDBFlag(cmd, &db)
	sf.register(cmd, serverFlagHelp{
		metricsListen: "serve /metrics without a token on this address, e.g. 127.0.0.1:9091 (default off)",
		upstreamDeny:  "networks (CIDR), addresses or host names endpoint upstreams may not be, besides link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0, ::), multicast, --upstream-metadata and this gateway's own listeners; add the registry's address",
		tokenCacheTTL: "how long a validated token is trusted before the database is asked again: the longest a token revoked in the registry keeps working here (negative: no cache)",
	})
	return cmd
}
