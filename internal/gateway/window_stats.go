package gateway

import "time"

// RouteWindow is one route's requests and failures (5xx and transport
// errors) inside its guard window, as this gateway counted them, and the
// 99th percentile of their latency (zero without requests).
type RouteWindow struct {
	Route            string
	Requests, Errors int64
	P99              time.Duration
}

// GuardWindows reports the guard window of each route of endpoint, in the
// configured order; nil when the endpoint is unknown here or has no
// guard. Counts are this process's only: each replica guards the traffic
// it serves. The web UI shows them next to the weights.
func (g *Gateway) GuardWindows(endpoint string) []RouteWindow {
	t := g.table.Load()
	if t == nil {
		return nil
	}
	ep := t.endpoints[endpoint]
	if ep == nil || ep.guard == nil {
		return nil
	}
	now := g.now()
	out := make([]RouteWindow, 0, len(ep.routes))
	for _, r := range ep.routes {
		w := RouteWindow{Route: r.name}
		if r.st != nil && r.st.win != nil {
			w.Requests, w.Errors = r.st.win.totals(now)
			w.P99, _ = latencyQuantile(0.99, r.st.win.latencies(now))
		}
		out = append(out, w)
	}
	return out
}
