package registry

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// GuardLiveMetric is the endpoint guard's rule on a live metric: a route
// whose version's trusted feedback on this endpoint, over Window, holds at
// least MinCount values of Metric with a mean below Floor is rolled back
// like a route that fails the error rate. The rollout driver's leader
// judges it (one judge among replicas, on the database's sums); the
// gateways judge the error rate.
type GuardLiveMetric struct {
	Metric   string  `json:"metric"`
	Floor    float64 `json:"floor"`
	MinCount int64   `json:"min_count"`
	// Window is whole minutes, from 1m to MaxLiveWindow; feedback counts
	// only from the minute the endpoint last changed, so routes put back
	// by an apply are judged afresh.
	Window string `json:"window"`
}

// Validate checks the rule under field (e.g. "guard.live_metric").
func (g *GuardLiveMetric) Validate(field string) error {
	if g == nil {
		return nil
	}
	if !ValidLiveMetricName(g.Metric) {
		return FieldError(field+".metric", "pattern", "must match %s (the names feedback carries), got %q", LiveMetricNamePattern, g.Metric)
	}
	if math.IsNaN(g.Floor) || math.IsInf(g.Floor, 0) {
		return FieldError(field+".floor", "finite", "must be a finite number")
	}
	if g.MinCount < 1 || g.MinCount > MaxMinLiveCount {
		return FieldError(field+".min_count", "range", "must be from 1 to %d, got %d", MaxMinLiveCount, g.MinCount)
	}
	if g.Window == "" {
		return FieldError(field+".window", "required", "is required: the span of feedback judged, e.g. 15m")
	}
	_, err := ParseLiveWindow(field+".window", g.Window)
	return err
}

// LiveGuardFrom is where the live guard of ep starts counting feedback at
// now: the window's start, or the minute ep last changed if later.
func LiveGuardFrom(ep *Endpoint, now time.Time) (from, to time.Time, err error) {
	d, err := ParseLiveWindow("guard.live_metric.window", ep.Guard.LiveMetric.Window)
	if err != nil {
		return from, to, err
	}
	from, to = LiveWindow(now, d)
	if changed := ep.UpdatedAt.UTC().Truncate(LiveBucket); changed.After(from) {
		from = changed
	}
	return from, to, nil
}

// LiveGuardAction is what the live guard does to an endpoint.
type LiveGuardAction struct {
	// Routes are the routes after the rollback.
	Routes []Route
	// Message names the route, the metric, its mean and count, and the
	// floor, and where the weight went.
	Message string
}

// CheckLiveGuard judges ep's routes on their versions' trusted feedback
// on ep (live, per version). The first route that serves traffic (weight
// or header match, not a shadow) and fails the rule loses its weight and
// match to the best other route: one not failing, with the highest mean
// among those with MinCount values, else the largest weight, then the
// earlier. Nil when nothing fails, or when every other route fails too
// (moving weight onto a failing version helps nobody).
func CheckLiveGuard(ep *Endpoint, live map[int64]LiveSums) *LiveGuardAction {
	if ep.Guard == nil || ep.Guard.LiveMetric == nil {
		return nil
	}
	g := ep.Guard.LiveMetric
	failing := func(r Route) (LiveMetric, bool) {
		m := live[r.Version].Summarize()
		return m, m.Count >= g.MinCount && m.Mean < g.Floor
	}
	for bad, r := range ep.Routes {
		if r.Shadow || (r.Weight == 0 && r.Match == nil) {
			continue
		}
		m, fails := failing(r)
		if !fails {
			continue
		}
		to := -1
		var toMean float64
		toJudged := false
		for i, o := range ep.Routes {
			if i == bad || o.Shadow || o.Version == r.Version {
				continue
			}
			om, ofails := failing(o)
			if ofails {
				continue
			}
			judged := om.Count >= g.MinCount
			switch {
			case to < 0,
				judged && !toJudged,
				judged && toJudged && om.Mean > toMean,
				judged == toJudged && !judged && o.Weight > ep.Routes[to].Weight:
				to, toMean, toJudged = i, om.Mean, judged
			}
		}
		if to < 0 {
			return nil
		}
		routes := append([]Route(nil), ep.Routes...)
		msg := fmt.Sprintf("route %s: live %s = %g over %d trusted feedback values in %s is below the floor %g",
			r.Name, g.Metric, m.Mean, m.Count, g.Window, g.Floor)
		if r.Weight > 0 {
			msg += fmt.Sprintf("; moved weight %d to %s", r.Weight, routes[to].Name)
		}
		routes[to].Weight += r.Weight
		routes[bad].Weight = 0
		if routes[bad].Match != nil {
			routes[bad].Match = nil
			msg += "; removed its header match"
		}
		return &LiveGuardAction{Routes: routes, Message: msg}
	}
	return nil
}

// GateMinLiveMetrics names the rollout gate on live metrics.
const GateMinLiveMetrics = "min_live_metrics"

// LiveGateVerdict is the rollout gate min_live_metrics on one gaining
// route: Fail rolls the rollout back, Wait holds the step (too few
// values); neither means it passed.
type LiveGateVerdict struct {
	Fail, Wait bool
	Metric     string
	Mean       float64
	Count      int64
	Floor      float64
	Message    string
}

// CheckLiveGate judges the trusted feedback live (per metric) of one
// gaining route's version since its step began against the spec's
// min_live_metrics, metric by metric in name order; the first metric
// short of values or below its floor decides.
func CheckLiveGate(spec RolloutSpec, live map[string]LiveSums) LiveGateVerdict {
	need := StagePolicy{MinLiveCount: spec.MinLiveCount}.LiveCount()
	var passed []string
	for _, name := range sortedKeys(spec.MinLiveMetrics) {
		floor := spec.MinLiveMetrics[name]
		m := live[name].Summarize()
		v := LiveGateVerdict{Metric: name, Mean: m.Mean, Count: m.Count, Floor: floor}
		switch {
		case m.Count < need:
			v.Wait = true
			v.Message = fmt.Sprintf("waiting for feedback: %d of %d trusted values of live %s", m.Count, need, name)
			return v
		case m.Mean < floor:
			v.Fail = true
			v.Message = fmt.Sprintf("%s: live %s = %g over %d trusted feedback values is below the floor %g", GateMinLiveMetrics, name, m.Mean, m.Count, floor)
			return v
		}
		passed = append(passed, fmt.Sprintf("live %s %g over %d values within %g", name, m.Mean, m.Count, floor))
	}
	return LiveGateVerdict{Message: strings.Join(passed, ", ")}
}
