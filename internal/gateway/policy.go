package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"syscall"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// UpstreamPolicy says which upstreams the gateway may connect to (see
// registry.UpstreamPolicy; the server applies the same rule when routes
// are written). It is checked on the address actually dialled (after name
// resolution, in the dialer's Control hook), so a name that resolves
// somewhere else, or a change in DNS after the route was written, cannot
// get around it; a route's host name and literal address are checked
// when the route is loaded, so a refused one is never dialled.
type UpstreamPolicy = registry.UpstreamPolicy

// errUpstreamDenied is a dial or a route refused by the upstream policy.
var errUpstreamDenied = errors.New("upstream address refused by the gateway's upstream policy")

// policy is an UpstreamPolicy compiled for the dial hook.
type policy struct {
	rule *registry.UpstreamRule
}

func compilePolicy(p UpstreamPolicy) (*policy, error) {
	r, err := registry.NewUpstreamRule(p)
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream policy: %w", err)
	}
	return &policy{rule: r}, nil
}

// check reports whether the gateway may connect to ap.
func (c *policy) check(ap netip.AddrPort) error {
	if err := c.rule.CheckAddr(ap); err != nil {
		return fmt.Errorf("%w: %w", errUpstreamDenied, err)
	}
	return nil
}

// checkURL reports whether the policy refuses u by its host (a name, or
// an address in any spelling) before anything is resolved or dialled.
func (c *policy) checkURL(u *url.URL) error {
	port, err := registry.UpstreamPort(u)
	if err != nil {
		return fmt.Errorf("%w: %w", errUpstreamDenied, err)
	}
	if err := c.rule.CheckHost(u.Hostname(), port); err != nil {
		return fmt.Errorf("%w: %w", errUpstreamDenied, err)
	}
	return nil
}

// control is the net.Dialer Control hook: address is the IP:port about to
// be connected.
func (c *policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errUpstreamDenied
	}
	return c.check(ap)
}
