package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// lookupBudget bounds the name resolution of one write's upstreams: a
// slow or unreachable DNS server must not hold an API write, and a name
// that does not resolve in time is still checked by the gateway on
// every dial.
const lookupBudget = 3 * time.Second

// checkUpstreams applies the upstream policy to routes being written:
// each host as the dialler reads it, and each address a name resolves to
// now.
func (s *Server) checkUpstreams(ctx context.Context, field string, routes []registry.Route) error {
	ctx, cancel := context.WithTimeout(ctx, lookupBudget)
	defer cancel()
	lookup := func(host string) ([]netip.Addr, error) { return s.lookup(ctx, host) }
	for i, r := range routes {
		if err := s.upstreams.CheckUpstreamURL(fmt.Sprintf("%s[%d].upstream_url", field, i), r.UpstreamURL, lookup); err != nil {
			return err
		}
	}
	return nil
}

// lookupIP resolves host with the system's resolver.
func lookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
