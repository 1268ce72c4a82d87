package storetest

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var flagDrainCases = []testCase{
	{"FlagDrainsServingRoutes", testFlagDrainsServingRoutes},
	{"FlaggedRouteAtWeightZero", testFlaggedRouteAtWeightZero},
	{"GuardDegraded", testGuardDegraded},
	{"FlagByStageRestrictedActor", testFlagByStageRestrictedActor},
	{"FlagRemovesShadow", testFlagRemovesShadow},
}

func route(name string, version int64, weight int) registry.Route {
	return registry.Route{Name: name, Version: version, UpstreamURL: "http://churn-" + name + ":8080", Weight: weight}
}

// testFlagDrainsServingRoutes: flagging a version takes its traffic away in
// the same transaction, endpoint by endpoint: the weight moves to the
// largest route to an unflagged version, or nowhere (every weight 0).
func testFlagDrainsServingRoutes(e *env) {
	t := e.t
	e.model("churn")
	for range 3 {
		e.version("churn")
	}
	create := func(name string, rs ...registry.Route) {
		t.Helper()
		_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: name, Model: "churn", Routes: rs})
		ok(t, err)
	}
	create("a-canary", route("stable", 1, 90), route("canary", 2, 10))
	create("b-only", route("only", 2, 100))
	create("c-idle", route("stable", 1, 100), route("canary", 2, 0))
	create("d-three", route("stable", 1, 30), route("canary", 2, 30), route("shadow", 3, 40))
	create("e-twice", route("x", 2, 50), route("y", 2, 20), route("z", 1, 30))
	create("f-other", route("stable", 1, 100))
	names, err := e.s.VersionEndpoints(e.ctx, "churn", 2)
	ok(t, err)
	equal(t, "endpoints routing to version 2", names, []string{"a-canary", "b-only", "c-idle", "d-three", "e-twice"})
	names, err = e.s.VersionEndpoints(e.ctx, "churn", 3)
	ok(t, err)
	equal(t, "endpoints routing to version 3", names, []string{"d-three"})
	names, err = e.s.VersionEndpoints(e.ctx, "nope", 1)
	ok(t, err)
	equal(t, "endpoints of an unknown model", len(names), 0)

	before := e.latestEvent()
	e.clock.Advance(time.Minute)
	flagger := registry.Actor{Name: "oncall", RequestID: "req-flag"}
	_, err = e.s.UpdateVersion(e.ctx, flagger, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("data leak")}, registry.Precondition{})
	ok(t, err)

	get := func(name string) *registry.Endpoint {
		t.Helper()
		ep, err := e.s.GetEndpoint(e.ctx, name)
		ok(t, err)
		return ep
	}
	drained := func(name string, want []registry.Route, msg ...string) {
		t.Helper()
		ep := get(name)
		equal(t, name+" routes", ep.Routes, want)
		equal(t, name+" status", ep.Status, registry.EndpointStatusDrained)
		equal(t, name+" revision", ep.Revision, int64(2))
		equal(t, name+" updated_at", ep.UpdatedAt, at(Epoch.Add(time.Minute)))
		for _, m := range append([]string{"version 2", "data leak"}, msg...) {
			if !strings.Contains(ep.StatusMessage, m) {
				t.Errorf("%s status message %q does not mention %q", name, ep.StatusMessage, m)
			}
		}
	}
	drained("a-canary", []registry.Route{route("stable", 1, 100), route("canary", 2, 0)}, `"canary"`, `"stable"`)
	drained("b-only", []registry.Route{route("only", 2, 0)}, "503")
	// The largest remaining route takes it all (shadow 40 over stable 30).
	drained("d-three", []registry.Route{route("stable", 1, 30), route("canary", 2, 0), route("shadow", 3, 70)})
	drained("e-twice", []registry.Route{route("x", 2, 0), route("y", 2, 0), route("z", 1, 100)})
	// Nothing to move: untouched, no event.
	for _, name := range []string{"c-idle", "f-other"} {
		if ep := get(name); ep.Revision != 1 || ep.Status != registry.EndpointStatusHealthy {
			t.Errorf("%s changed: revision %d status %q", name, ep.Revision, ep.Status)
		}
	}

	// One version.update event, then one endpoint.flag_drain per drained
	// endpoint, by the flagger, in the flag's transaction.
	var got []string
	for _, ev := range e.events(registry.EventFilter{}) {
		if ev.ID <= before {
			continue
		}
		got = append(got, ev.Action+" "+ev.Subject)
		if ev.Actor != "oncall" || ev.RequestID != "req-flag" || !ev.Time.Equal(at(Epoch.Add(time.Minute))) {
			t.Errorf("event %s %s: actor %q request %q time %v", ev.Action, ev.Subject, ev.Actor, ev.RequestID, ev.Time)
		}
		if ev.Action == registry.ActionEndpointFlagDrain {
			var b, a registry.Endpoint
			ok(t, json.Unmarshal(ev.Before, &b))
			ok(t, json.Unmarshal(ev.After, &a))
			if ev.SubjectType != "endpoint" || ev.Endpoint != ev.Subject || ev.Model != "churn" ||
				b.Status != registry.EndpointStatusHealthy || a.Status != registry.EndpointStatusDrained || a.Revision != b.Revision+1 {
				t.Errorf("flag_drain event %+v: before %+v after %+v", ev, b, a)
			}
		}
	}
	equal(t, "events of the flag", got, []string{
		"version.update churn/2",
		"endpoint.flag_drain a-canary", "endpoint.flag_drain b-only", "endpoint.flag_drain d-three", "endpoint.flag_drain e-twice",
	})

	// Every revision stamp a gateway polls moved with it.
	revs, err := e.s.EndpointRevisions(e.ctx)
	ok(t, err)
	for _, name := range []string{"a-canary", "b-only", "d-three", "e-twice"} {
		equal(t, name+" stamp", revs[name].Revision, int64(2))
	}

	// Flagging what is already flagged (a new reason), or unflagging,
	// leaves endpoints alone.
	mark := e.latestEvent()
	_, err = e.s.UpdateVersion(e.ctx, flagger, "churn", 2, registry.ModelVersionPatch{FlagReason: ptr("data leak, confirmed")}, registry.Precondition{})
	ok(t, err)
	_, err = e.s.UpdateVersion(e.ctx, flagger, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(false)}, registry.Precondition{})
	ok(t, err)
	equal(t, "events after re-flag and unflag", e.latestEvent(), mark+2)
	equal(t, "a-canary after unflag", get("a-canary").Routes, []registry.Route{route("stable", 1, 100), route("canary", 2, 0)})

	// A route whose only companion is flagged (at weight 0) has nowhere to
	// go: every weight ends at 0.
	_, err = e.s.UpdateVersion(e.ctx, flagger, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(true)}, registry.Precondition{})
	ok(t, err)
	create("g-last", route("main", 3, 100), route("bad", 2, 0))
	_, err = e.s.UpdateVersion(e.ctx, flagger, "churn", 3, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("bias")}, registry.Precondition{})
	ok(t, err)
	ep := get("g-last")
	equal(t, "g-last routes", ep.Routes, []registry.Route{route("main", 3, 0), route("bad", 2, 0)})
	equal(t, "g-last status", ep.Status, registry.EndpointStatusDrained)
	if !strings.Contains(ep.StatusMessage, "version 3") || !strings.Contains(ep.StatusMessage, "bias") {
		t.Errorf("g-last status message %q", ep.StatusMessage)
	}
	// d-three lost shadow (version 3) too; stable takes its weight.
	equal(t, "d-three after the second flag", get("d-three").Routes,
		[]registry.Route{route("stable", 1, 100), route("canary", 2, 0), route("shadow", 3, 0)})

	// Setting routes brings a drained endpoint back to healthy.
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "g-last", registry.EndpointPatch{Routes: ptr([]registry.Route{
		route("main", 3, 0), route("bad", 2, 0), route("new", 1, 100),
	})}, registry.Precondition{})
	ok(t, err)
	equal(t, "status after setting routes", ep.Status, registry.EndpointStatusHealthy)
	equal(t, "status message after setting routes", ep.StatusMessage, "")
}

// testFlaggedRouteAtWeightZero: a route may keep a flagged version at
// weight 0 (so a drained endpoint can be edited without removing the
// route), and such a route is not judged by the served stage's policy;
// any weight on a flagged version stays refused.
func testFlaggedRouteAtWeightZero(e *env) {
	t := e.t
	e.model("churn", func(mc *registry.ModelCreate) {
		mc.StagePolicies = map[string]registry.StagePolicy{"production": {MinMetrics: map[string]float64{"auc": 0.9}}}
	})
	e.version("churn", withMetrics(map[string]float64{"auc": 0.95})) // 1: holds production
	e.version("churn", withMetrics(map[string]float64{"auc": 0.5}))  // 2: fails the policy, flagged
	e.assign("churn", "production", 1)
	_, err := e.s.UpdateVersion(e.ctx, e.actor, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("drift")}, registry.Precondition{})
	ok(t, err)

	for _, stage := range []string{"", "production"} {
		name := "ep-" + stage
		if stage == "" {
			name = "ep"
		}
		in := registry.EndpointCreate{Name: name, Model: "churn", Stage: stage, Routes: []registry.Route{route("stable", 1, 100), route("canary", 2, 0)}}
		_, err = e.s.CheckEndpointCreate(e.ctx, e.actor, in)
		ok(t, err)
		ep, err := e.s.CreateEndpoint(e.ctx, e.actor, in)
		ok(t, err)
		equal(t, name+" routes", ep.Routes, in.Routes)

		for _, w := range [][2]int{{99, 1}, {0, 100}} {
			rs := []registry.Route{route("stable", 1, w[0]), route("canary", 2, w[1])}
			_, err = e.s.UpdateEndpoint(e.ctx, e.actor, name, registry.EndpointPatch{Routes: &rs}, registry.Precondition{})
			wantRule(t, err, "flagged")
			_, err = e.s.CheckEndpointUpdate(e.ctx, e.actor, name, registry.EndpointPatch{Routes: &rs}, registry.Precondition{})
			wantRule(t, err, "flagged")
		}
		rs := []registry.Route{route("canary", 2, 0), route("stable", 1, 100)}
		ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, name, registry.EndpointPatch{Routes: &rs}, registry.Precondition{})
		ok(t, err)
		equal(t, name+" routes reordered", ep.Routes, rs)
	}
	// Declaring the stage on an endpoint with a flagged weight-0 route.
	prod := "production"
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Stage: &prod}, registry.Precondition{})
	ok(t, err)
}

// testGuardDegraded: the guard records that every route failed without
// moving weight.
func testGuardDegraded(e *env) {
	t := e.t
	endpointFixture(e)
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 60, 2),
		Guard: &registry.Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"}})
	ok(t, err)
	system := registry.Actor{Name: "system", RequestID: "guard-1"}
	e.clock.Advance(time.Minute)
	ep, err := e.s.RecordGuardDegraded(e.ctx, system, "ep", 1, "every route is failing")
	ok(t, err)
	equal(t, "status", ep.Status, registry.EndpointStatusDegraded)
	equal(t, "status message", ep.StatusMessage, "every route is failing")
	equal(t, "routes kept", ep.Routes, routes(1, 60, 2))
	equal(t, "revision", ep.Revision, int64(2))
	equal(t, "updated_at", ep.UpdatedAt, at(Epoch.Add(time.Minute)))
	got, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "read after degraded", got, ep)
	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	if last := evs[len(evs)-1]; last.Action != registry.ActionEndpointGuardDegraded || last.Actor != "system" || last.RequestID != "guard-1" {
		t.Errorf("degraded event: %+v", last)
	}

	events := e.latestEvent()
	_, err = e.s.RecordGuardDegraded(e.ctx, system, "ep", 1, "again")
	wantCode(t, err, registry.CodePreconditionFailed, "2", "1")
	_, err = e.s.RecordGuardDegraded(e.ctx, system, "nope", 1, "x")
	wantCode(t, err, registry.CodeNotFound)
	_, err = e.s.RecordGuardDegraded(e.ctx, system, "ep", 2, strings.Repeat("x", registry.MaxReasonLen+1))
	wantField(t, err, "message")
	equal(t, "refused writes write no event", e.latestEvent(), events)

	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(routes(1, 100, 2))}, registry.Precondition{})
	ok(t, err)
	equal(t, "status after setting routes", ep.Status, registry.EndpointStatusHealthy)
}

// testFlagByStageRestrictedActor: an actor restricted to stages may flag
// only what decides nothing outside them, and may change only a flag
// reason it set itself. The store decides in the flag's transaction, so
// a stage assigned or an endpoint bound meanwhile cannot slip past; a
// refusal writes nothing (no drain, no event).
func testFlagByStageRestrictedActor(e *env) {
	t := e.t
	e.model("churn")
	for range 4 {
		e.version("churn")
	}
	e.assign("churn", "staging", 1)
	e.assign("churn", "production", 2)
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "prod", Model: "churn", Stage: "production",
		Routes: []registry.Route{route("stable", 2, 90), route("canary", 3, 10)}})
	ok(t, err)
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "stg", Model: "churn", Stage: "staging",
		Routes: []registry.Route{route("stable", 1, 100), route("idle", 4, 0)}})
	ok(t, err)
	ci := registry.Actor{Name: "ci", RequestID: "req-ci", Stages: []string{"staging"}}
	flag := func(a registry.Actor, version int64, reason string) error {
		_, err := e.s.UpdateVersion(e.ctx, a, "churn", version, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr(reason)}, registry.Precondition{})
		return err
	}
	setReason := func(a registry.Actor, version int64, reason string) error {
		_, err := e.s.UpdateVersion(e.ctx, a, "churn", version, registry.ModelVersionPatch{FlagReason: ptr(reason)}, registry.Precondition{})
		return err
	}
	refused := func(what string, err error, contains ...string) {
		t.Helper()
		before := e.latestEvent()
		if re := wantCode(t, err, registry.CodePermissionDenied, contains...); re != nil && re.Rule != "token_stages" {
			t.Errorf("%s: rule %q, want token_stages", what, re.Rule)
		}
		if got := e.latestEvent(); got != before {
			t.Errorf("%s: a refused flag wrote events", what)
		}
	}

	// Version 2 holds production; version 3 serves production traffic.
	refused("flag production's version", flag(ci, 2, "bias"), `"production"`)
	refused("flag a version serving production", flag(ci, 3, "bias"), `"production"`, `"prod"`)
	for _, name := range []string{"prod", "stg"} {
		ep, err := e.s.GetEndpoint(e.ctx, name)
		ok(t, err)
		equal(t, name+" status after refusals", ep.Status, registry.EndpointStatusHealthy)
	}
	// Version 1 holds staging and serves the staging endpoint: ci's own.
	ok(t, flag(ci, 1, "flaky"))
	stg, err := e.s.GetEndpoint(e.ctx, "stg")
	ok(t, err)
	equal(t, "stg routes after ci's flag", stg.Routes, []registry.Route{route("stable", 1, 0), route("idle", 4, 100)})
	// Its own reason it may change, but not unflag.
	ok(t, setReason(ci, 1, "flaky tests"))
	_, err = e.s.UpdateVersion(e.ctx, ci, "churn", 1, registry.ModelVersionPatch{Flagged: ptr(false)}, registry.Precondition{})
	refused("unflag", err)

	// A reason another actor set is not ci's to change, nor to erase.
	ok(t, flag(e.actor, 4, "leak"))
	refused("erase another's reason", setReason(ci, 4, ""), "flag_reason")
	refused("rewrite another's reason", flag(ci, 4, "false alarm"), "flag_reason")
	ok(t, flag(ci, 4, "leak"))
	// An unrestricted actor may do all of it.
	ok(t, setReason(e.actor, 1, "confirmed"))
	ok(t, flag(e.actor, 3, "bias"))
	v, err := e.s.GetVersion(e.ctx, "churn", 3)
	ok(t, err)
	equal(t, "version 3 flagged by an unrestricted actor", v.Flagged, true)
}

// testFlagRemovesShadow: a shadow route sends copies of real requests to
// its version, so flagging that version removes the shadow in the flag's
// transaction, and a shadow to a flagged version is refused.
func testFlagRemovesShadow(e *env) {
	t := e.t
	e.model("churn")
	e.version("churn")
	e.version("churn")
	shadow := route("shadow", 2, 0)
	shadow.Shadow, shadow.Share = true, 0.5
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: []registry.Route{route("stable", 1, 100), shadow}})
	ok(t, err)
	names, err := e.s.VersionEndpoints(e.ctx, "churn", 2)
	ok(t, err)
	equal(t, "endpoints routing to version 2", names, []string{"ep"})

	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("leak")}, registry.Precondition{})
	ok(t, err)
	ep, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "routes after the flag", ep.Routes, []registry.Route{route("stable", 1, 100)})
	equal(t, "status", ep.Status, registry.EndpointStatusDrained)
	equal(t, "message", ep.StatusMessage, `version 2 flagged (leak): shadow route "shadow" removed`)

	rs := []registry.Route{route("stable", 1, 100), shadow}
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: &rs}, registry.Precondition{})
	wantRule(t, err, "flagged")
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep2", Model: "churn", Routes: rs})
	wantRule(t, err, "flagged")
}
