package gateway

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// table is one immutable routing table. A new one is built by Refresh (or
// by the guard) and swapped in with an atomic pointer store, so the
// request path reads it without any lock.
type table struct {
	endpoints map[string]*endpoint
}

// endpoint is an Endpoint compiled for routing. It is never modified after
// it is published; the only mutable parts are the counters inside each
// route's shared state.
type endpoint struct {
	name      string
	revision  int64
	createdAt time.Time
	// rolloutSeq is the Seq of the rollout status compiled (0 without one):
	// a step changes what is served without changing the revision.
	rolloutSeq int64
	// rollout is the rollout in force (nil when none is progressing or
	// paused): routes are then its weights in force, not spec.Routes.
	rollout *registry.RolloutStatus
	// sticky is the canonical form of the sticky header ("" = not sticky).
	sticky string
	guard  *guardConfig
	// routes keeps the configured order (or the rollout's), which the
	// sticky hash relies on. Shadow routes are not among them: they get
	// copies, never a request of their own.
	routes []*route
	// shadows are the shadow routes, each with its share of copies.
	shadows []*shadowRoute
	// matched are the routes with a header match, in the configured order
	// (the first that matches wins).
	matched []*route
	// total is the sum of the weights (100 when configured, 0 when no route
	// may get traffic).
	total uint64
	// spec is the endpoint as compiled, for the guard to derive the routes
	// it persists.
	spec registry.Endpoint
}

// activeRollout is the rollout whose weights the gateway serves: one
// progressing or paused (a paused rollout holds its step's weights).
func activeRollout(e *registry.Endpoint) *registry.RolloutStatus {
	if e.Rollout == nil || e.Rollout.RolloutStatus == nil {
		return nil
	}
	switch s := e.Rollout.RolloutStatus; s.State {
	case registry.RolloutProgressing, registry.RolloutPaused:
		return s
	}
	return nil
}

// rolloutSeq is the Seq of e's rollout status, 0 without one.
func rolloutSeq(e *registry.Endpoint) int64 {
	if e.Rollout == nil || e.Rollout.RolloutStatus == nil {
		return 0
	}
	return e.Rollout.Seq
}

type guardConfig struct {
	maxErrorRate float64
	minRequests  int64
	window       time.Duration
	windowText   string
}

// route is one compiled route.
type route struct {
	name    string
	version int64
	weight  uint64
	// idx is the route's index in the routes it was compiled from
	// (spec.Routes, or the rollout's weights in force).
	idx int
	// upper is the cumulative weight up to and including this route: the
	// route owns the points [upper-weight, upper) of [0, total).
	upper uint64

	target   *url.URL
	scheme   string
	host     string // host:port as dialled
	hostHdr  string // Host header sent upstream
	basePath string // upstream path without a trailing slash ("" for "/")
	fullPath string // upstream path as configured ("/" when empty), for /serve/{endpoint} itself
	https    bool

	// Header values are built once and shared by every response; net/http
	// only reads them.
	hdrVersion []string
	hdrRoute   []string

	// match is the route's header match (nil: none); its header is in
	// canonical form, as request headers are stored.
	match *registry.RouteMatch

	// timeout bounds the wait for the upstream's answer to start: the
	// endpoint's timeout, or the gateway's default.
	timeout time.Duration

	// refused is why the upstream policy refuses this route's host (a
	// name or address it names itself); such a route is never dialled.
	refused error

	// pool is the engine client's connection pool (nil for https upstreams
	// or when a custom Transport is configured).
	pool *h1.Pool

	st *routeState
	// obs counts the current rollout step's traffic on the route (nil
	// when no rollout is in force: nothing is counted then).
	obs *stepObs
}

// routeState is what outlives a recompile of the endpoint: metric
// children, the guard's window and whether the guard already acted on the
// route. It is keyed by the route's identity (name, version, upstream and
// guard settings) and kept only while the route's weight stays the same:
// a new version, upstream or weight is judged on its own traffic, not on
// evidence gathered under the old configuration.
type routeState struct {
	key     string
	metrics *routeMetrics
	win     *window // nil without a guard
	// tripped is set when the guard acted on the route (or found nothing to
	// move), so it acts once until the endpoint's configuration changes.
	tripped atomic.Bool
	// lastEval is when the guard last evaluated the window (unix nanos).
	lastEval atomic.Int64
}

func stateKey(e *registry.Endpoint, r *registry.Route) string {
	k := r.Name + "\x00" + strconv.FormatInt(r.Version, 10) + "\x00" + r.UpstreamURL
	if g := e.Guard; g != nil {
		k += "\x00" + strconv.FormatFloat(g.MaxErrorRate, 'g', -1, 64) + "\x00" + strconv.FormatInt(g.MinRequests, 10) + "\x00" + g.Window
	}
	return k
}

// compile builds the routing form of e. prev is the endpoint of the same
// name in the current table (nil if none): route states with the same
// identity and weight are carried over, except those the guard had
// tripped, which start over because the configuration they were tripped
// under is gone. keepTripped carries every state with the same identity,
// tripped or not, whatever its weight; the guard uses it when it applies
// its own change (which moves weight but must not forget what it saw).
//
// While a rollout is in force its weights are served, and route states
// carry across its steps whatever the weights: every step of one rollout
// is judged on the traffic the route has had since the rollout began.
func (g *Gateway) compile(e registry.Endpoint, prev *endpoint, keepTripped bool) (*endpoint, error) {
	ce := &endpoint{
		name:       e.Name,
		revision:   e.Revision,
		createdAt:  e.CreatedAt,
		rolloutSeq: rolloutSeq(&e),
		rollout:    activeRollout(&e),
		spec:       e,
	}
	ce.spec.Routes = append([]registry.Route(nil), e.Routes...)
	if e.StickyHeader != "" {
		ce.sticky = http.CanonicalHeaderKey(e.StickyHeader)
	}
	if e.Guard != nil {
		d, err := time.ParseDuration(e.Guard.Window)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("endpoint %s: guard window %q: not a positive duration", e.Name, e.Guard.Window)
		}
		ce.guard = &guardConfig{
			maxErrorRate: e.Guard.MaxErrorRate,
			minRequests:  e.Guard.MinRequests,
			window:       d,
			windowText:   e.Guard.Window,
		}
	}
	old := map[string]*route{}
	var oldShadows map[string]*shadowRoute
	sameRollout := false
	if prev != nil {
		for _, r := range prev.routes {
			old[r.st.key] = r
		}
		oldShadows = make(map[string]*shadowRoute, len(prev.shadows))
		for _, sh := range prev.shadows {
			oldShadows[sh.key] = sh
		}
		sameRollout = ce.rollout != nil && prev.rollout != nil && prev.rollout.ID == ce.rollout.ID
	}
	routes := ce.spec.Routes
	if ce.rollout != nil {
		routes = ce.rollout.Routes
	}
	for i := range routes {
		rc := &routes[i]
		r, err := g.compileRoute(&e, rc)
		if err != nil {
			return nil, err
		}
		r.idx = i
		key := stateKey(&e, rc)
		if rc.Shadow {
			ce.shadows = append(ce.shadows, g.compileShadow(&e, rc, r, key, oldShadows[key]))
			continue
		}
		if m := rc.Match; m != nil {
			r.match = &registry.RouteMatch{Header: http.CanonicalHeaderKey(m.Header), Value: m.Value, Prefix: m.Prefix}
			ce.matched = append(ce.matched, r)
		}
		ce.total += r.weight
		r.upper = ce.total
		or := old[key]
		if or != nil && (keepTripped || (!or.st.tripped.Load() && (or.weight == r.weight || sameRollout))) {
			r.st = or.st
		} else {
			r.st = &routeState{key: key, metrics: g.metrics.forRoute(e.Name, rc.Name, rc.Version)}
			if ce.guard != nil {
				r.st.win = newWindow(ce.guard.window)
			}
		}
		if ro := ce.rollout; ro != nil {
			if or != nil && or.obs != nil && or.obs.rolloutID == ro.ID && or.obs.step == ro.Step {
				r.obs = or.obs
			} else {
				r.obs = &stepObs{rolloutID: ro.ID, step: ro.Step}
			}
		}
		ce.routes = append(ce.routes, r)
	}
	return ce, nil
}

// compileRoute builds the routing form of one route (its header match and
// state are the caller's).
func (g *Gateway) compileRoute(e *registry.Endpoint, rc *registry.Route) (*route, error) {
	if rc.Weight < 0 {
		return nil, fmt.Errorf("endpoint %s: route %s: negative weight", e.Name, rc.Name)
	}
	u, err := url.Parse(rc.UpstreamURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %s: route %s: upstream_url %q is not an http(s) URL", e.Name, rc.Name, rc.UpstreamURL)
	}
	r := &route{
		name:       rc.Name,
		version:    rc.Version,
		weight:     uint64(rc.Weight),
		target:     u,
		scheme:     u.Scheme,
		host:       hostPort(u),
		hostHdr:    u.Host,
		basePath:   strings.TrimSuffix(u.EscapedPath(), "/"),
		fullPath:   u.EscapedPath(),
		https:      u.Scheme == "https",
		hdrVersion: []string{strconv.FormatInt(rc.Version, 10)},
		hdrRoute:   []string{rc.Name},
		timeout:    g.upstreamTimeout,
	}
	if e.Timeout != "" {
		r.timeout = registry.EndpointTimeout(e.Timeout)
	}
	if g.upstreams != nil {
		r.refused = g.upstreams.checkURL(u)
	}
	if g.pools != nil && !r.https && !rc.Shadow {
		r.pool = g.pools.Get(r.host)
	}
	if r.fullPath == "" {
		r.fullPath = "/"
	}
	return r, nil
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return u.Host + ":443"
	}
	return u.Host + ":80"
}

// pick chooses the route for a request, or nil when no route has weight.
//
// A route whose header match the request satisfies comes first, before
// the sticky header and the weights (as Argo Rollouts and Flagger order
// them): testers and internal callers reach the canary whatever its
// weight, and the weights split only the rest of the traffic.
//
// Sticky requests hash the header value to a point of [0, total) and take
// the route owning that point, walking the routes in their configured
// order. Weighted rendezvous hashing would also work; this was chosen
// because it is exactly minimal for the case that matters most, a canary
// next to its stable route: moving weight between two neighbouring routes
// (stable 90 -> 50, canary 10 -> 50) moves only the keys between the old
// and the new boundary, i.e. precisely the 40% that must move, while
// rendezvous hashing with three or more routes also reshuffles keys
// between routes whose weights did not change. Its cost is one FNV hash
// and a walk over at most 16 routes. A reordering of routes reshuffles
// keys; the provider keeps the configured order, so that is a deliberate
// change of the configuration. The hash is fixed (not seeded per process)
// so every replica sends a key to the same route.
//
// Other requests draw a point at random from the per-thread generator of
// math/rand/v2, which takes no lock.
func (e *endpoint) pick(r *http.Request) *route {
	for _, rt := range e.matched {
		if rt.matches(r.Header) {
			return rt
		}
	}
	if e.total == 0 {
		return nil
	}
	var h uint64
	if e.sticky != "" {
		if v := r.Header[e.sticky]; len(v) > 0 {
			h = stickyHash(v[0])
		} else {
			h = rand.Uint64()
		}
	} else {
		h = rand.Uint64()
	}
	// Lemire's multiply-shift maps h uniformly onto [0, total).
	p, _ := bits.Mul64(h, e.total)
	for _, rt := range e.routes {
		if p < rt.upper {
			return rt
		}
	}
	return e.routes[len(e.routes)-1]
}

// matches reports whether a value of the route's match header equals its
// value (or starts with it, for a prefix match).
func (rt *route) matches(h http.Header) bool {
	m := rt.match
	for _, v := range h[m.Header] {
		if v == m.Value || m.Prefix && strings.HasPrefix(v, m.Value) {
			return true
		}
	}
	return false
}

// stickyHash is 64-bit FNV-1a followed by a murmur3-style finaliser, which
// spreads FNV's weak high bits (the multiply-shift above uses them).
func stickyHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
