package gateway

import (
	"errors"

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
}

// codeClasses are the code_class label values, indexed by status/100.
// Index 0 is unused: a request that got no upstream answer is counted
// under the status the gateway answered with (502 or 504).
var codeClasses = [6]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_requests_total",
			Help: "Requests proxied by the gateway, by endpoint, route and response code class.",
		}, []string{"endpoint", "route", "code_class"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_upstream_errors_total",
			Help: "Requests whose upstream failed: transport errors, timeouts and 5xx answers.",
		}, []string{"endpoint", "route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlregistry_gateway_request_duration_seconds",
			Help:    "Time from receiving a request to the end of the proxied response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint", "route"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_gateway_guard_rollbacks_total",
			Help: "Times the guard moved a failing route's weight to another route.",
		}, []string{"endpoint", "route"}),
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
	requests  [6]prometheus.Counter
	upErrors  prometheus.Counter
	duration  prometheus.Observer
	rollbacks prometheus.Counter
}

func (m *metrics) forRoute(endpoint, route string) *routeMetrics {
	rm := &routeMetrics{
		upErrors:  m.upErrors.WithLabelValues(endpoint, route),
		duration:  m.duration.WithLabelValues(endpoint, route),
		rollbacks: m.rollbacks.WithLabelValues(endpoint, route),
	}
	for i := 1; i < len(codeClasses); i++ {
		rm.requests[i] = m.requests.WithLabelValues(endpoint, route, codeClasses[i])
	}
	return rm
}

// forget drops a route's series once it is no longer in the table, so a
// deleted endpoint does not linger in /metrics.
func (m *metrics) forget(endpoint, route string) {
	l := prometheus.Labels{"endpoint": endpoint, "route": route}
	m.requests.DeletePartialMatch(l)
	m.upErrors.Delete(l)
	m.duration.Delete(l)
	m.rollbacks.Delete(l)
}
