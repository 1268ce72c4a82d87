package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
)

// UpstreamPolicy says which addresses the gateway may connect to. It is
// checked on the address actually dialled (after name resolution, in the
// dialer's Control hook), so a name that resolves somewhere else, or a
// redirect in DNS, cannot get around it.
//
// An address is refused when it is in Deny, in the default deny list
// (link-local 169.254.0.0/16 and fe80::/10, where cloud metadata services
// live; the unspecified 0.0.0.0/8 and ::, which reach the local host), or
// one of the registry's own listeners (Self). When Allow is not empty, an
// address must also be in Allow. Loopback is allowed by default: the
// quickstart and tests serve models on 127.0.0.1.
type UpstreamPolicy struct {
	// Allow, when not empty, lists the only networks upstreams may be in.
	Allow []netip.Prefix
	// Deny lists networks refused in addition to the defaults.
	Deny []netip.Prefix
	// Self lists the registry's own listen addresses (host:port); an
	// unspecified host (0.0.0.0, ::) stands for every local address.
	Self []string
	// AllowLinkLocal lifts the default deny of link-local and unspecified
	// addresses (for a model server that really lives there).
	AllowLinkLocal bool
}

// defaultDeny is refused unless AllowLinkLocal is set.
var defaultDeny = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
}

// errUpstreamDenied is a dial refused by the upstream policy.
var errUpstreamDenied = errors.New("upstream address refused by the gateway's upstream policy")

// policy is an UpstreamPolicy compiled for the dial hook.
type policy struct {
	allow, deny []netip.Prefix
	self        map[netip.AddrPort]bool
	selfPorts   map[uint16]bool // ports of listeners on an unspecified host
	local       []netip.Addr    // this host's addresses, for selfPorts
}

func compilePolicy(p UpstreamPolicy) (*policy, error) {
	c := &policy{allow: p.Allow, deny: append([]netip.Prefix(nil), p.Deny...), self: map[netip.AddrPort]bool{}, selfPorts: map[uint16]bool{}}
	if !p.AllowLinkLocal {
		c.deny = append(c.deny, defaultDeny...)
	}
	for _, s := range p.Self {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("gateway: own listen address %q: %w", s, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("gateway: own listen address %q: bad port", s)
		}
		ip, err := netip.ParseAddr(host)
		if host == "" || (err == nil && ip.IsUnspecified()) {
			c.selfPorts[uint16(n)] = true
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("gateway: own listen address %q: not an IP address", s)
		}
		c.self[netip.AddrPortFrom(ip.Unmap(), uint16(n))] = true
	}
	if len(c.selfPorts) > 0 {
		c.local = append(c.local, netip.IPv4Unspecified(), netip.IPv6Unspecified())
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if pfx, err := netip.ParsePrefix(a.String()); err == nil {
					c.local = append(c.local, pfx.Addr().Unmap())
				}
			}
		}
	}
	return c, nil
}

// check reports whether the gateway may connect to ap.
func (c *policy) check(ap netip.AddrPort) error {
	ip := ap.Addr().Unmap()
	ap = netip.AddrPortFrom(ip, ap.Port())
	for _, p := range c.deny {
		if p.Contains(ip) {
			return errUpstreamDenied
		}
	}
	if c.self[ap] || (c.selfPorts[ap.Port()] && (ip.IsLoopback() || c.isLocal(ip))) {
		return errUpstreamDenied
	}
	if len(c.allow) == 0 {
		return nil
	}
	for _, p := range c.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	return errUpstreamDenied
}

func (c *policy) isLocal(ip netip.Addr) bool {
	for _, l := range c.local {
		if l == ip {
			return true
		}
	}
	return false
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
