package gateway

import (
	"errors"
	"fmt"
	"net/http"
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

// hopHeader counts how many mlregistry gateways a request passed; a
// request that already passed maxHops is refused with 508 Loop Detected,
// so an endpoint that points back at a gateway (directly, or through a
// name or a load balancer the policy cannot recognise) ends after a few
// hops instead of opening connections until descriptors run out.
const (
	hopHeader = "X-Mlregistry-Hops"
	maxHops   = 3
)

// hops is the request's hop count; ok is false when the header is
// malformed or past maxHops.
func hops(h http.Header) (n int, ok bool) {
	vv := h[hopHeader]
	if len(vv) == 0 {
		return 0, true
	}
	if len(vv) != 1 || len(vv[0]) != 1 || vv[0][0] < '0' || vv[0][0] > '9' {
		return 0, false
	}
	n = int(vv[0][0] - '0')
	return n, n < maxHops
}

// hopValues are the outgoing hop header values, shared by every request.
var hopValues = [maxHops + 1][]string{{"1"}, {"2"}, {"3"}, {"4"}}
