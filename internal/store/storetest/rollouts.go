package storetest

import (
	"fmt"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var rolloutCases = []testCase{
	{"RolloutStartsOnUpdate", testRolloutStartsOnUpdate},
	{"RolloutRecord", testRolloutRecord},
	{"RolloutRolledBack", testRolloutRolledBack},
	{"RolloutControl", testRolloutControl},
	{"RolloutClearCompletes", testRolloutClearCompletes},
	{"RolloutValidation", testRolloutValidation},
	{"RolloutObservations", testRolloutObservations},
	{"RolloutLeases", testRolloutLeases},
	{"RolloutGuardRollback", testRolloutGuardRollback},
	{"RolloutFlagAborts", testRolloutFlagAborts},
}

func rolloutSpec() *registry.RolloutSpec {
	return &registry.RolloutSpec{Steps: []int{10, 50, 100}, Bake: "1m", MaxErrorRate: ptr(0.05), MinRequests: 20}
}

func weights(rs []registry.Route) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s/v%d=%d", r.Name, r.Version, r.Weight))
	}
	return strings.Join(parts, " ")
}

func one(name string, version int64) []registry.Route {
	return []registry.Route{{Name: name, Version: version, UpstreamURL: "http://churn-" + name + ":8080", Weight: 100}}
}

// rolloutFixture: endpoint ep on churn v1 (main 100) with a rollout
// configuration, then updated to v2, which starts a rollout.
func rolloutFixture(e *env) *registry.Endpoint {
	e.t.Helper()
	endpointFixture(e)
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: one("main", 1), Rollout: rolloutSpec()})
	ok(e.t, err)
	e.clock.Advance(time.Second)
	ep, err := e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(one("main", 2))}, registry.Precondition{})
	ok(e.t, err)
	return ep
}

func status(t interface{ Fatalf(string, ...any) }, ep *registry.Endpoint) *registry.RolloutStatus {
	if ep.Rollout == nil || ep.Rollout.RolloutStatus == nil {
		t.Fatalf("endpoint %q has no rollout status: %+v", ep.Name, ep.Rollout)
	}
	return ep.Rollout.RolloutStatus
}

// testRolloutStartsOnUpdate: creating applies weights at once; a change
// of versions or weights starts a rollout in the update's transaction,
// step 1 in force; other route changes reach the weights in force at
// once; a change while a rollout runs starts one from where it stands.
func testRolloutStartsOnUpdate(e *env) {
	t := e.t
	endpointFixture(e)
	created, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: one("main", 1), Rollout: rolloutSpec()})
	ok(t, err)
	if created.Rollout == nil || created.Rollout.RolloutStatus != nil {
		t.Fatalf("created endpoint's rollout: %+v, want the configuration and no status", created.Rollout)
	}
	equal(t, "configuration", created.Rollout.RolloutSpec, *rolloutSpec())
	equal(t, "no rollout on create", e.revisions()["ep"].RolloutSeq, int64(0))

	e.clock.Advance(time.Second)
	startAt := at(e.clock.Now())
	evBefore := e.latestEvent()
	ep, err := e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(one("main", 2))}, registry.Precondition{IfRevision: 1})
	ok(t, err)
	st := status(t, ep)
	equal(t, "configured routes", ep.Routes, one("main", 2))
	equal(t, "state", st.State, registry.RolloutProgressing)
	equal(t, "step", st.Step, 1)
	equal(t, "step percents", st.StepPercents, []int{10, 50, 100})
	equal(t, "weights in force", weights(st.Routes), "main/v2=10 main@v1/v1=90")
	equal(t, "from", st.From, one("main", 1))
	equal(t, "started", st.StartedAt, startAt)
	equal(t, "step started", st.StepStarted, startAt)
	equal(t, "next step due", *st.NextStepAt, startAt.Add(time.Minute))
	equal(t, "seq", st.Seq, int64(1))
	equal(t, "revision", ep.Revision, int64(2))
	equal(t, "in force", ep.RoutesInForce(), st.Routes)
	got, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "read back", got, ep)
	equal(t, "stamp", e.revisions()["ep"], registry.EndpointRevision{Revision: 2, CreatedAt: ep.CreatedAt, RolloutSeq: 1})
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	var after []string
	for _, ev := range evs {
		if ev.ID > evBefore {
			after = append(after, ev.Action)
		}
	}
	equal(t, "events of the update", after, []string{registry.ActionEndpointUpdate, registry.ActionEndpointRolloutStarted})
	active, err := e.s.ActiveRollouts(e.ctx)
	ok(t, err)
	if len(active) != 1 || active[0].Name != "ep" {
		t.Fatalf("active rollouts: %+v", active)
	}

	// The old version still serves: it cannot be deleted, and flagging
	// it finds the endpoint.
	names, err := e.s.VersionEndpoints(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "endpoints routing to v1 during the rollout", names, []string{"ep"})
	err = e.s.DeleteVersion(e.ctx, e.actor, "churn", 1, registry.Precondition{})
	wantCode(t, err, registry.CodeConflict, `"main@v1"`)

	// An upstream change of the same route applies to the weights in
	// force at once; no new rollout.
	moved := one("main", 2)
	moved[0].UpstreamURL = "http://churn-main-2:8080"
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(moved)}, registry.Precondition{})
	ok(t, err)
	st2 := status(t, ep)
	equal(t, "same rollout", st2.ID, st.ID)
	equal(t, "weights unchanged", weights(st2.Routes), weights(st.Routes))
	equal(t, "new upstream in force", st2.Routes[0].UpstreamURL, "http://churn-main-2:8080")
	equal(t, "seq bumped", st2.Seq, int64(2))

	// A change of weights while it runs starts a new rollout from the
	// weights in force.
	e.version("churn")
	e.clock.Advance(time.Second)
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(one("main", 3))}, registry.Precondition{})
	ok(t, err)
	st3 := status(t, ep)
	if st3.ID == st.ID {
		t.Fatalf("a new rollout keeps id %d", st.ID)
	}
	equal(t, "from is what was in force", weights(st3.From), "main/v2=10 main@v1/v1=90")
	equal(t, "step 1 of the new rollout", weights(st3.Routes), "main/v3=10 main@v2/v2=9 main@v1/v1=81")
	equal(t, "seq grows across rollouts", st3.Seq, int64(3))
	if !strings.Contains(st3.Message, fmt.Sprintf("replacing rollout %d", st.ID)) {
		t.Errorf("message %q does not name the superseded rollout", st3.Message)
	}

	// Without a configuration, a change applies at once.
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "plain", Model: "churn", Routes: one("main", 1)})
	ok(t, err)
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "plain", registry.EndpointPatch{Routes: ptr(one("main", 2))}, registry.Precondition{})
	ok(t, err)
	if ep.Rollout != nil {
		t.Errorf("endpoint without a rollout configuration got %+v", ep.Rollout)
	}
	equal(t, "in force at once", ep.RoutesInForce(), one("main", 2))
}

// testRolloutRecord: the driver's writes go through only at the seq it
// read; a step changes what is in force without a new revision;
// completing leaves the configured routes.
func testRolloutRecord(e *env) {
	t := e.t
	ep := rolloutFixture(e)
	st := *status(t, ep)
	driver := registry.Actor{Name: "system", RequestID: "rollout-driver"}

	e.clock.Advance(time.Minute)
	now := at(e.clock.Now())
	next := st
	next.Step = 2
	next.Routes = registry.RolloutWeights(st.From, ep.Routes, 50)
	next.StepStarted = now
	due := now.Add(time.Minute)
	next.NextStepAt = &due
	next.LastGate = &registry.GateResult{Gate: "max_error_rate", Route: "main", Version: 2, Value: 0.01, Threshold: 0.05, Passed: true, Requests: 40, Message: "ok", At: now}
	got, err := e.s.RecordRollout(e.ctx, driver, "ep", st.ID, st.Seq, next, registry.ActionEndpointRolloutStep)
	ok(t, err)
	gs := status(t, got)
	equal(t, "step", gs.Step, 2)
	equal(t, "seq numbered by the store", gs.Seq, st.Seq+1)
	equal(t, "weights in force", weights(gs.Routes), "main/v2=50 main@v1/v1=50")
	equal(t, "gate", gs.LastGate, next.LastGate)
	equal(t, "revision unchanged by a step", got.Revision, ep.Revision)
	read, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "read back", read, got)
	equal(t, "stamp moves with the step", e.revisions()["ep"].RolloutSeq, gs.Seq)
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	if last := evs[len(evs)-1]; last.Action != registry.ActionEndpointRolloutStep || last.Actor != "system" || last.RequestID != "rollout-driver" || last.After == nil || last.Before == nil {
		t.Errorf("step event: %+v", last)
	}

	// A stale driver (seq it read) or another rollout id changes nothing.
	events := e.latestEvent()
	_, err = e.s.RecordRollout(e.ctx, driver, "ep", st.ID, st.Seq, next, registry.ActionEndpointRolloutStep)
	wantCode(t, err, registry.CodePreconditionFailed)
	other := next
	other.ID = st.ID + 100
	_, err = e.s.RecordRollout(e.ctx, driver, "ep", st.ID+100, gs.Seq, other, registry.ActionEndpointRolloutStep)
	wantCode(t, err, registry.CodePreconditionFailed)
	_, err = e.s.RecordRollout(e.ctx, driver, "ep", st.ID, gs.Seq, next, "endpoint.update")
	wantField(t, err, "action")
	half := next
	half.Routes = []registry.Route{next.Routes[0]}
	_, err = e.s.RecordRollout(e.ctx, driver, "ep", st.ID, gs.Seq, half, registry.ActionEndpointRolloutStep)
	wantField(t, err, "routes")
	_, err = e.s.RecordRollout(e.ctx, driver, "nope", st.ID, gs.Seq, next, registry.ActionEndpointRolloutStep)
	wantCode(t, err, registry.CodeNotFound)
	equal(t, "refused writes write no event", e.latestEvent(), events)

	// Completing: the configured routes are in force, no new revision.
	done := registry.EndRollout(*gs, registry.RolloutCompleted, "rollout completed", at(e.clock.Now()))
	done.Step = 3
	done.Routes = ep.Routes
	got, err = e.s.RecordRollout(e.ctx, driver, "ep", st.ID, gs.Seq, done, registry.ActionEndpointRolloutCompleted)
	ok(t, err)
	equal(t, "state", status(t, got).State, registry.RolloutCompleted)
	equal(t, "configured routes in force", got.RoutesInForce(), one("main", 2))
	equal(t, "revision unchanged", got.Revision, ep.Revision)
	active, err := e.s.ActiveRollouts(e.ctx)
	ok(t, err)
	equal(t, "no active rollout", len(active), 0)
	// v1 serves nothing any more: it may be deleted.
	names, err := e.s.VersionEndpoints(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "endpoints routing to v1 after completion", names, []string{})
}

// testRolloutRolledBack: a rollback writes the weights in force before
// the rollout as the routes, a new revision and status rolled_back, so
// the next plan shows the drift.
func testRolloutRolledBack(e *env) {
	t := e.t
	ep := rolloutFixture(e)
	st := *status(t, ep)
	msg := "rollout rolled back at step 1 (10%): route main (v2): max_error_rate 0.4 over 40 requests exceeded 0.05"
	next := registry.EndRollout(st, registry.RolloutRolledBack, msg, at(e.clock.Now()))
	got, err := e.s.RecordRollout(e.ctx, registry.Actor{Name: "system"}, "ep", st.ID, st.Seq, next, registry.ActionEndpointRolloutRolledBack)
	ok(t, err)
	equal(t, "routes are the weights before the rollout", got.Routes, one("main", 1))
	equal(t, "in force", got.RoutesInForce(), one("main", 1))
	equal(t, "status", got.Status, registry.EndpointStatusRolledBack)
	equal(t, "status message", got.StatusMessage, msg)
	equal(t, "rollout state", status(t, got).State, registry.RolloutRolledBack)
	equal(t, "rollout message", status(t, got).Message, msg)
	equal(t, "new revision", got.Revision, ep.Revision+1)
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	equal(t, "last event", evs[len(evs)-1].Action, registry.ActionEndpointRolloutRolledBack)

	// Applying the configuration again starts a new rollout.
	again, err := e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(one("main", 2))}, registry.Precondition{IfRevision: got.Revision})
	ok(t, err)
	equal(t, "new rollout", status(t, again).State, registry.RolloutProgressing)
	equal(t, "status healthy again", again.Status, registry.EndpointStatusHealthy)
}

// testRolloutControl: pause, resume and abort for an operator, each an
// event, conflict when the state does not allow it.
func testRolloutControl(e *env) {
	t := e.t
	ep := rolloutFixture(e)
	st := status(t, ep)
	op := registry.Actor{Name: "oncall", RequestID: "req-op"}

	e.clock.Advance(10 * time.Second)
	got, err := e.s.ControlRollout(e.ctx, op, "ep", registry.RolloutOpPause, "looking at dashboards")
	ok(t, err)
	ps := status(t, got)
	equal(t, "paused", ps.State, registry.RolloutPaused)
	if ps.NextStepAt != nil {
		t.Errorf("paused rollout has a next step at %v", ps.NextStepAt)
	}
	equal(t, "seq", ps.Seq, st.Seq+1)
	equal(t, "weights in force kept", ps.Routes, st.Routes)
	equal(t, "revision kept", got.Revision, ep.Revision)
	if !strings.Contains(ps.Message, "oncall") || !strings.Contains(ps.Message, "looking at dashboards") {
		t.Errorf("pause message %q", ps.Message)
	}
	_, err = e.s.ControlRollout(e.ctx, op, "ep", registry.RolloutOpPause, "")
	wantCode(t, err, registry.CodeConflict, "paused")
	active, err := e.s.ActiveRollouts(e.ctx)
	ok(t, err)
	equal(t, "a paused rollout is active", len(active), 1)

	e.clock.Advance(time.Hour)
	now := at(e.clock.Now())
	got, err = e.s.ControlRollout(e.ctx, op, "ep", registry.RolloutOpResume, "")
	ok(t, err)
	rs := status(t, got)
	equal(t, "progressing", rs.State, registry.RolloutProgressing)
	equal(t, "bake restarts", rs.StepStarted, now)
	equal(t, "next step", *rs.NextStepAt, now.Add(time.Minute))
	_, err = e.s.ControlRollout(e.ctx, op, "ep", registry.RolloutOpResume, "")
	wantCode(t, err, registry.CodeConflict)

	got, err = e.s.ControlRollout(e.ctx, op, "ep", registry.RolloutOpAbort, "bad canary")
	ok(t, err)
	as := status(t, got)
	equal(t, "aborted", as.State, registry.RolloutAborted)
	equal(t, "message", as.Message, "aborted by oncall: bad canary")
	equal(t, "routes back to the weights before", got.Routes, one("main", 1))
	equal(t, "status", got.Status, registry.EndpointStatusRolledBack)
	equal(t, "status message", got.StatusMessage, "aborted by oncall: bad canary")
	for _, o := range []string{registry.RolloutOpPause, registry.RolloutOpResume, registry.RolloutOpAbort} {
		_, err = e.s.ControlRollout(e.ctx, op, "ep", o, "")
		wantCode(t, err, registry.CodeConflict)
	}
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	var acts []string
	for _, ev := range evs[len(evs)-3:] {
		acts = append(acts, ev.Action)
		if ev.Actor != "oncall" || ev.RequestID != "req-op" {
			t.Errorf("event %s by %q (%q)", ev.Action, ev.Actor, ev.RequestID)
		}
	}
	equal(t, "events", acts, []string{registry.ActionEndpointRolloutPaused, registry.ActionEndpointRolloutResumed, registry.ActionEndpointRolloutAborted})

	_, err = e.s.ControlRollout(e.ctx, op, "ep", "restart", "")
	wantField(t, err, "op")
	_, err = e.s.ControlRollout(e.ctx, op, "ep", registry.RolloutOpPause, strings.Repeat("x", registry.MaxReasonLen+1))
	wantField(t, err, "reason")
	_, err = e.s.ControlRollout(e.ctx, op, "nope", registry.RolloutOpPause, "")
	wantCode(t, err, registry.CodeNotFound)
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "plain", Model: "churn", Routes: one("main", 1)})
	ok(t, err)
	_, err = e.s.ControlRollout(e.ctx, op, "plain", registry.RolloutOpPause, "")
	wantCode(t, err, registry.CodeConflict, "no rollout")
}

// testRolloutClearCompletes: removing the configuration while a rollout
// runs completes it at once with the configured weights in force.
func testRolloutClearCompletes(e *env) {
	t := e.t
	rolloutFixture(e)
	got, err := e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{ClearRollout: true}, registry.Precondition{})
	ok(t, err)
	if got.Rollout != nil {
		t.Fatalf("rollout after clearing: %+v", got.Rollout)
	}
	equal(t, "configured weights in force", got.RoutesInForce(), one("main", 2))
	active, err := e.s.ActiveRollouts(e.ctx)
	ok(t, err)
	equal(t, "no active rollout", len(active), 0)
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	last := evs[len(evs)-1]
	equal(t, "event", last.Action, registry.ActionEndpointRolloutCompleted)
	if !strings.Contains(string(last.After), "configuration was removed") {
		t.Errorf("completed event does not say why: %s", last.After)
	}
	names, err := e.s.VersionEndpoints(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "v1 serves nothing", names, []string{})
}

// testRolloutValidation: the bake is judged against the guard as stored
// after the patch.
func testRolloutValidation(e *env) {
	t := e.t
	endpointFixture(e)
	guard := &registry.Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "5m"}
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: one("main", 1), Guard: guard, Rollout: rolloutSpec()})
	wantField(t, err, "rollout.bake")
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: one("main", 1), Guard: guard})
	ok(t, err)
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Rollout: rolloutSpec()}, registry.Precondition{})
	wantField(t, err, "rollout.bake")
	spec := rolloutSpec()
	spec.Bake = "5m"
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Rollout: spec}, registry.Precondition{})
	ok(t, err)
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Guard: &registry.Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "10m"}}, registry.Precondition{})
	wantField(t, err, "rollout.bake")
	ep, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "refused patches change nothing", ep.Guard, guard)
}

// testRolloutObservations: each process's cumulative counts replace its
// own earlier ones; reads sum the processes of one step.
func testRolloutObservations(e *env) {
	t := e.t
	bins := func(pairs ...int) []int64 {
		b := make([]int64, registry.LatencyBins)
		for i := 0; i < len(pairs); i += 2 {
			b[pairs[i]] = int64(pairs[i+1])
		}
		return b
	}
	obs := func(route string, step int, req, errs int64, lat []int64) registry.RolloutObservation {
		return registry.RolloutObservation{Endpoint: "ep", RolloutID: 7, Step: step, Route: route, Version: 2, Requests: req, Errors: errs, Latency: lat}
	}
	ok(t, e.s.RecordRolloutObservations(e.ctx, "gw-a", []registry.RolloutObservation{obs("main", 1, 10, 1, bins(0, 10)), obs("main@v1", 1, 90, 0, bins(1, 90))}))
	ok(t, e.s.RecordRolloutObservations(e.ctx, "gw-a", []registry.RolloutObservation{obs("main", 1, 20, 2, bins(0, 15, 3, 5))}))
	ok(t, e.s.RecordRolloutObservations(e.ctx, "gw-b", []registry.RolloutObservation{obs("main", 1, 5, 5, bins(11, 5)), obs("main", 2, 1, 0, bins(0, 1))}))
	got, err := e.s.RolloutObservations(e.ctx, "ep", 7, 1)
	ok(t, err)
	want := []registry.RolloutObservation{obs("main", 1, 25, 7, bins(0, 15, 3, 5, 11, 5)), obs("main@v1", 1, 90, 0, bins(1, 90))}
	want[1].Version = 2
	equal(t, "summed observations", got, want)
	got, err = e.s.RolloutObservations(e.ctx, "ep", 7, 3)
	ok(t, err)
	equal(t, "a step without observations", got, []registry.RolloutObservation{})

	err = e.s.RecordRolloutObservations(e.ctx, "", []registry.RolloutObservation{obs("main", 1, 1, 0, nil)})
	wantField(t, err, "process")
	err = e.s.RecordRolloutObservations(e.ctx, "gw-a", []registry.RolloutObservation{obs("main", 1, 1, 2, nil)})
	wantField(t, err, "observations[0]")
	err = e.s.RecordRolloutObservations(e.ctx, "gw-a", []registry.RolloutObservation{obs("main", 1, 1, 0, make([]int64, registry.LatencyBins+1))})
	wantField(t, err, "observations[0].latency")
}

// testRolloutLeases: one holder at a time; free once expired or released.
func testRolloutLeases(e *env) {
	t := e.t
	now := Epoch
	acquire := func(holder string, at time.Time) bool {
		t.Helper()
		held, err := e.s.AcquireLease(e.ctx, "rollouts", holder, at, 3*time.Second)
		ok(t, err)
		return held
	}
	equal(t, "a takes the free lease", acquire("a", now), true)
	equal(t, "b waits", acquire("b", now.Add(time.Second)), false)
	equal(t, "a renews", acquire("a", now.Add(2*time.Second)), true)
	equal(t, "b still waits (renewed)", acquire("b", now.Add(4*time.Second)), false)
	equal(t, "b takes it once expired", acquire("b", now.Add(6*time.Second)), true)
	equal(t, "a lost it", acquire("a", now.Add(6*time.Second)), false)
	equal(t, "another lease is apart", func() bool {
		held, err := e.s.AcquireLease(e.ctx, "other", "a", now.Add(6*time.Second), time.Second)
		ok(t, err)
		return held
	}(), true)
	ok(t, e.s.ReleaseLease(e.ctx, "rollouts", "a")) // not the holder: nothing
	equal(t, "a release by a non-holder frees nothing", acquire("a", now.Add(7*time.Second)), false)
	ok(t, e.s.ReleaseLease(e.ctx, "rollouts", "b"))
	equal(t, "a takes it once released", acquire("a", now.Add(7*time.Second)), true)
	_, err := e.s.AcquireLease(e.ctx, "rollouts", "", now, time.Second)
	wantField(t, err, "lease")

	// Replicas starting at once on a lease never taken: one wins.
	const replicas = 6
	wins := make(chan bool, replicas)
	for i := range replicas {
		go func() {
			held, err := e.s.AcquireLease(e.ctx, "fresh", fmt.Sprintf("r%d", i), now, time.Minute)
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
			wins <- held
		}()
	}
	n := 0
	for range replicas {
		if <-wins {
			n++
		}
	}
	equal(t, "holders of a lease taken at once", n, 1)
}

// testRolloutGuardRollback: the guard tripping during a rollout ends it
// rolled_back with the weights before it, in one transaction with both
// events.
func testRolloutGuardRollback(e *env) {
	t := e.t
	ep := rolloutFixture(e)
	st := status(t, ep)
	// What the gateway's guard saw and moved: the weights in force.
	moved := []registry.Route{st.Routes[0], st.Routes[1]}
	moved[1].Weight, moved[0].Weight = 100, 0
	msg := `route "main" (v2): error rate 0.50 over 30 requests exceeded 0.05`
	got, err := e.s.RecordGuardRollback(e.ctx, registry.Actor{Name: "system"}, "ep", ep.Revision, moved, msg)
	ok(t, err)
	equal(t, "routes", got.Routes, one("main", 1))
	equal(t, "in force", got.RoutesInForce(), one("main", 1))
	equal(t, "status", got.Status, registry.EndpointStatusRolledBack)
	equal(t, "rollout state", status(t, got).State, registry.RolloutRolledBack)
	equal(t, "rollout message", status(t, got).Message, msg)
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	equal(t, "events", actions(evs[len(evs)-2:]), []string{registry.ActionEndpointRolloutRolledBack, registry.ActionEndpointGuardRollback})
	read, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "read back", read, got)
}

// testRolloutFlagAborts: flagging a version an active rollout routes to
// aborts it (the weights before it back in force) in the flag's
// transaction, and the drain then judges those weights.
func testRolloutFlagAborts(e *env) {
	t := e.t
	rolloutFixture(e)
	_, err := e.s.UpdateVersion(e.ctx, registry.Actor{Name: "oncall"}, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("bad outputs")}, registry.Precondition{})
	ok(t, err)
	got, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "routes back before the rollout", got.Routes, one("main", 1))
	st := status(t, got)
	equal(t, "state", st.State, registry.RolloutAborted)
	if !strings.Contains(st.Message, "version 2 flagged (bad outputs)") {
		t.Errorf("message %q", st.Message)
	}
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	equal(t, "event", evs[len(evs)-1].Action, registry.ActionEndpointRolloutAborted)

	// Flagging the version the rollout started from: aborted, and the
	// drain takes v1's weight (nowhere to go: every weight 0).
	endpointFixtureMore(e)
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(one("main", 3))}, registry.Precondition{})
	ok(t, err)
	_, err = e.s.UpdateVersion(e.ctx, registry.Actor{Name: "oncall"}, "churn", 1, registry.ModelVersionPatch{Flagged: ptr(true)}, registry.Precondition{})
	ok(t, err)
	got, err = e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "aborted", status(t, got).State, registry.RolloutAborted)
	equal(t, "drained", got.Status, registry.EndpointStatusDrained)
	equal(t, "weights", weights(got.Routes), "main/v1=0")
	evs = e.events(registry.EventFilter{Endpoint: "ep"})
	equal(t, "events", actions(evs[len(evs)-2:]), []string{registry.ActionEndpointRolloutAborted, registry.ActionEndpointFlagDrain})

	// Nothing is served: there is nothing to move gradually from, so
	// setting routes applies them at once.
	got, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(one("main", 3))}, registry.Precondition{})
	ok(t, err)
	equal(t, "no rollout from an endpoint without weight", status(t, got).State, registry.RolloutAborted)
	equal(t, "in force at once", got.RoutesInForce(), one("main", 3))
}

func endpointFixtureMore(e *env) { e.version("churn") }
