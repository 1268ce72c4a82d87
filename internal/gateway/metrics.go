package gateway

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the gateway's collectors. Label children are resolved
// when a routing table is compiled (routeMetrics), never per request: a
// WithLabelValues lookup hashes the labels and takes a lock.
type metrics struct {
	requests  *prometheus.CounterVec
	upErrors  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	rollbacks *prometheus.CounterVec

	shadowRequests *prometheus.CounterVec
	shadowDuration *prometheus.HistogramVec
	shadowDropped  *prometheus.CounterVec
}

// codeClasses are the code_class label values: indexes 1..5 by
// status/100 of the answer the upstream gave, then the two outcomes where
// the upstream's status is not what the request is judged by. A request
// that got no usable answer (connection error, timeout, a body broken off)
// is classTransport, not the 502/504 the gateway answered with, so an
// upstream that answers 5xx and one that cannot be reached stay apart. A
// request the client broke (its framing, or it went away) is classClient:
// the upstream is not to blame, and the guard ignores it too.
var codeClasses = [numClasses]string{"", "1xx", "2xx", "3xx", "4xx", "5xx", "transport", "client"}

const (
	classTransport = 6
	classClient    = 7
	numClasses     = 8
)

// outcomeClass is the codeClasses index o is counted under.
func outcomeClass(o outcome) int {
	switch {
	case o.clientGone || o.clientFault:
		return classClient
	case o.upstreamErr:
		return classTransport
	}
	class := o.status / 100
	if class < 1 || class > 5 {
		class = 5
	}
	return class
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_requests_total",
			Help: "Requests proxied by the gateway, by endpoint, route, model version and outcome: the upstream's status class, transport (no usable upstream answer) or client (the client broke the request).",
		}, []string{"endpoint", "route", "version", "code_class"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_upstream_errors_total",
			Help: "Requests whose upstream failed: transport errors, timeouts and 5xx answers.",
		}, []string{"endpoint", "route", "version"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlregistry_gateway_request_duration_seconds",
			Help:    "Time from receiving a request to the end of the proxied response, by endpoint, route and model version.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint", "route", "version"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_guard_rollbacks_total",
			Help: "Times the guard moved a failing route's weight to another route.",
		}, []string{"endpoint", "route"}),
		shadowRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_shadow_requests_total",
			Help: "Copies of requests sent to shadow routes, by endpoint, route, model version and outcome: the shadow's status class or transport (no usable answer). Their answers are discarded.",
		}, []string{"endpoint", "route", "version", "code_class"}),
		shadowDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlregistry_gateway_shadow_duration_seconds",
			Help:    "Time from sending a shadow copy to the end of the shadow's (discarded) answer, by endpoint, route and model version.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint", "route", "version"}),
		shadowDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_shadow_dropped_total",
			Help: "Shadow copies not sent, by endpoint, route and reason: queue_full (the shadows are slower than the traffic), body_too_large (over the copy limit), body_incomplete (the primary did not read the body to its end), refused (the upstream policy refuses the shadow's address).",
		}, []string{"endpoint", "route", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	// A second gateway on the same registry (tests, a restart of the app
	// inside one process) shares the collectors already registered.
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	if m.upErrors, err = register(reg, m.upErrors); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.rollbacks, err = register(reg, m.rollbacks); err != nil {
		return nil, err
	}
	if m.shadowRequests, err = register(reg, m.shadowRequests); err != nil {
		return nil, err
	}
	if m.shadowDuration, err = register(reg, m.shadowDuration); err != nil {
		return nil, err
	}
	if m.shadowDropped, err = register(reg, m.shadowDropped); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// routeMetrics are one route's resolved label children.
type routeMetrics struct {
	requests  [numClasses]prometheus.Counter
	upErrors  prometheus.Counter
	duration  prometheus.Observer
	rollbacks prometheus.Counter
}

// Labels come only from the configured table (endpoint, route and version
// names), never from a request, so the series count is bounded by the
// configuration.
func (m *metrics) forRoute(endpoint, route string, version int64) *routeMetrics {
	v := strconv.FormatInt(version, 10)
	rm := &routeMetrics{
		upErrors:  m.upErrors.WithLabelValues(endpoint, route, v),
		duration:  m.duration.WithLabelValues(endpoint, route, v),
		rollbacks: m.rollbacks.WithLabelValues(endpoint, route),
	}
	for i := 1; i < len(codeClasses); i++ {
		rm.requests[i] = m.requests.WithLabelValues(endpoint, route, v, codeClasses[i])
	}
	return rm
}

// forget drops the series of a route's version once the table no longer
// serves it, so a deleted endpoint or a replaced version does not linger
// in /metrics.
func (m *metrics) forget(endpoint, route string, version int64) {
	l := prometheus.Labels{"endpoint": endpoint, "route": route, "version": strconv.FormatInt(version, 10)}
	m.requests.DeletePartialMatch(l)
	m.upErrors.Delete(l)
	m.duration.Delete(l)
}

// forgetRoute drops what forget leaves: the series kept per route whatever
// its version.
func (m *metrics) forgetRoute(endpoint, route string) {
	m.rollbacks.Delete(prometheus.Labels{"endpoint": endpoint, "route": route})
}

// Shadow drop reasons (the reason label).
const (
	dropQueueFull      = iota // the queue of copies was full
	dropBodyTooLarge          // the body is over maxShadowBody
	dropBodyIncomplete        // the primary did not read the body to its end
	dropRefused               // the upstream policy refuses the shadow's address
	numDrops
)

var dropReasons = [numDrops]string{"queue_full", "body_too_large", "body_incomplete", "refused"}

// shadowMetrics are one shadow route's resolved label children.
type shadowMetrics struct {
	requests [numClasses]prometheus.Counter
	duration prometheus.Observer
	dropped  [numDrops]prometheus.Counter
}

func (m *metrics) forShadow(endpoint, route string, version int64) *shadowMetrics {
	v := strconv.FormatInt(version, 10)
	sm := &shadowMetrics{duration: m.shadowDuration.WithLabelValues(endpoint, route, v)}
	for i := 1; i <= classTransport; i++ {
		sm.requests[i] = m.shadowRequests.WithLabelValues(endpoint, route, v, codeClasses[i])
	}
	for i, reason := range dropReasons {
		sm.dropped[i] = m.shadowDropped.WithLabelValues(endpoint, route, reason)
	}
	return sm
}

// forgetShadow drops a shadow route's version series once it is gone.
func (m *metrics) forgetShadow(endpoint, route string, version int64) {
	l := prometheus.Labels{"endpoint": endpoint, "route": route, "version": strconv.FormatInt(version, 10)}
	m.shadowRequests.DeletePartialMatch(l)
	m.shadowDuration.Delete(l)
}

// forgetShadowRoute drops the series kept per shadow route.
func (m *metrics) forgetShadowRoute(endpoint, route string) {
	m.shadowDropped.DeletePartialMatch(prometheus.Labels{"endpoint": endpoint, "route": route})
}
