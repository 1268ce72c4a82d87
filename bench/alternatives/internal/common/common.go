// Package common holds what the alternative gateways share: the
// command-line flags of bench/gatewayserver, the bench endpoint's two
// routes (90/10), the weighted pick, request IDs and the registry-token
// check, so each alternative differs only in its HTTP machinery.
package common

import (
	crand "crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
)

// Endpoint is the name the benchmark serves: /serve/bench/{rest}.
const Endpoint = "bench"

// Prefix is the path every proxied request starts with.
const Prefix = "/serve/" + Endpoint + "/"

// Route is one weighted upstream of the endpoint.
type Route struct {
	Name    string
	Version string // X-Model-Version
	Weight  int
	URL     *url.URL
	// Host is URL.Host; BasePath is URL.Path without a trailing slash.
	Host, BasePath string
	// Requests and Failures stand in for the gateway's guard window: one
	// atomic add per answer, as the guard records every answer.
	Requests, Failures atomic.Int64
}

// Record counts one answer of status code (0: the upstream failed).
func (r *Route) Record(code int) {
	r.Requests.Add(1)
	if code == 0 || code >= 500 {
		r.Failures.Add(1)
	}
}

// Routes builds the bench endpoint's routes: stable (version 1, weight 90)
// on ups[0] and canary (version 2, weight 10) on ups[1], as
// bench/gatewayserver seeds them.
func Routes(ups []string) ([]*Route, error) {
	if len(ups) != 2 {
		return nil, fmt.Errorf("-upstreams takes two URLs, got %d", len(ups))
	}
	names := []string{"stable", "canary"}
	weights := []int{90, 10}
	rs := make([]*Route, 2)
	for i, s := range ups {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("upstream %q: want http://host:port[/path]", s)
		}
		rs[i] = &Route{
			Name: names[i], Version: fmt.Sprint(i + 1), Weight: weights[i], URL: u,
			Host: u.Host, BasePath: strings.TrimSuffix(u.Path, "/"),
		}
	}
	return rs, nil
}

// Pick chooses a route by weight, at random per request (as the gateway
// does without a sticky header).
func Pick(rs []*Route) *Route {
	total := 0
	for _, r := range rs {
		total += r.Weight
	}
	n := rand.IntN(total)
	for _, r := range rs {
		if n < r.Weight {
			return r
		}
		n -= r.Weight
	}
	return rs[len(rs)-1]
}

// NewRequestID is registry.NewRequestID: 16 random bytes in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidRequestID is registry.ValidRequestID: a client's ID is reused only
// when short and in a safe alphabet.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// IsRegistryToken reports whether an Authorization value carries a
// registry token ("Bearer mlr_..."), parsed as registry.BearerSecret does;
// such values never reach a model server.
func IsRegistryToken(v string) bool {
	scheme, secret, ok := strings.Cut(v, " ")
	return ok && strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(strings.TrimSpace(secret), "mlr_")
}

// HopHeader is the gateway's hop count header; the alternatives send "1".
const HopHeader = "X-Mlregistry-Hops"

// IsHopHeader reports whether canonical header k is hop-by-hop (RFC 9110
// section 7.6.1).
func IsHopHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// IsGatewayHeader reports whether canonical request header k is written
// by the gateway itself, so a client's value is dropped.
func IsGatewayHeader(k string) bool {
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", HopHeader,
		"X-Request-Id", "X-Model-Version", "X-Route", "Content-Length", "Expect":
		return true
	}
	return false
}

// Flags are bench/gatewayserver's flags; -db, -fast-listener and -lane are
// accepted and ignored (the alternatives keep their one route table in
// memory), -seed-only exits at once (bench/gateway.sh seeds mlregistry's
// database with bench/gatewayserver itself).
type Flags struct {
	Listen     string
	Upstreams  []string
	CPUProfile string
}

// Parse reads the flags, applies -procs, and starts the CPU profile when
// asked; stop ends it.
func Parse(name string) (f Flags, stop func()) {
	listen := flag.String("listen", "127.0.0.1:18090", "address to serve the gateway on")
	flag.String("db", "", "ignored (bench/gatewayserver's SQLite registry)")
	upstreams := flag.String("upstreams", "http://127.0.0.1:18081,http://127.0.0.1:18082", "the two route upstreams, comma-separated")
	flag.Bool("fast-listener", true, "ignored")
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: the Go runtime's default)")
	flag.Bool("lane", true, "ignored")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	seedOnly := flag.Bool("seed-only", false, "exit at once (nothing to seed)")
	flag.Parse()
	if *seedOnly {
		os.Exit(0)
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	f = Flags{Listen: *listen, Upstreams: strings.Split(*upstreams, ","), CPUProfile: *cpuProfile}
	stop = func() {}
	if f.CPUProfile != "" {
		pf, err := os.Create(f.CPUProfile)
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		stop = func() { pprof.StopCPUProfile(); _ = pf.Close() }
	}
	return f, stop
}
