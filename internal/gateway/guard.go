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

// checkGuard runs after a request on a guarded route was counted. The
// window is summed only when the request failed, or at most once per
// bucket width otherwise (successes can still tip the balance by bringing
// the count up to min_requests), so the common path costs two atomic loads.
func (g *Gateway) checkGuard(ep *endpoint, rt *route, now time.Time, failed bool) {
	st := rt.st
	if st.tripped.Load() {
		return
	}
	ns := now.UnixNano()
	if !failed {
		last := st.lastEval.Load()
		if ns-last < st.win.width || !st.lastEval.CompareAndSwap(last, ns) {
			return
		}
	}
	reqs, errs := st.win.totals(now)
	gc := ep.guard
	if reqs < gc.minRequests {
		return
	}
	rate := float64(errs) / float64(reqs)
	if rate <= gc.maxErrorRate {
		return
	}
	if !st.tripped.CompareAndSwap(false, true) {
		return // another request got here first
	}
	g.rollback(ep.name, st, now, reqs, rate)
}

// rollback moves all weight of the route whose state is st to the
// healthiest other route, applies that here at once, and persists it in
// the background.
func (g *Gateway) rollback(name string, st *routeState, now time.Time, reqs int64, rate float64) {
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
	if br.weight == 0 {
		g.mu.Unlock()
		return // already drained (requests were in flight when it was)
	}
	to := healthiest(cur, bad, now)
	if to < 0 {
		g.mu.Unlock()
		g.log.Warn("gateway guard: route is failing but there is no other route to move its weight to",
			"endpoint", name, "route", br.name, "error_rate", rate, "requests", reqs)
		return
	}
	tr := cur.routes[to]
	routes := append([]registry.Route(nil), cur.spec.Routes...)
	routes[to].Weight += routes[bad].Weight
	routes[bad].Weight = 0
	msg := "route " + br.name + ": error rate " + strconv.FormatFloat(rate, 'f', 2, 64) +
		" over " + strconv.FormatInt(reqs, 10) + " requests in " + cur.guard.windowText +
		" exceeded " + strconv.FormatFloat(cur.guard.maxErrorRate, 'g', -1, 64) +
		"; moved weight " + strconv.Itoa(int(br.weight)) + " to " + tr.name

	spec := cur.spec
	spec.Routes = routes
	spec.Status = registry.EndpointStatusRolledBack
	spec.StatusMessage = msg
	ce, err := g.compile(spec, cur, true)
	if err != nil {
		g.mu.Unlock()
		g.log.Error("gateway guard: cannot apply rollback", "endpoint", name, "err", err)
		return
	}
	g.swap(ce)
	g.mu.Unlock()

	st.metrics.rollbacks.Inc()
	g.log.Warn("gateway guard: rolled back route", "endpoint", name, "route", br.name, "to", tr.name, "message", msg)
	g.bg.Add(1)
	go g.persist(name, cur.revision, routes, msg)
}

// swap publishes a table in which ce replaces its namesake. Callers hold mu.
func (g *Gateway) swap(ce *endpoint) {
	old := g.table.Load()
	nt := &table{endpoints: maps.Clone(old.endpoints)}
	nt.endpoints[ce.name] = ce
	g.table.Store(nt)
}

// healthiest picks the route to receive the weight of routes[bad], or -1.
// Candidates are the other routes the guard has not acted on. Routes with
// traffic in the window and an error rate within the limit come first,
// then routes without traffic in the window (nothing known about them),
// then routes over the limit; within a group the lowest error rate wins,
// ties go to the highest weight, then to the configured order.
func healthiest(e *endpoint, bad int, now time.Time) int {
	best, bestGroup, bestRate, bestWeight := -1, 0, 0.0, uint64(0)
	for i, r := range e.routes {
		if i == bad || r.st.tripped.Load() {
			continue
		}
		reqs, errs := r.st.win.totals(now)
		group, rate := 1, 0.0
		if reqs > 0 {
			rate = float64(errs) / float64(reqs)
			group = 0
			if rate > e.guard.maxErrorRate {
				group = 2
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

// persist records a rollback the gateway already applied. When someone
// changed the endpoint meanwhile the store refuses it (precondition
// failed) and the gateway reloads: the newer configuration wins.
func (g *Gateway) persist(name string, revision int64, routes []registry.Route, msg string) {
	defer g.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), persistTimeout)
	defer cancel()
	e, err := g.src.RecordGuardRollback(ctx, registry.Actor{Name: GuardActor}, name, revision, routes, msg)
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
			g.log.Error("gateway guard: cannot apply stored rollback", "endpoint", name, "err", err)
			return
		}
		g.swap(ce)
	case errors.Is(err, registry.ErrPreconditionFailed) || errors.Is(err, registry.ErrNotFound):
		g.log.Info("gateway guard: endpoint changed before the rollback was stored; reloading", "endpoint", name)
		if err := g.Refresh(ctx); err != nil {
			g.log.Warn("gateway: cannot load endpoints", "err", err)
		}
	default:
		g.log.Error("gateway guard: cannot store rollback; it applies on this replica only until the endpoint changes",
			"endpoint", name, "err", err)
	}
}
