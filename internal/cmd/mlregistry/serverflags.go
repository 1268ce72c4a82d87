package main

import (
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// serverFlags are the flags 'serve' and 'gateway' share: logging, the
// metrics listener, the upstream policy, client timeouts, TLS and the
// token cache.
type serverFlags struct {
	logFormat, logLevel, metricsListen, tlsCert, tlsKey string
	prometheusURL                                       string
	metricsPublic                                       bool
	upstreamAllow, upstreamDeny, upstreamMetadata       []string
	readHeaderTimeout, readTimeout, tokenCacheTTL       time.Duration
}

// serverFlagHelp is what differs between the two commands' help.
type serverFlagHelp struct {
	metricsListen, upstreamDeny, tokenCacheTTL string
}

func (s *serverFlags) register(cmd *cobra.Command, help serverFlagHelp) {
	f := cmd.Flags()
	f.StringVar(&s.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&s.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&s.metricsListen, "metrics-listen", "", help.metricsListen)
	f.BoolVar(&s.metricsPublic, "metrics-listen-public", false, "allow --metrics-listen on a non-loopback address")
	f.StringSliceVar(&s.upstreamAllow, "upstream-allow", nil, "networks (CIDR) endpoint upstreams may be in; default any, except the denied ones")
	f.StringSliceVar(&s.upstreamDeny, "upstream-deny", nil, help.upstreamDeny)
	f.StringSliceVar(&s.upstreamMetadata, "upstream-metadata", registry.DefaultMetadataUpstreams, "cloud metadata services (addresses, networks, host names) endpoint upstreams may not be; a list given replaces the default one, --upstream-metadata= refuses none")
	f.DurationVar(&s.readHeaderTimeout, "read-header-timeout", app.DefaultReadHeaderTimeout, "longest a client may take to send a request's header")
	f.DurationVar(&s.readTimeout, "read-timeout", app.DefaultReadTimeout, "longest a client may take to send a whole request, body included")
	f.StringVar(&s.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS (with --tls-key); SIGHUP reloads it")
	f.StringVar(&s.tlsKey, "tls-key", "", "PEM private key file for --tls-cert")
	f.DurationVar(&s.tokenCacheTTL, "token-cache-ttl", 5*time.Second, help.tokenCacheTTL)
	f.StringVar(&s.prometheusURL, "prometheus-url", "", "Prometheus base URL the rollouts' prometheus gates query, e.g. http://prometheus:9090 (default none: such gates are refused); give every serve replica and gateway the same one, as any of them may lead the rollouts")
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
}

// check refuses flags that would do nothing, or turn a protection off by
// accident: a zero or negative read timeout means no timeout at all.
func (s *serverFlags) check() error {
	if s.metricsPublic && s.metricsListen == "" {
		return usageErrorf("--metrics-listen-public allows a public --metrics-listen address; without --metrics-listen there is no metrics listener")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--read-header-timeout", s.readHeaderTimeout}, {"--read-timeout", s.readTimeout}} {
		if d.v <= 0 {
			return usageErrorf("%s %q must be positive: it bounds how long a client may hold a connection open", d.flag, d.v.String())
		}
	}
	return nil
}

// logger is the logger the flags ask for, writing to w.
func (s *serverFlags) logger(w io.Writer) (*slog.Logger, error) {
	return newLogger(w, s.logFormat, s.logLevel)
}

// apply copies the flags into c.
func (s *serverFlags) apply(c *app.Config) {
	c.MetricsListen = s.metricsListen
	c.MetricsListenPublic = s.metricsPublic
	c.UpstreamAllow = s.upstreamAllow
	c.UpstreamDeny = s.upstreamDeny
	// Never nil: the flag's default is the default list, and an empty
	// value means the operator lifted it.
	c.UpstreamMetadata = append([]string{}, s.upstreamMetadata...)
	c.ReadHeaderTimeout = s.readHeaderTimeout
	c.ReadTimeout = s.readTimeout
	c.TLSCertFile = s.tlsCert
	c.TLSKeyFile = s.tlsKey
	c.TokenCacheTTL = s.tokenCacheTTL
	c.PrometheusURL = s.prometheusURL
}
