package gateway

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// isHopHeader reports whether k (canonical form) is a hop-by-hop header
// (RFC 9110 section 7.6.1), which a proxy must not forward. It is a switch
// on the length first because it runs for every header of every request.
func isHopHeader(k string) bool {
	switch len(k) {
	case 2:
		return k == "Te"
	case 7:
		return k == "Trailer" || k == "Upgrade"
	case 10:
		return k == "Connection" || k == "Keep-Alive"
	case 16:
		return k == "Proxy-Connection"
	case 17:
		return k == "Transfer-Encoding"
	case 18:
		return k == "Proxy-Authenticate"
	case 19:
		return k == "Proxy-Authorization"
	}
	return false
}

// connectionListed reports whether k is named in a Connection header,
// which makes it hop-by-hop too.
func connectionListed(conn []string, k string) bool {
	for _, v := range conn {
		if containsToken(v, k) {
			return true
		}
	}
	return false
}

// forwardValues returns the values of client request header k that go
// upstream as they are (nil: none).
func forwardValues(k string, vv []string, conn []string) []string {
	if isHopHeader(k) {
		// "TE: trailers" is end-to-end in practice (gRPC needs it).
		if k == "Te" && len(vv) == 1 && strings.EqualFold(vv[0], "trailers") {
			return vv
		}
		return nil
	}
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", hopHeader,
		"X-Request-Id", "X-Model-Version", "X-Route", shadowHeader:
		return nil // written by the gateway (forwardHeaders)
	case "Content-Length", "Expect":
		// Framing: the client that sends the body writes its own, and the
		// gateway has already answered any 100-continue.
		return nil
	case "Authorization":
		// A registry token authenticates the caller to the registry; it
		// must not leak to model servers. Other credentials pass through.
		vv = withoutRegistryTokens(vv)
	case "Cookie":
		// The UI session cookie stands for a registry token; a model
		// server's own cookies pass.
		vv = withoutRegistryCookies(vv)
	}
	if len(conn) > 0 && connectionListed(conn, k) {
		return nil
	}
	return vv
}

// withoutRegistryTokens drops every Authorization value the registry
// would take for one of its tokens, parsed as the registry's own auth
// parses it. vv is returned as it is when nothing is dropped.
func withoutRegistryTokens(vv []string) []string {
	for i, v := range vv {
		if !isRegistryToken(v) {
			continue
		}
		kept := append([]string(nil), vv[:i]...)
		for _, v := range vv[i+1:] {
			if !isRegistryToken(v) {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return kept
	}
	return vv
}

// withoutRegistryCookies drops the registry's cookies from Cookie header
// values, splitting them as net/http's Request.Cookies does (pairs
// separated by ';', the name trimmed of spaces), so every cookie the
// registry would read is seen here. The other pairs pass unchanged, in
// order. vv is returned as it is when no value names a registry cookie.
func withoutRegistryCookies(vv []string) []string {
	i := slices.IndexFunc(vv, hasRegistryCookie)
	if i < 0 {
		return vv
	}
	kept := append([]string(nil), vv[:i]...)
	for _, v := range vv[i:] {
		if !hasRegistryCookie(v) {
			kept = append(kept, v)
			continue
		}
		var pairs []string
		for part := range strings.SplitSeq(v, ";") {
			part = textproto.TrimString(part)
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			if !registry.IsRegistryCookie(textproto.TrimString(name)) {
				pairs = append(pairs, part)
			}
		}
		if len(pairs) > 0 {
			kept = append(kept, strings.Join(pairs, "; "))
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return kept
}

// hasRegistryCookie is a quick test that v may hold a registry cookie.
func hasRegistryCookie(v string) bool {
	return strings.Contains(v, registry.CookiePrefix)
}

func isRegistryToken(v string) bool {
	secret, ok := registry.BearerSecret(v)
	return ok && registry.IsTokenSecret(secret)
}

// forwardHeaders is the one set of forwarding rules: it calls emit for
// every header field (besides Host, which is rt's host, and the body's
// framing) that the upstream of route rt receives for client request r,
// whatever path carries it (the engine's client, Transport, upgrade, and the engine's server
// through them):
//
//   - hop-by-hop headers and those the Connection header lists are dropped
//     ("TE: trailers" passes), as are Content-Length and Expect;
//   - Authorization values that are registry tokens are dropped (parsed by
//     registry.BearerSecret, as the server authenticates), and so are the
//     registry's cookies (registry.IsRegistryCookie) from Cookie;
//   - X-Forwarded-For gets the client's address appended; X-Forwarded-Proto
//     and X-Forwarded-Host are the gateway's view; an incoming Forwarded is
//     dropped (its for= would otherwise pass unchecked beside ours);
//   - X-Mlregistry-Hops counts this gateway;
//   - X-Request-ID is id, the ID the client's answer carries;
//   - X-Model-Version and X-Route name the route chosen (client values
//     cannot spoof them);
//   - X-Mlregistry-Shadow is the gateway's alone: it marks the copies sent
//     to shadow routes (shadow.go), never a client's request.
//
// Value slices of r.Header are passed as they are and must not be changed.
func forwardHeaders(r *http.Request, rt *route, id string, emit func(k string, vv []string)) {
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if vv := forwardValues(k, vv, conn); vv != nil {
			emit(k, vv)
		}
	}
	ip := remoteIP(r.RemoteAddr)
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	emit("X-Forwarded-For", []string{ip})
	if r.TLS != nil {
		emit("X-Forwarded-Proto", protoHTTPS)
	} else {
		emit("X-Forwarded-Proto", protoHTTP)
	}
	if r.Host != "" {
		emit("X-Forwarded-Host", []string{r.Host})
	}
	n, _ := hops(r.Header)
	emit(hopHeader, hopValues[n])
	emit("X-Request-Id", []string{id})
	emit("X-Model-Version", rt.hdrVersion)
	emit("X-Route", rt.hdrRoute)
}

// outHeader builds forwardHeaders' fields as a header map, for the
// Transport and upgrade paths.
func outHeader(r *http.Request, rt *route, id string) http.Header {
	h := make(http.Header, len(r.Header)+7)
	forwardHeaders(r, rt, id, func(k string, vv []string) { h[k] = vv })
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // the Transport adds none then, like the engine's client
	}
	return h
}

var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// requestID is the ID of r as its answer carries it: the API middleware
// and the engine's server put it on the response header before the gateway runs;
// alone, the gateway takes a valid client ID or makes one.
func requestID(w http.ResponseWriter, r *http.Request) string {
	h := w.Header()
	if vv := h["X-Request-Id"]; len(vv) == 1 {
		return vv[0]
	}
	id := r.Header.Get("X-Request-Id")
	if !registry.ValidRequestID(id) {
		id = registry.NewRequestID()
	}
	h["X-Request-Id"] = []string{id}
	return id
}

// copyResponseHeader copies the upstream's end-to-end response headers,
// but never a receipt: only the gateway signs those.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHopHeader(k) || k == registry.ReceiptHeader || (len(conn) > 0 && connectionListed(conn, k)) {
			continue
		}
		dst[k] = vv
	}
}

func isUpgrade(h http.Header) bool {
	if _, ok := h["Upgrade"]; !ok {
		return false
	}
	for _, v := range h["Connection"] {
		if containsToken(v, "upgrade") {
			return true
		}
	}
	return false
}

// containsToken reports whether the comma-separated list v holds token
// (ASCII case-insensitive).
func containsToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// remoteIP is the host part of a RemoteAddr, without allocating.
func remoteIP(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			addr = addr[:i]
			break
		}
		if addr[i] < '0' || addr[i] > '9' {
			break // no port
		}
	}
	if len(addr) > 1 && addr[0] == '[' && addr[len(addr)-1] == ']' {
		addr = addr[1 : len(addr)-1]
	}
	return addr
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
