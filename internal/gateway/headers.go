package gateway

import (
	"net"
	"net/http"
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

// forwardValues returns the values of request header k that go upstream
// (nil: none).
func forwardValues(k string, vv []string, conn []string) []string {
	if isHopHeader(k) {
		// "TE: trailers" is end-to-end in practice (gRPC needs it).
		if k == "Te" && len(vv) == 1 && strings.EqualFold(vv[0], "trailers") {
			return vv
		}
		return nil
	}
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", hopHeader:
		return nil // rewritten by the gateway
	case "Authorization":
		// A registry token authenticates the caller to the registry; it
		// must not leak to model servers. Other credentials pass through.
		vv = withoutRegistryTokens(vv)
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

func isRegistryToken(v string) bool {
	secret, ok := registry.BearerSecret(v)
	return ok && registry.IsTokenSecret(secret)
}

// outHeader builds the upstream request's header: r's end-to-end headers
// (value slices shared, never modified) plus X-Forwarded-For/Proto/Host.
func outHeader(r *http.Request) http.Header {
	conn := r.Header["Connection"]
	h := make(http.Header, len(r.Header)+3)
	for k, vv := range r.Header {
		if vv := forwardValues(k, vv, conn); vv != nil {
			h[k] = vv
		}
	}
	h["X-Forwarded-For"] = []string{forwardedFor(r)}
	if r.TLS != nil {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	if r.Host != "" {
		h["X-Forwarded-Host"] = []string{r.Host}
	}
	n, _ := hops(r.Header)
	h[hopHeader] = hopValues[n]
	return h
}

var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// forwardedFor appends the client's address to an incoming
// X-Forwarded-For chain.
func forwardedFor(r *http.Request) string {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		return strings.Join(prior, ", ") + ", " + ip
	}
	return ip
}

// copyResponseHeader copies the upstream's end-to-end response headers.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHopHeader(k) || (len(conn) > 0 && connectionListed(conn, k)) {
			continue
		}
		dst[k] = vv
	}
}
