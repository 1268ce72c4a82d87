package registry

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DefaultMetadataUpstreams are the cloud metadata services an endpoint's
// upstream may not be, by address or by name, unless the operator gives
// another list (UpstreamPolicy.Metadata). They hand out instance
// credentials to whoever asks from inside the machine, so a route to one
// would serve a cloud identity to every serve token. 169.254.169.254 is
// also covered by the link-local rule; it is listed so that lifting that
// rule does not open it.
var DefaultMetadataUpstreams = []string{
	"169.254.169.254",            // AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, ...
	"169.254.170.2",              // AWS ECS task metadata and credentials
	"fd00:ec2::254",              // AWS instance metadata over IPv6
	"100.100.100.200",            // Alibaba Cloud
	"168.63.129.16",              // Azure WireServer
	"192.0.0.192",                // Oracle Cloud Classic
	"metadata.google.internal",   // GCP
	"metadata.goog",              // GCP
	"metadata",                   // GCP, through the instance's search domain
	"instance-data",              // AWS, through the instance's search domain
	"instance-data.ec2.internal", // AWS
	"metadata.tencentyun.com",    // Tencent Cloud
}

// ErrUpstreamRefused is matched (errors.Is) by every refusal of the
// upstream policy.
var ErrUpstreamRefused = errors.New("upstream refused by the upstream policy")

// UpstreamRefusal says why the upstream policy refuses an address or a
// name. Its message names what was refused and why, for the operator who
// wrote the route; the gateway logs it and never shows it to callers.
type UpstreamRefusal struct {
	// Host is what was refused: an address (as dialled) or a name.
	Host   string
	Reason string
}

func (e *UpstreamRefusal) Error() string { return e.Host + " is " + e.Reason }

// Is makes every refusal match ErrUpstreamRefused.
func (e *UpstreamRefusal) Is(target error) bool { return target == ErrUpstreamRefused }

// Reasons of UpstreamRefusal.
const (
	reasonLinkLocal   = "a link-local address"
	reasonUnspecified = "an unspecified address (it reaches this host)"
	reasonMulticast   = "a multicast address"
	reasonMetadata    = "a cloud metadata service"
	reasonDenied      = "in a network the upstream policy denies"
	reasonDeniedName  = "a host name the upstream policy denies"
	reasonNotAllowed  = "not in a network the upstream policy allows"
	reasonSelf        = "one of this registry's own listeners"
)

// staticRefusal is the rule every registry applies whatever its policy
// (AllowLinkLocal aside): addresses that are never a model server.
func staticRefusal(ip netip.Addr) string {
	switch {
	case ip.IsUnspecified() || (ip.Is4() && ip.As4()[0] == 0):
		return reasonUnspecified
	case ip.IsLinkLocalUnicast():
		return reasonLinkLocal
	case ip.IsMulticast():
		return reasonMulticast
	}
	return ""
}

// UpstreamHost is an upstream URL's host as a dialler reads it.
type UpstreamHost struct {
	// Addr is set when the host is an IP address, in whatever spelling
	// (IPv6 zone dropped, IPv4-mapped addresses kept as written).
	Addr netip.Addr
	// Name is set when the host is a name: lower case, without the
	// trailing dot.
	Name string
	// Unusual: Addr was written some other way than the dotted-decimal
	// or IPv6 text form (2852039166, 0xa9fea9fe, 0251.0376.0251.0376,
	// 169.254.169.254.), which resolvers disagree about.
	Unusual bool
}

// ParseUpstreamHost reads host (as url.URL.Hostname gives it) the way the
// most liberal dialler does, so a check on the result sees what any
// dialler may connect to: a host whose last label is a number is an IPv4
// address in inet_aton's forms (one to four parts, each decimal, octal
// with a leading 0 or hexadecimal with 0x; the last part fills the
// remaining bytes), or invalid; one trailing dot is ignored; an IPv6
// zone is dropped.
func ParseUpstreamHost(host string) (UpstreamHost, error) {
	if host == "" {
		return UpstreamHost{}, errors.New("the host is empty")
	}
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return UpstreamHost{}, fmt.Errorf("%q is not an IPv6 address", host)
		}
		return UpstreamHost{Addr: ip.WithZone("")}, nil
	}
	h := strings.TrimSuffix(host, ".")
	if endsInNumber(h) {
		ip, ok := parseIPv4Loose(h)
		if !ok {
			return UpstreamHost{}, fmt.Errorf("%q ends in a number but is not an IPv4 address", host)
		}
		return UpstreamHost{Addr: ip, Unusual: host != ip.String()}, nil
	}
	if h == "" || strings.HasSuffix(h, ".") || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return UpstreamHost{}, fmt.Errorf("%q is not a host name", host)
	}
	return UpstreamHost{Name: strings.ToLower(h)}, nil
}

// endsInNumber: the last label is all digits, or 0x and hex digits.
func endsInNumber(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// parseIPv4Loose parses inet_aton's forms of an IPv4 address.
func parseIPv4Loose(h string) (netip.Addr, bool) {
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := inetNumber(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			v = v<<8 | n
			continue
		}
		rest := 8 * uint(5-len(parts)) // bits the last part fills
		if n >= 1<<rest {
			return netip.Addr{}, false
		}
		v = v<<rest | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// inetNumber is one part of an inet_aton address, at most 32 bits.
func inetNumber(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" is 0 to inet_aton
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	n, err := strconv.ParseUint(p, base, 32)
	return n, err == nil
}

// UpstreamPolicy says which upstreams endpoints may have. The zero value
// is the default: everything but the static refusals (link-local,
// unspecified and multicast addresses) and DefaultMetadataUpstreams.
// Loopback is allowed, as model servers on 127.0.0.1 are how the
// quickstart and tests run.
type UpstreamPolicy struct {
	// Allow, when not empty, lists the only networks upstreams may be in.
	Allow []netip.Prefix
	// Deny lists networks refused besides the defaults.
	Deny []netip.Prefix
	// DenyNames lists host names refused besides the metadata names
	// (compared without case and trailing dot).
	DenyNames []string
	// Metadata lists the metadata services refused, as addresses,
	// networks (CIDR) or names: nil means DefaultMetadataUpstreams, an
	// empty list none.
	Metadata []string
	// Self lists the registry's own listen addresses (host:port); an
	// unspecified host (0.0.0.0, ::, "") stands for every local address.
	Self []string
	// Local lists this host's addresses, for Self entries on an
	// unspecified host; nil asks the system once (net.InterfaceAddrs).
	Local []netip.Addr
	// AllowLinkLocal lifts the static refusal of link-local and
	// unspecified addresses (for a model server that really lives there).
	AllowLinkLocal bool
}

// UpstreamRule is an UpstreamPolicy ready to check addresses and names.
type UpstreamRule struct {
	allow, deny, metadata []netip.Prefix
	names                 map[string]string // name -> reason
	self                  map[netip.AddrPort]bool
	selfPorts             map[uint16]bool // ports of listeners on an unspecified host
	local                 map[netip.Addr]bool
	allowLinkLocal        bool
}

// NewUpstreamRule compiles p.
func NewUpstreamRule(p UpstreamPolicy) (*UpstreamRule, error) {
	r := &UpstreamRule{
		allow:          prefixesUnmapped(p.Allow),
		deny:           prefixesUnmapped(p.Deny),
		names:          map[string]string{},
		self:           map[netip.AddrPort]bool{},
		selfPorts:      map[uint16]bool{},
		local:          map[netip.Addr]bool{},
		allowLinkLocal: p.AllowLinkLocal,
	}
	metadata := p.Metadata
	if metadata == nil {
		metadata = DefaultMetadataUpstreams
	}
	pfx, names, err := ParseUpstreamList(metadata)
	if err != nil {
		return nil, fmt.Errorf("metadata upstreams: %w", err)
	}
	r.metadata = pfx
	for _, n := range names {
		r.names[n] = reasonMetadata
	}
	for _, n := range p.DenyNames {
		h, err := ParseUpstreamHost(n)
		if err != nil || h.Name == "" {
			return nil, fmt.Errorf("denied upstream name %q: not a host name", n)
		}
		if _, ok := r.names[h.Name]; !ok {
			r.names[h.Name] = reasonDeniedName
		}
	}
	for _, s := range p.Self {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("own listen address %q: %w", s, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("own listen address %q: bad port", s)
		}
		ip, err := netip.ParseAddr(host)
		if host == "" || (err == nil && ip.IsUnspecified()) {
			r.selfPorts[uint16(n)] = true
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("own listen address %q: not an IP address", s)
		}
		r.self[netip.AddrPortFrom(ip.WithZone("").Unmap(), uint16(n))] = true
	}
	if len(r.selfPorts) > 0 {
		local := p.Local
		if local == nil {
			if addrs, err := net.InterfaceAddrs(); err == nil {
				for _, a := range addrs {
					if pfx, err := netip.ParsePrefix(a.String()); err == nil {
						local = append(local, pfx.Addr())
					}
				}
			}
		}
		for _, a := range local {
			r.local[a.WithZone("").Unmap()] = true
		}
	}
	return r, nil
}

// ParseUpstreamList splits a list of addresses, networks (CIDR) and host
// names, as the upstream flags take them.
func ParseUpstreamList(list []string) (prefixes []netip.Prefix, names []string, err error) {
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			prefixes = append(prefixes, p.Masked())
			continue
		}
		if strings.Contains(s, "/") {
			return nil, nil, fmt.Errorf("%q is not a network such as 10.0.0.0/8", s)
		}
		h, err := ParseUpstreamHost(strings.Trim(s, "[]"))
		if err != nil {
			return nil, nil, fmt.Errorf("%q is neither an address, a network nor a host name: %w", s, err)
		}
		if h.Addr.IsValid() {
			prefixes = append(prefixes, netip.PrefixFrom(h.Addr, h.Addr.BitLen()))
			continue
		}
		names = append(names, h.Name)
	}
	return prefixesUnmapped(prefixes), names, nil
}

// prefixesUnmapped turns IPv4-mapped IPv6 networks into IPv4 ones, as
// every address is unmapped before it is checked.
func prefixesUnmapped(in []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// nat64 is the well-known NAT64 prefix: an address in it reaches the
// IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// CheckAddr reports whether an upstream may be connected at ap: nil, or
// an *UpstreamRefusal. The gateway calls it on every address it dials
// (after name resolution), the server on every address a route's host
// names or resolves to.
func (r *UpstreamRule) CheckAddr(ap netip.AddrPort) error {
	ip := ap.Addr().WithZone("").Unmap()
	if reason := r.addrReason(ip, ap.Port()); reason != "" {
		return &UpstreamRefusal{Host: netip.AddrPortFrom(ip, ap.Port()).String(), Reason: reason}
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		if reason := r.addrReason(v4, ap.Port()); reason != "" {
			return &UpstreamRefusal{Host: netip.AddrPortFrom(ip, ap.Port()).String(), Reason: reason + " (through NAT64)"}
		}
	}
	return nil
}

func (r *UpstreamRule) addrReason(ip netip.Addr, port uint16) string {
	if !r.allowLinkLocal {
		if reason := staticRefusal(ip); reason != "" {
			return reason
		}
	}
	if containsAddr(r.metadata, ip) {
		return reasonMetadata
	}
	if containsAddr(r.deny, ip) {
		return reasonDenied
	}
	if r.self[netip.AddrPortFrom(ip, port)] || (r.selfPorts[port] && (ip.IsLoopback() || ip.IsUnspecified() || r.local[ip])) {
		return reasonSelf
	}
	if len(r.allow) > 0 && !containsAddr(r.allow, ip) {
		return reasonNotAllowed
	}
	return ""
}

func containsAddr(list []netip.Prefix, ip netip.Addr) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckName reports whether an upstream may be reached by this host name
// (normalised as ParseUpstreamHost does): nil, or an *UpstreamRefusal.
// The addresses it resolves to are checked apart, with CheckAddr.
func (r *UpstreamRule) CheckName(name string) error {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if reason, ok := r.names[name]; ok {
		return &UpstreamRefusal{Host: name, Reason: reason}
	}
	return nil
}

// CheckHost checks an upstream's host and port (a URL's Hostname and
// Port; port "" is the scheme's default): the address, in any spelling,
// or the name. A name's addresses are left to the caller (CheckURL).
func (r *UpstreamRule) CheckHost(hostname string, port uint16) error {
	h, err := ParseUpstreamHost(hostname)
	if err != nil {
		return &UpstreamRefusal{Host: hostname, Reason: "not a valid host: " + err.Error()}
	}
	if h.Addr.IsValid() {
		return r.CheckAddr(netip.AddrPortFrom(h.Addr, port))
	}
	return r.CheckName(h.Name)
}

// UpstreamPort is the port a dialler uses for u: its own, or the scheme's.
func UpstreamPort(u *url.URL) (uint16, error) {
	p := u.Port()
	if p == "" {
		if u.Scheme == "https" {
			return 443, nil
		}
		return 80, nil
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not between 1 and 65535", p)
	}
	return uint16(n), nil
}

// CheckUpstreamURL applies the rule to a route's upstream URL (already
// through ValidateUpstreamURL) for the route field named field: its host,
// then, for a name, every address lookup resolves it to, so a name that
// points at a refused address is refused when it is written. lookup may
// be nil (no resolution); a name that does not resolve passes, as the
// gateway checks every address again when it dials.
func (r *UpstreamRule) CheckUpstreamURL(field, raw string, lookup func(host string) ([]netip.Addr, error)) error {
	u, err := url.Parse(raw)
	if err != nil {
		return FieldError(field, "url", "%q must be an http:// or https:// URL with a host", raw)
	}
	port, err := UpstreamPort(u)
	if err != nil {
		return FieldError(field, "url", "%s", err)
	}
	host := u.Hostname()
	if err := r.CheckHost(host, port); err != nil {
		return refusedField(field, err)
	}
	h, _ := ParseUpstreamHost(host)
	if h.Name == "" || lookup == nil {
		return nil
	}
	// A name that does not resolve (yet) passes: the gateway checks every
	// address it dials.
	addrs, _ := lookup(h.Name)
	for _, a := range addrs {
		var ref *UpstreamRefusal
		if err := r.CheckAddr(netip.AddrPortFrom(a, port)); errors.As(err, &ref) {
			return FieldError(field, "upstream_address", "%s resolves to %s, %s, which the gateway refuses to connect to", h.Name, ref.Host, ref.Reason)
		}
	}
	return nil
}

func refusedField(field string, err error) error {
	return FieldError(field, "upstream_address", "%s, which the gateway refuses to connect to", err)
}
