package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Gate names as GateResult.Gate carries them.
const (
	GateMaxErrorRate  = "max_error_rate"
	GateMaxLatencyP99 = "max_latency_p99"
	GateMinRequests   = "min_requests"
)

// Decision is what Evaluate decided for one endpoint's rollout.
type Decision struct {
	// Action is the event action to record Next with (one of the
	// registry.ActionEndpointRollout* constants); "" when nothing changes.
	Action string
	Next   registry.RolloutStatus
	// Queries, when not empty, are the Prometheus gates to ask before the
	// step may advance: Action is "" and the caller evaluates again with
	// their results.
	Queries []Query
}

// Query is one Prometheus gate asked for one gaining route.
type Query struct {
	// Gate is the index into RolloutSpec.Prometheus.
	Gate    int
	Route   string
	Version int64
	// PromQL is the gate's query with $endpoint, $route and $version
	// replaced.
	PromQL string
}

// QueryResult is the answer to a Query: Err when the query failed or did
// not return exactly one sample.
type QueryResult struct {
	Query
	Value float64
	Err   error
}

// routeObs is what the gateways observed on one in-force route during the
// step, summed.
type routeObs struct {
	requests, errors int64
	bins             []int64
}

// gaining is an in-force route that holds more weight than when the
// rollout started: the gates judge these.
type gaining struct {
	route registry.Route
	obs   routeObs
}

// Evaluate decides what happens next to ep's rollout at now, from the
// step's observations (summed over gateway processes, one entry per
// in-force route) and, once asked for, the Prometheus gates' results
// (prom nil: not asked yet). It is pure: the driver records the decision.
//
// A progressing rollout is rolled back as soon as a gaining route with
// at least min_requests requests fails max_error_rate or max_latency_p99,
// bake or not. Once the step's bake has passed, the step waits while a
// gaining route has fewer than min_requests requests; then the Prometheus
// gates are asked (any failure rolls back); then the next step is put in
// force, or, after the last step, the rollout completes. Anything else
// (paused, ended, no rollout, still baking) decides nothing.
func Evaluate(ep registry.Endpoint, obs []registry.RolloutObservation, now time.Time, prom []QueryResult) (Decision, error) {
	if ep.Rollout == nil || ep.Rollout.RolloutStatus == nil || ep.Rollout.State != registry.RolloutProgressing {
		return Decision{}, nil
	}
	spec := ep.Rollout.RolloutSpec
	st := *ep.Rollout.RolloutStatus
	if st.Step < 1 || st.Step > len(st.StepPercents) {
		return Decision{}, fmt.Errorf("endpoint %s: rollout %d is at step %d of %d", ep.Name, st.ID, st.Step, len(st.StepPercents))
	}
	bake, err := time.ParseDuration(spec.Bake)
	if err != nil {
		return Decision{}, fmt.Errorf("endpoint %s: rollout bake %q: %w", ep.Name, spec.Bake, err)
	}
	var maxP99 time.Duration
	if spec.MaxLatencyP99 != "" {
		if maxP99, err = time.ParseDuration(spec.MaxLatencyP99); err != nil {
			return Decision{}, fmt.Errorf("endpoint %s: rollout max_latency_p99 %q: %w", ep.Name, spec.MaxLatencyP99, err)
		}
	}
	step := stepName(st)
	routes := gainingRoutes(st, obs)

	// Built-in gates, on every route that has enough requests to judge.
	var passed []string
	for _, g := range routes {
		if g.obs.requests == 0 || g.obs.requests < spec.MinRequests {
			continue
		}
		var checks []string
		if spec.MaxErrorRate != nil {
			rate := float64(g.obs.errors) / float64(g.obs.requests)
			res := gateResult(GateMaxErrorRate, g, rate, *spec.MaxErrorRate, now)
			if rate > *spec.MaxErrorRate {
				res.Message = fmt.Sprintf("%s %s over %d requests exceeded %s", GateMaxErrorRate, num(rate), g.obs.requests, num(*spec.MaxErrorRate))
				return rollBack(st, step, res, now), nil
			}
			checks = append(checks, fmt.Sprintf("error rate %s within %s", num(rate), num(*spec.MaxErrorRate)))
		}
		if spec.MaxLatencyP99 != "" {
			if p99, ok := registry.LatencyQuantile(0.99, g.obs.bins); ok {
				res := gateResult(GateMaxLatencyP99, g, p99.Seconds(), maxP99.Seconds(), now)
				if p99 > maxP99 {
					res.Message = fmt.Sprintf("%s %s over %d requests exceeded %s", GateMaxLatencyP99, ms(p99), g.obs.requests, ms(maxP99))
					return rollBack(st, step, res, now), nil
				}
				checks = append(checks, fmt.Sprintf("p99 %s within %s", ms(p99), ms(maxP99)))
			}
		}
		if len(checks) > 0 {
			passed = append(passed, fmt.Sprintf("route %s (v%d): %d requests, %s", g.route.Name, g.route.Version, g.obs.requests, strings.Join(checks, ", ")))
		}
	}

	due := st.StepStarted.Add(bake)
	if st.NextStepAt != nil {
		due = *st.NextStepAt
	}
	if now.Before(due) {
		return Decision{}, nil
	}

	// The bake has passed: a route short of requests holds the step.
	for _, g := range routes {
		if g.obs.requests >= spec.MinRequests {
			continue
		}
		res := gateResult(GateMinRequests, g, float64(g.obs.requests), float64(spec.MinRequests), now)
		res.Message = fmt.Sprintf("waiting for requests: %d of %d on route %s (v%d)", g.obs.requests, spec.MinRequests, g.route.Name, g.route.Version)
		return wait(st, step, res, now), nil
	}

	// Prometheus gates, once per gaining route, asked by the caller.
	if len(spec.Prometheus) > 0 && len(routes) > 0 {
		if prom == nil {
			return Decision{Queries: queries(ep.Name, spec.Prometheus, routes)}, nil
		}
		byKey := map[string]QueryResult{}
		for _, r := range prom {
			byKey[queryKey(r.Gate, r.Route)] = r
		}
		for _, g := range routes {
			for i, pg := range spec.Prometheus {
				gate := fmt.Sprintf("prometheus[%d]", i)
				r, ok := byKey[queryKey(i, g.route.Name)]
				if msg := promFailure(gate, pg, r, ok); msg != "" {
					res := gateResult(gate, g, r.Value, pg.Threshold, now)
					res.Message = msg
					return rollBack(st, step, res, now), nil
				}
				passed = append(passed, fmt.Sprintf("route %s (v%d): %s value %s %s %s", g.route.Name, g.route.Version, gate, num(r.Value), pg.Comparison, num(pg.Threshold)))
			}
		}
	}

	if len(passed) == 0 && spec.MinRequests > 0 {
		for _, g := range routes {
			passed = append(passed, fmt.Sprintf("route %s (v%d): %d requests of %d", g.route.Name, g.route.Version, g.obs.requests, spec.MinRequests))
		}
	}
	next := st
	next.Seq = st.Seq + 1
	next.LastGate = nil
	if len(passed) > 0 {
		next.LastGate = &registry.GateResult{
			Gate:    passedGate(spec),
			Passed:  true,
			Message: step + " passed: " + strings.Join(passed, "; "),
			At:      now,
		}
		if len(routes) == 1 {
			next.LastGate.Route, next.LastGate.Version, next.LastGate.Requests = routes[0].route.Name, routes[0].route.Version, routes[0].obs.requests
		}
	}
	if st.Step == len(st.StepPercents) {
		lastGate := next.LastGate
		next = registry.EndRollout(st, registry.RolloutCompleted, fmt.Sprintf("rollout completed after %d steps", len(st.StepPercents)), now)
		next.LastGate = lastGate
		return Decision{Action: registry.ActionEndpointRolloutCompleted, Next: next}, nil
	}
	next.Step = st.Step + 1
	next.Routes = registry.RolloutWeights(st.From, ep.Routes, st.StepPercents[st.Step])
	next.StepStarted = now
	nextAt := now.Add(bake)
	next.NextStepAt = &nextAt
	next.Message = stepName(next) + " in force"
	return Decision{Action: registry.ActionEndpointRolloutStep, Next: next}, nil
}

// promFailure says why a prometheus gate failed, "" when it passed.
func promFailure(gate string, pg registry.PrometheusGate, r QueryResult, asked bool) string {
	switch {
	case !asked:
		return gate + " was not asked"
	case r.Err != nil:
		return fmt.Sprintf("%s failed: %v", gate, r.Err)
	case !compare(r.Value, pg.Comparison, pg.Threshold):
		return fmt.Sprintf("%s value %s is not %s %s", gate, num(r.Value), pg.Comparison, num(pg.Threshold))
	}
	return ""
}

// gainingRoutes are the in-force non-shadow routes holding more weight
// than they did when the rollout started, with their observations.
func gainingRoutes(st registry.RolloutStatus, obs []registry.RolloutObservation) []gaining {
	from := map[routeKey]int{}
	for _, r := range st.From {
		if !r.Shadow {
			from[keyOf(r)] += r.Weight
		}
	}
	byName := map[string]routeObs{}
	for _, o := range obs {
		s := byName[o.Route]
		s.requests += o.Requests
		s.errors += o.Errors
		if len(s.bins) < len(o.Latency) {
			s.bins = append(s.bins, make([]int64, len(o.Latency)-len(s.bins))...)
		}
		for i, n := range o.Latency {
			s.bins[i] += n
		}
		byName[o.Route] = s
	}
	var out []gaining
	for _, r := range st.Routes {
		if r.Shadow || r.Weight <= from[keyOf(r)] {
			continue
		}
		out = append(out, gaining{route: r, obs: byName[r.Name]})
	}
	return out
}

// routeKey is a route's identity in a rollout: its name and version; an
// old version's share ("<name>@v<version>") has the identity of the route
// it was split from.
type routeKey struct {
	name    string
	version int64
}

func keyOf(r registry.Route) routeKey {
	name := r.Name
	if base, v, ok := strings.Cut(r.Name, "@v"); ok && v == strconv.FormatInt(r.Version, 10) {
		name = base
	}
	return routeKey{name, r.Version}
}

// rollBack ends the rollout at once: the weights it started from are in
// force again (the store writes them back as the endpoint's routes).
func rollBack(st registry.RolloutStatus, step string, res registry.GateResult, now time.Time) Decision {
	res.Passed = false
	res.Message = fmt.Sprintf("route %s (v%d): %s", res.Route, res.Version, res.Message)
	next := registry.EndRollout(st, registry.RolloutRolledBack, fmt.Sprintf("rollout rolled back at %s: %s", step, res.Message), now)
	next.LastGate = &res
	return Decision{Action: registry.ActionEndpointRolloutRolledBack, Next: next}
}

// wait records why a baked step does not advance, once: a step already
// waiting on the same route is left as it is, so a waiting rollout is not
// written (and its gateways not reloaded) on every tick.
func wait(st registry.RolloutStatus, step string, res registry.GateResult, now time.Time) Decision {
	if g := st.LastGate; g != nil && !g.Passed && g.Gate == res.Gate && g.Route == res.Route && !g.At.Before(st.StepStarted) {
		return Decision{}
	}
	next := st
	next.Seq = st.Seq + 1
	res.Passed = false
	next.LastGate = &res
	next.Message = step + " baked; " + res.Message
	return Decision{Action: registry.ActionEndpointRolloutStep, Next: next}
}

func gateResult(gate string, g gaining, value, threshold float64, now time.Time) registry.GateResult {
	return registry.GateResult{
		Gate: gate, Route: g.route.Name, Version: g.route.Version,
		Value: value, Threshold: threshold, Requests: g.obs.requests, At: now,
	}
}

// passedGate names the gate a passing result stands for: the first one
// the spec sets.
func passedGate(spec registry.RolloutSpec) string {
	switch {
	case spec.MaxErrorRate != nil:
		return GateMaxErrorRate
	case spec.MaxLatencyP99 != "":
		return GateMaxLatencyP99
	case len(spec.Prometheus) > 0:
		return "prometheus[0]"
	}
	return GateMinRequests
}

func queries(endpoint string, gates []registry.PrometheusGate, routes []gaining) []Query {
	var out []Query
	for _, g := range routes {
		for i, pg := range gates {
			out = append(out, Query{Gate: i, Route: g.route.Name, Version: g.route.Version, PromQL: expand(pg.Query, endpoint, g.route)})
		}
	}
	return out
}

// expand replaces $endpoint, $route and $version in a gate's query.
func expand(q, endpoint string, r registry.Route) string {
	return strings.NewReplacer("$endpoint", endpoint, "$route", r.Name, "$version", strconv.FormatInt(r.Version, 10)).Replace(q)
}

func queryKey(gate int, route string) string { return strconv.Itoa(gate) + "\x00" + route }

// compare reports whether value passes comparison against threshold; NaN
// passes nothing.
func compare(value float64, comparison string, threshold float64) bool {
	switch comparison {
	case "<":
		return value < threshold
	case "<=":
		return value <= threshold
	case ">":
		return value > threshold
	case ">=":
		return value >= threshold
	}
	return false
}

// stepName is "step 2 (25%)".
func stepName(st registry.RolloutStatus) string {
	return fmt.Sprintf("step %d (%d%%)", st.Step, st.StepPercents[st.Step-1])
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

// ms shows a latency to the millisecond: "812ms", "1.5s".
func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
