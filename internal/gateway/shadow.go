package gateway

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Shadow routes receive copies of a share of an endpoint's requests. The
// client's answer never waits for them: a copy is put on a bounded queue
// and sent by a few workers once its body is known; when the queue is
// full the copy is dropped and counted. Their answers are read (up to
// maxShadowAnswer) and discarded; status class and latency are metrics.
//
// Which requests are copied is decided by a counter per shadow route, not
// at random: request n is copied when floor(n*share) grows, so any run of
// requests has its share of copies to within one, and a test can predict
// them.
//
// The body goes with the copy up to maxShadowBody: a body the primary
// reads whole first (the engine's client) is copied from there; one that
// streams to the primary is teed while it streams, never buffered before
// the primary gets it. A larger body is not copied (the copy is dropped,
// reason body_too_large), nor is one the primary did not read to its end
// (body_incomplete). Upgrades are never copied.

// maxShadowBody is the largest request body a shadow copy carries.
const maxShadowBody = 64 << 10

// maxShadowAnswer is how much of a shadow's answer is read before the
// connection is dropped: its latency counts to the end of what is read.
const maxShadowAnswer = 1 << 20

// shadowHeader marks the copies, so a shadow upstream can tell them from
// real traffic (and skip side effects). A client's own value is dropped.
const shadowHeader = "X-Mlregistry-Shadow"

var shadowHeaderValue = []string{"1"}

// shadowRoute is a compiled shadow route.
type shadowRoute struct {
	key     string
	rt      *route
	share   float64
	count   *atomic.Uint64 // requests seen, carried across compiles
	metrics *shadowMetrics
}

// compileShadow builds a shadow route; prev is the compiled shadow of the
// same identity (key), whose request counter it carries on, so the share
// holds across reloads.
func (g *Gateway) compileShadow(e *registry.Endpoint, rc *registry.Route, r *route, key string, prev *shadowRoute) *shadowRoute {
	sh := &shadowRoute{key: key, rt: r, share: rc.Share, metrics: g.metrics.forShadow(e.Name, rc.Name, rc.Version)}
	if prev != nil {
		sh.count = prev.count
	} else {
		sh.count = new(atomic.Uint64)
	}
	return sh
}

// take reports whether the request being counted is one to copy.
func (s *shadowRoute) take() bool {
	if s.share >= 1 {
		return true
	}
	n := s.count.Add(1)
	return math.Floor(float64(n)*s.share) != math.Floor(float64(n-1)*s.share)
}

// shadowCopy is one request's copies, waiting for its body.
type shadowCopy struct {
	targets []*shadowRoute
	method  string
	rest    string
	query   string
	headers []http.Header // per target
	// sent is set once the copies are queued; tooLarge when the teed
	// body outgrew maxShadowBody.
	sent     atomic.Bool
	tooLarge atomic.Bool
}

// shadowJob is one copy on the queue.
type shadowJob struct {
	sh     *shadowRoute
	method string
	rest   string
	query  string
	header http.Header
	body   []byte
}

// shadowsFor picks the shadow routes that copy r (nil when none does),
// counting the drops that are known before the body is read.
func (g *Gateway) shadowsFor(ep *endpoint, r *http.Request, rest, id string) *shadowCopy {
	var sc *shadowCopy
	for _, sh := range ep.shadows {
		if !sh.take() {
			continue
		}
		if sh.rt.refused != nil {
			sh.metrics.dropped[dropRefused].Inc()
			continue
		}
		if r.ContentLength > maxShadowBody {
			sh.metrics.dropped[dropBodyTooLarge].Inc()
			continue
		}
		if sc == nil {
			sc = &shadowCopy{method: r.Method, rest: rest, query: r.URL.RawQuery}
		}
		h := outHeader(r, sh.rt, id)
		h[shadowHeader] = shadowHeaderValue
		sc.targets = append(sc.targets, sh)
		sc.headers = append(sc.headers, h)
	}
	return sc
}

// sendShadows queues the copies with body, which they own from here on.
func (g *Gateway) sendShadows(sc *shadowCopy, body []byte) {
	if sc == nil || sc.sent.Swap(true) {
		return
	}
	for i, sh := range sc.targets {
		g.enqueueShadow(&shadowJob{sh: sh, method: sc.method, rest: sc.rest, query: sc.query, header: sc.headers[i], body: body})
	}
}

// settle counts the copies that were never sent, once the primary is done
// with the request.
func (sc *shadowCopy) settle() {
	if sc == nil || sc.sent.Load() {
		return
	}
	reason := dropBodyIncomplete
	if sc.tooLarge.Load() {
		reason = dropBodyTooLarge
	}
	for _, sh := range sc.targets {
		sh.metrics.dropped[reason].Inc()
	}
}

// teeBody copies a request body streaming to the primary, up to
// maxShadowBody, and queues the copies when it ends. It reads under
// stickyEOF's lock, so its fields need none.
type teeBody struct {
	io.ReadCloser
	g   *Gateway
	sc  *shadowCopy
	buf []byte
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 && !t.sc.tooLarge.Load() {
		if len(t.buf)+n > maxShadowBody {
			t.sc.tooLarge.Store(true)
			t.buf = nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if err == io.EOF && !t.sc.tooLarge.Load() {
		t.g.sendShadows(t.sc, t.buf)
	}
	return n, err
}

// shadowQueue holds the copies waiting for a worker. Workers start when
// copies arrive and end when the queue is empty, so an idle gateway (or
// one without shadows) runs none.
type shadowQueue struct {
	jobs   chan *shadowJob
	max    int32
	active atomic.Int32
}

func (q *shadowQueue) init(opts Options) {
	n := opts.ShadowQueue
	if n <= 0 {
		n = 256
	}
	q.jobs = make(chan *shadowJob, n)
	q.max = int32(opts.ShadowWorkers)
	if q.max <= 0 {
		q.max = 4
	}
}

// claim takes a worker slot, reporting false when every slot is taken.
func (q *shadowQueue) claim() bool {
	for {
		n := q.active.Load()
		if n >= q.max {
			return false
		}
		if q.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (g *Gateway) enqueueShadow(j *shadowJob) {
	select {
	case g.shadow.jobs <- j:
	default:
		j.sh.metrics.dropped[dropQueueFull].Inc()
		return
	}
	if g.shadow.claim() {
		g.bg.Add(1)
		go g.shadowWorker()
	}
}

func (g *Gateway) shadowWorker() {
	defer g.bg.Done()
	q := &g.shadow
	for {
		select {
		case j := <-q.jobs:
			g.sendShadow(j)
			continue
		default:
		}
		q.active.Add(-1)
		// A copy queued between the empty check and the release found
		// every slot taken and started no worker: take it here.
		if len(q.jobs) == 0 || !q.claim() {
			return
		}
	}
}

// sendShadow sends one copy within the route's timeout and records how it
// went.
func (g *Gateway) sendShadow(j *shadowJob) {
	rt := j.sh.rt
	ctx, cancel := context.WithTimeout(g.abort, rt.timeout)
	defer cancel()
	u := &url.URL{Scheme: rt.scheme, Host: rt.hostHdr}
	setOutURL(u, targetPath(j.rest, rt), j.query)
	req := (&http.Request{
		Method:     j.method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     j.header,
	}).WithContext(ctx)
	if len(j.body) > 0 {
		body := j.body
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	start := g.now()
	class := classTransport
	res, err := g.transport.RoundTrip(req)
	if err == nil {
		_, rerr := io.Copy(io.Discard, io.LimitReader(res.Body, maxShadowAnswer))
		res.Body.Close()
		class = outcomeClass(outcome{status: res.StatusCode})
		if rerr != nil {
			class = classTransport
		}
	}
	m := j.sh.metrics
	m.requests[class].Inc()
	m.duration.Observe(g.now().Sub(start).Seconds())
}
