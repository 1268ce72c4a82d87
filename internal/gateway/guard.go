package gateway

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// persistTimeout bounds the guard's write of a rollback to the Source.
const persistTimeout = 15 * time.Second

// checkGuard runs after a request on a guarded route was counted in its
// window. Two measures trip a route, whichever comes first:
//
//   - the window: more than max_error_rate of the requests in the window
//     failed, once the window holds at least min_requests of them;
//   - the run: the route's requests are also cut into runs of min_requests
//     consecutive requests (a run older than the window starts over), and
//     a run in which more than max(max_error_rate, 1/2) of the requests
//     failed trips the route when it completes. The window alone reacts
//     slowly after a healthy phase (its earlier successes dilute the new
//     failures); a route that fails outright trips within two runs, so
//     after at most 2 x min_requests failures. The 1/2 floor keeps one
//     unlucky run of a healthy route from tripping it.
//
// The window is summed only when the request failed, or at most once per
// bucket width otherwise (successes can still tip the balance by bringing
// the count up to min_requests), so the common path costs a few atomic
// operations.
func (g *Gateway) checkGuard(ep *endpoint, rt *route, now time.Time, failed bool) {
	st := rt.st
	if st.tripped.Load() {
		return
	}
	gc := ep.guard
	n := min(gc.minRequests, maxRunLength)
	runErrs, done := st.win.countRun(now, failed, n)
	runTrips := done && float64(runErrs) > gc.runLimit()*float64(n)
	ns := now.UnixNano()
	if !failed && !runTrips {
		last := st.lastEval.Load()
		if ns-last < st.win.width || !st.lastEval.CompareAndSwap(last, ns) {
			return
		}
	}
	var reason string
	reqs, errs := st.win.totals(now)
	if rate := float64(errs) / float64(max(reqs, 1)); reqs >= gc.minRequests && rate > gc.maxErrorRate {
		reason = "error rate " + strconv.FormatFloat(rate, 'f', 2, 64) +
			" over " + strconv.FormatInt(reqs, 10) + " requests in " + gc.windowText +
			" exceeded " + strconv.FormatFloat(gc.maxErrorRate, 'g', -1, 64)
	} else if runTrips {
		reason = strconv.FormatInt(runErrs, 10) + " of its last " + strconv.FormatInt(n, 10) +
			" requests failed (more than " + strconv.FormatFloat(gc.runLimit(), 'g', -1, 64) + " of them)"
	} else {
		return
	}
	if !st.tripped.CompareAndSwap(false, true) {
		return // another request got here first
	}
	g.trip(ep.name, st, now, reason)
}

// runLimit is the share of failed requests in a run that trips a route.
func (gc *guardConfig) runLimit() float64 { return max(gc.maxErrorRate, 0.5) }

// trip acts on the route whose state is st, which failed for reason: it
// moves all the route's weight to the healthiest other route and removes
// its header match (a rollback; a matched route at weight 0 only loses
// its match) or, when no other route is healthy or untried, moves nothing and marks
// the endpoint degraded (once: a degraded endpoint stays so until its
// configuration changes). Either is applied here at once and persisted in
// the background.
func (g *Gateway) trip(name string, st *routeState, now time.Time, reason string) {
	g.mu.Lock()
	t := g.table.Load()
	cur := t.endpoints[name]
	bad := -1
	if cur != nil {
		for i, r := range cur.routes {
			if r.st == st {
				bad = i
			}
		}
	}
	if bad < 0 {
		// The endpoint changed since the request was routed; its new
		// configuration has fresh state and will be judged on its own.
		g.mu.Unlock()
		return
	}
	br := cur.routes[bad]
	if br.weight == 0 && br.match == nil {
		g.mu.Unlock()
		return // already drained (requests were in flight when it was)
	}
	spec := cur.spec
	to := -1
	if br.weight > 0 && cur.rollout == nil {
		to = healthiest(cur, bad, now)
	}
	var msg string
	var store func(ctx context.Context) (*registry.Endpoint, error)
	if ro := cur.rollout; ro != nil {
		// During a rollout the guard ends it: the weights in force before
		// it started come back, as the store writes them (its rollback
		// ends the rollout in the same transaction).
		routes := append([]registry.Route(nil), ro.From...)
		msg = "route " + br.name + ": " + reason + "; rolled back rollout " + strconv.FormatInt(ro.ID, 10) +
			" at step " + strconv.Itoa(ro.Step) + " to the weights in force before it"
		spec.Routes = routes
		spec.Status = registry.EndpointStatusRolledBack
		spec.StatusMessage = msg
		ended := *ro
		ended.State, ended.Routes, ended.Message = registry.RolloutRolledBack, routes, msg
		spec.Rollout = &registry.EndpointRollout{RolloutSpec: spec.Rollout.RolloutSpec, RolloutStatus: &ended}
		revision := cur.revision
		store = func(ctx context.Context) (*registry.Endpoint, error) {
			return g.src.RecordGuardRollback(ctx, registry.Actor{Name: GuardActor}, name, revision, routes, msg)
		}
	} else if br.weight == 0 {
		// Only its header match sends it traffic: taking the match away
		// is the whole rollback, and matched requests go by weight.
		routes := append([]registry.Route(nil), cur.spec.Routes...)
		routes[br.idx].Match = nil
		msg = "route " + br.name + ": " + reason + "; removed its header match, so matched requests go by weight"
		spec.Routes = routes
		spec.Status = registry.EndpointStatusRolledBack
		spec.StatusMessage = msg
		revision := cur.revision
		store = func(ctx context.Context) (*registry.Endpoint, error) {
			return g.src.RecordGuardRollback(ctx, registry.Actor{Name: GuardActor}, name, revision, routes, msg)
		}
	} else if to < 0 {
		if cur.spec.Status == registry.EndpointStatusDegraded {
			g.mu.Unlock()
			g.log.Warn("gateway guard: route is failing and so is every other route; endpoint already degraded",
				"endpoint", name, "route", br.name, "reason", reason)
			return
		}
		msg = "route " + br.name + ": " + reason + "; "
		if len(cur.routes) == 1 {
			msg += "it is the only route"
		} else {
			msg += "every other route is failing or was rolled back"
		}
		msg += ", so the guard moved no weight"
		spec.Status = registry.EndpointStatusDegraded
		spec.StatusMessage = msg
		revision := cur.revision
		store = func(ctx context.Context) (*registry.Endpoint, error) {
			return g.src.RecordGuardDegraded(ctx, registry.Actor{Name: GuardActor}, name, revision, msg)
		}
	} else {
		tr := cur.routes[to]
		routes := append([]registry.Route(nil), cur.spec.Routes...)
		routes[tr.idx].Weight += routes[br.idx].Weight
		routes[br.idx].Weight = 0
		msg = "route " + br.name + ": " + reason + "; moved weight " + strconv.Itoa(int(br.weight)) + " to " + tr.name
		if routes[br.idx].Match != nil {
			routes[br.idx].Match = nil
			msg += " and removed its header match"
		}
		spec.Routes = routes
		spec.Status = registry.EndpointStatusRolledBack
		spec.StatusMessage = msg
		revision := cur.revision
		store = func(ctx context.Context) (*registry.Endpoint, error) {
			return g.src.RecordGuardRollback(ctx, registry.Actor{Name: GuardActor}, name, revision, routes, msg)
		}
	}
	ce, err := g.compile(spec, cur, true)
	if err != nil {
		g.mu.Unlock()
		g.log.Error("gateway guard: cannot apply its action", "endpoint", name, "err", err)
		return
	}
	g.swap(ce)
	g.mu.Unlock()

	if spec.Status == registry.EndpointStatusRolledBack {
		st.metrics.rollbacks.Inc()
		g.log.Warn("gateway guard: rolled back route", "endpoint", name, "route", br.name, "message", msg)
	} else {
		g.log.Warn("gateway guard: every route is failing; endpoint degraded", "endpoint", name, "route", br.name, "message", msg)
	}
	g.bg.Add(1)
	go g.persist(name, cur.revision, store)
}

// swap publishes a table in which ce replaces its namesake. Callers hold mu.
func (g *Gateway) swap(ce *endpoint) {
	old := g.table.Load()
	nt := &table{endpoints: maps.Clone(old.endpoints)}
	nt.endpoints[ce.name] = ce
	g.table.Store(nt)
}

// healthiest picks the route to receive the weight of routes[bad], or -1
// when no route is healthy or untried. Candidates are the other routes
// the guard has not acted on. Routes with traffic in the window and an
// error rate within the limit come first, then routes without traffic in
// the window (nothing known about them); within a group the lowest error
// rate wins, ties go to the highest weight, then to the configured order.
// A route over the limit in its window, or whose unfinished run already
// has more failures than a run may (see checkGuard), is failing and never
// chosen: moving weight onto it would pile all traffic onto a failing
// route.
func healthiest(e *endpoint, bad int, now time.Time) int {
	best, bestGroup, bestRate, bestWeight := -1, 0, 0.0, uint64(0)
	runMax := e.guard.runLimit() * float64(min(e.guard.minRequests, maxRunLength))
	for i, r := range e.routes {
		if i == bad || r.st.tripped.Load() {
			continue
		}
		if float64(r.st.win.runErrors(now)) > runMax {
			continue
		}
		reqs, errs := r.st.win.totals(now)
		group, rate := 1, 0.0
		if reqs > 0 {
			rate = float64(errs) / float64(reqs)
			group = 0
			if rate > e.guard.maxErrorRate {
				continue
			}
		}
		better := best < 0 ||
			group < bestGroup ||
			group == bestGroup && (rate < bestRate || rate == bestRate && r.weight > bestWeight)
		if better {
			best, bestGroup, bestRate, bestWeight = i, group, rate, r.weight
		}
	}
	return best
}

// persist records a guard action the gateway already applied, through
// store. When someone changed the endpoint meanwhile the store refuses it
// (precondition failed) and the gateway reloads: the newer configuration
// wins.
func (g *Gateway) persist(name string, revision int64, store func(context.Context) (*registry.Endpoint, error)) {
	defer g.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), persistTimeout)
	defer cancel()
	e, err := store(ctx)
	switch {
	case err == nil:
		g.mu.Lock()
		defer g.mu.Unlock()
		cur := g.table.Load().endpoints[name]
		if cur == nil || cur.revision != revision {
			return // a Refresh already loaded it (or something newer)
		}
		ce, err := g.compile(*e, cur, true)
		if err != nil {
			g.log.Error("gateway guard: cannot apply its stored action", "endpoint", name, "err", err)
			return
		}
		g.swap(ce)
	case errors.Is(err, registry.ErrPreconditionFailed) || errors.Is(err, registry.ErrNotFound):
		g.log.Info("gateway guard: endpoint changed before the guard's action was stored; reloading", "endpoint", name)
		if err := g.Refresh(ctx); err != nil {
			g.log.Warn("gateway: cannot load endpoints", "err", err)
		}
	default:
		g.log.Error("gateway guard: cannot store its action; it applies on this replica only until the endpoint changes",
			"endpoint", name, "err", err)
	}
}
