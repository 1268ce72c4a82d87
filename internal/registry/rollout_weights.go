package registry

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// routeKey is a route's identity in a rollout: its name and version. An
// old share named "<name>@v<version>" has the identity of the route it
// was split from, so a rollout back to that version takes it up again.
type routeKey struct {
	name    string
	version int64
}

func keyOf(r Route) routeKey {
	name := r.Name
	if base, v, ok := strings.Cut(r.Name, "@v"); ok && v == strconv.FormatInt(r.Version, 10) {
		name = base
	}
	return routeKey{name, r.Version}
}

// OldShareName is the name in force of the share an old version of route
// name keeps during a rollout: '@' is not allowed in route names, so it
// never clashes with a configured route.
func OldShareName(name string, version int64) string {
	return name + "@v" + strconv.FormatInt(version, 10)
}

// RolloutWeights are the weights in force at percent (0..100) of the way
// from the weights from to the routes to.
//
// Each non-shadow route of to with weight wt gets wf + (wt-wf)*percent/100,
// where wf is the weight from gives its identity (name and version; 0 when
// none). Each from entry whose identity to does not have keeps
// wf*(100-percent)/100; it is renamed "<name>@v<version>" when to has a
// route of its name (its old version), and it carries no match. The
// fractions are rounded by largest remainder so the weights sum to exactly
// 100, each staying between its from and its to weight. Entries at weight
// 0 are dropped, except the routes of to. The routes of to come first, in
// their order, shadows unchanged; the shadows of from are dropped.
//
// When the non-shadow weights of from do not sum to 100 (an endpoint left
// with no weight by a flag drain), there is nothing to move gradually:
// the result is to.
func RolloutWeights(from, to []Route, percent int) []Route {
	percent = min(max(percent, 0), 100)
	fromW := map[routeKey]int{}
	sum := 0
	for _, r := range from {
		if r.Shadow {
			continue
		}
		fromW[keyOf(r)] += r.Weight
		sum += r.Weight
	}
	if sum != 100 {
		return slices.Clone(to)
	}
	toKeys := map[routeKey]bool{}
	toNames := map[string]bool{}
	for _, r := range to {
		toNames[r.Name] = true
		if !r.Shadow {
			toKeys[keyOf(r)] = true
		}
	}

	// Weights in hundredths of a percent: exact, and summing to 10000.
	type entry struct {
		route Route
		hund  int
		keep  bool
	}
	var entries []entry
	for _, r := range to {
		if r.Shadow {
			entries = append(entries, entry{route: r, keep: true})
			continue
		}
		wf := fromW[keyOf(r)]
		entries = append(entries, entry{route: r, hund: wf*100 + (r.Weight-wf)*percent, keep: true})
	}
	seen := map[routeKey]bool{}
	for _, r := range from {
		k := keyOf(r)
		if r.Shadow || toKeys[k] || seen[k] {
			continue
		}
		seen[k] = true
		old := r
		old.Match = nil
		if toNames[k.name] {
			old.Name = OldShareName(k.name, k.version)
		}
		entries = append(entries, entry{route: old, hund: fromW[k] * (100 - percent)})
	}

	// Largest remainder: floors first, then one point each to the largest
	// remainders (earlier entries first on ties).
	left := 100
	for i := range entries {
		entries[i].route.Weight = entries[i].hund / 100
		left -= entries[i].route.Weight
	}
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(entries[b].hund%100, entries[a].hund%100)
	})
	for _, i := range order {
		if left == 0 {
			break
		}
		if entries[i].hund%100 != 0 {
			entries[i].route.Weight++
			left--
		}
	}

	out := make([]Route, 0, len(entries))
	for _, e := range entries {
		if e.keep || e.route.Weight > 0 {
			out = append(out, e.route)
		}
	}
	return out
}

// RoutesNeedRollout reports whether changing an endpoint's routes from
// old to next moves traffic: a non-shadow route's weight or version
// changes, or one appears or goes. Upstream URLs, matches and shadow
// routes apply at once.
func RoutesNeedRollout(old, next []Route) bool {
	weights := func(rs []Route) map[routeKey]int {
		m := map[routeKey]int{}
		for _, r := range rs {
			if !r.Shadow {
				m[routeKey{r.Name, r.Version}] = r.Weight
			}
		}
		return m
	}
	a, b := weights(old), weights(next)
	if len(a) != len(b) {
		return true
	}
	for k, w := range a {
		if bw, ok := b[k]; !ok || bw != w {
			return true
		}
	}
	return false
}

// RolloutActive reports whether st is a rollout whose weights are in
// force (progressing or paused).
func RolloutActive(st *RolloutStatus) bool {
	return st != nil && (st.State == RolloutProgressing || st.State == RolloutPaused)
}

// RoutesInForce are the routes the gateway serves: the rollout's weights
// while one is progressing or paused, else the configured routes.
func (e *Endpoint) RoutesInForce() []Route {
	if e.Rollout != nil && RolloutActive(e.Rollout.RolloutStatus) {
		return e.Rollout.Routes
	}
	return e.Routes
}

// StartRollout is the first step of a rollout of spec moving from the
// weights in force to target: in force at once, baking from now. running
// is the rollout it replaces (its id is named in the message), nil when
// none is progressing or paused. id is the new rollout's id, seq the
// endpoint's rollout sequence before it.
func StartRollout(spec RolloutSpec, inForce, target []Route, running *RolloutStatus, id, seq int64, now time.Time) RolloutStatus {
	steps := slices.Clone(spec.Steps)
	next := now.Add(RolloutBake(spec))
	st := RolloutStatus{
		ID:           id,
		State:        RolloutProgressing,
		Step:         1,
		StepPercents: steps,
		From:         slices.Clone(inForce),
		Routes:       RolloutWeights(inForce, target, steps[0]),
		StartedAt:    now,
		StepStarted:  now,
		NextStepAt:   &next,
		Message:      fmt.Sprintf("rollout %d started: step 1 of %d (%d%%)", id, len(steps), steps[0]),
		Seq:          seq + 1,
	}
	if running != nil {
		st.Message += fmt.Sprintf(", replacing rollout %d at step %d", running.ID, running.Step)
	}
	return st
}

// EndRollout is st ended in state (completed, rolled_back or aborted) at
// now with message. A rollout that did not complete puts From back in
// force: the caller writes it as the endpoint's routes.
func EndRollout(st RolloutStatus, state, message string, now time.Time) RolloutStatus {
	st.State = state
	st.Message = message
	st.NextStepAt = nil
	st.EndedAt = &now
	st.Seq++
	if state == RolloutRolledBack || state == RolloutAborted {
		st.Routes = slices.Clone(st.From)
	}
	return st
}

// RolloutUpdate is what an update of an endpoint does to its rollout.
type RolloutUpdate int

// What RolloutOnUpdate decides.
const (
	// RolloutUnchanged: the rollout status stays as it is.
	RolloutUnchanged RolloutUpdate = iota
	// RolloutStart: a new rollout starts from the weights in force (and
	// replaces a running one).
	RolloutStart
	// RolloutCompleteNow: the configuration was removed while a rollout
	// ran; it completes at once with the configured weights in force.
	RolloutCompleteNow
	// RolloutRefresh: the routes changed without moving traffic (upstream
	// URLs, matches, shadows) while a rollout runs; the change reaches the
	// weights in force at once (RefreshRollout).
	RolloutRefresh
)

// RolloutOnUpdate decides what an update of an endpoint from before to
// after does to its rollout. after holds the update's result, its
// Rollout the configuration it keeps (nil: none) with before's status;
// routesSet says the update set the routes. A change of non-shadow
// weights or versions on an endpoint with a configuration starts a
// rollout, unless nothing is served now (a flag drain left no weight):
// there is nothing to move gradually from, so it applies at once.
func RolloutOnUpdate(before, after *Endpoint, routesSet bool) RolloutUpdate {
	var running *RolloutStatus
	if before.Rollout != nil && RolloutActive(before.Rollout.RolloutStatus) {
		running = before.Rollout.RolloutStatus
	}
	switch {
	case running != nil && after.Rollout == nil:
		return RolloutCompleteNow
	case after.Rollout != nil && routesSet && RoutesNeedRollout(before.Routes, after.Routes) && WholeSplit(before.RoutesInForce()):
		return RolloutStart
	case running != nil && routesSet:
		return RolloutRefresh
	}
	return RolloutUnchanged
}

// RefreshRollout carries target's upstream URLs, matches and shadow
// routes into the weights in force of st at its step; the seq moves only
// when what is in force changed.
func RefreshRollout(st RolloutStatus, target []Route) RolloutStatus {
	routes := RolloutWeights(st.From, target, st.StepPercents[st.Step-1])
	if !slices.EqualFunc(routes, st.Routes, sameRoute) {
		st.Seq++
	}
	st.Routes = routes
	return st
}

func sameRoute(a, b Route) bool {
	if (a.Match == nil) != (b.Match == nil) || (a.Match != nil && *a.Match != *b.Match) {
		return false
	}
	a.Match, b.Match = nil, nil
	return a == b
}

// WholeSplit reports whether the non-shadow weights of routes sum to 100:
// all traffic goes somewhere.
func WholeSplit(routes []Route) bool {
	sum := 0
	for _, r := range routes {
		if !r.Shadow {
			sum += r.Weight
		}
	}
	return sum == 100
}
