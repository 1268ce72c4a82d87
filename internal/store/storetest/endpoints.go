package storetest

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var endpointCases = []testCase{
	{"EndpointCRUD", testEndpointCRUD},
	{"EndpointRouteChecks", testEndpointRouteChecks},
	{"EndpointGuardRollback", testEndpointGuardRollback},
	{"EndpointBlocksDeletes", testEndpointBlocksDeletes},
	{"EndpointServesStage", testEndpointServesStage},
	{"EndpointTimeout", testEndpointTimeout},
	{"EndpointRouteMatch", testEndpointRouteMatch},
}

func routes(stableVersion int64, stableWeight int, canaryVersion int64) []registry.Route {
	return []registry.Route{
		{Name: "stable", Version: stableVersion, UpstreamURL: "http://churn-stable:8080", Weight: stableWeight},
		{Name: "canary", Version: canaryVersion, UpstreamURL: "http://churn-canary:8080", Weight: 100 - stableWeight},
	}
}

// endpointFixture creates model churn with versions 1 and 2.
func endpointFixture(e *env) {
	e.model("churn")
	e.version("churn")
	e.version("churn")
}

func testEndpointCRUD(e *env) {
	t := e.t
	endpointFixture(e)
	guard := &registry.Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"}
	in := registry.EndpointCreate{Name: "churn-api", Model: "churn", Routes: routes(1, 90, 2), StickyHeader: "X-User", Guard: guard}
	ep, err := e.s.CreateEndpoint(e.ctx, e.actor, in)
	ok(t, err)
	want := &registry.Endpoint{Name: "churn-api", Model: "churn", Routes: in.Routes, StickyHeader: "X-User", Guard: guard,
		Status: registry.EndpointStatusHealthy, StatusMessage: "", URL: "", CreatedAt: at(Epoch), UpdatedAt: at(Epoch), Revision: 1}
	equal(t, "created endpoint", ep, want)
	got, err := e.s.GetEndpoint(e.ctx, "churn-api")
	ok(t, err)
	equal(t, "read endpoint", got, want)

	_, err = e.s.CreateEndpoint(e.ctx, e.actor, in)
	wantCode(t, err, registry.CodeAlreadyExists, `"churn-api"`)
	bad := in
	bad.Name = "other"
	bad.Routes = routes(1, 90, 2)
	bad.Routes[1].Weight = 5
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, bad)
	wantField(t, err, "routes")

	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "b-plain", Model: "churn", Routes: routes(2, 100, 1)})
	ok(t, err)
	p, err := e.s.ListEndpoints(e.ctx, registry.ListOptions{PageSize: 1})
	ok(t, err)
	if len(p.Items) != 1 || p.Items[0].Name != "b-plain" || p.NextPageToken == "" {
		t.Fatalf("first page: %+v", p)
	}
	p, err = e.s.ListEndpoints(e.ctx, registry.ListOptions{PageSize: 1, PageToken: p.NextPageToken})
	ok(t, err)
	if len(p.Items) != 1 || p.Items[0].Name != "churn-api" || p.NextPageToken != "" {
		t.Fatalf("second page: %+v", p)
	}
	_, err = e.s.ListEndpoints(e.ctx, registry.ListOptions{PageToken: "bm9wZQ"})
	wantField(t, err, "page_token")
	plain, err := e.s.GetEndpoint(e.ctx, "b-plain")
	ok(t, err)
	if plain.Guard != nil || plain.Routes == nil {
		t.Errorf("endpoint without guard: %+v", plain)
	}

	e.clock.Advance(time.Minute)
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{Routes: ptr(routes(1, 50, 2))}, registry.Precondition{IfRevision: 1})
	ok(t, err)
	equal(t, "new routes", ep.Routes, routes(1, 50, 2))
	equal(t, "revision", ep.Revision, int64(2))
	equal(t, "updated_at", ep.UpdatedAt, at(Epoch.Add(time.Minute)))
	equal(t, "created_at", ep.CreatedAt, at(Epoch))
	equal(t, "guard kept", ep.Guard, guard)

	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{StickyHeader: ptr(""), Guard: &registry.Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "1m"}}, registry.Precondition{})
	ok(t, err)
	equal(t, "sticky header cleared", ep.StickyHeader, "")
	equal(t, "guard replaced", ep.Guard, &registry.Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "1m"})
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{ClearGuard: true}, registry.Precondition{IfRevision: 3})
	ok(t, err)
	if ep.Guard != nil || ep.Revision != 4 {
		t.Errorf("clear guard: guard %+v revision %d", ep.Guard, ep.Revision)
	}
	events := e.latestEvent()
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{StickyHeader: ptr("")}, registry.Precondition{})
	ok(t, err)
	equal(t, "no-op revision", ep.Revision, int64(4))
	equal(t, "no-op writes no event", e.latestEvent(), events)
	got, err = e.s.GetEndpoint(e.ctx, "churn-api")
	ok(t, err)
	equal(t, "read after updates", got, ep)

	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{StickyHeader: ptr("X-A")}, registry.Precondition{IfRevision: 3})
	wantCode(t, err, registry.CodePreconditionFailed, "4", "3")
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{StickyHeader: ptr("bad header")}, registry.Precondition{})
	wantField(t, err, "sticky_header")
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "nope", registry.EndpointPatch{StickyHeader: ptr("X-A")}, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, `endpoint "nope" not found`)
	_, err = e.s.GetEndpoint(e.ctx, "nope")
	wantCode(t, err, registry.CodeNotFound, `endpoint "nope" not found`)

	err = e.s.DeleteEndpoint(e.ctx, e.actor, "churn-api", registry.Precondition{IfRevision: 1})
	wantCode(t, err, registry.CodePreconditionFailed, "4", "1")
	ok(t, e.s.DeleteEndpoint(e.ctx, e.actor, "churn-api", registry.Precondition{IfRevision: 4}))
	_, err = e.s.GetEndpoint(e.ctx, "churn-api")
	wantCode(t, err, registry.CodeNotFound)
	err = e.s.DeleteEndpoint(e.ctx, e.actor, "churn-api", registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound)
	// The name is free again.
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, in)
	ok(t, err)
}

func testEndpointRouteChecks(e *env) {
	t := e.t
	endpointFixture(e)
	_, err := e.s.UpdateVersion(e.ctx, e.actor, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("drift")}, registry.Precondition{})
	ok(t, err)
	e.version("churn")
	events := e.latestEvent()

	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "nope", Routes: routes(1, 100, 2)})
	re := wantCode(t, err, registry.CodeInvalidArgument, `"nope"`)
	equal(t, "field", re.Field, "model")
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 100, 9)})
	wantField(t, err, "routes[1].version")
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 90, 2)})
	wantRule(t, err, "flagged")
	equal(t, "field of the flagged route", registry.AsError(err).Field, "routes[1].version")
	_, err = e.s.GetEndpoint(e.ctx, "ep")
	wantCode(t, err, registry.CodeNotFound)

	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 100, 3)})
	ok(t, err)
	events++
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(routes(2, 100, 3))}, registry.Precondition{})
	wantRule(t, err, "flagged")
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(routes(9, 100, 3))}, registry.Precondition{})
	wantField(t, err, "routes[0].version")
	equal(t, "refused writes write no event", e.latestEvent(), events)
	got, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "routes unchanged", got.Routes, routes(1, 100, 3))

	// Flagging a version routed at weight 0 moves nothing (a version with
	// traffic loses it at once: testFlagDrainsServingRoutes).
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 3, registry.ModelVersionPatch{Flagged: ptr(true)}, registry.Precondition{})
	ok(t, err)
	got, err = e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "routes after flagging", got.Routes, routes(1, 100, 3))
	equal(t, "revision after flagging", got.Revision, int64(1))
}

func testEndpointGuardRollback(e *env) {
	t := e.t
	endpointFixture(e)
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 90, 2),
		Guard: &registry.Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"}})
	ok(t, err)
	system := registry.Actor{Name: "system", RequestID: "guard-1"}
	e.clock.Advance(time.Minute)
	ep, err := e.s.RecordGuardRollback(e.ctx, system, "ep", 1, routes(1, 100, 2), "route canary: 12% errors > 5%")
	ok(t, err)
	equal(t, "status", ep.Status, registry.EndpointStatusRolledBack)
	equal(t, "status message", ep.StatusMessage, "route canary: 12% errors > 5%")
	equal(t, "routes", ep.Routes, routes(1, 100, 2))
	equal(t, "revision", ep.Revision, int64(2))
	equal(t, "updated_at", ep.UpdatedAt, at(Epoch.Add(time.Minute)))
	got, err := e.s.GetEndpoint(e.ctx, "ep")
	ok(t, err)
	equal(t, "read after rollback", got, ep)

	evs := e.events(registry.EventFilter{Endpoint: "ep"})
	last := evs[len(evs)-1]
	if last.Action != registry.ActionEndpointGuardRollback || last.Actor != "system" || last.RequestID != "guard-1" ||
		last.SubjectType != "endpoint" || last.Subject != "ep" || last.Model != "churn" {
		t.Errorf("rollback event: %+v", last)
	}
	var before, after registry.Endpoint
	ok(t, json.Unmarshal(last.Before, &before))
	ok(t, json.Unmarshal(last.After, &after))
	if before.Status != registry.EndpointStatusHealthy || before.Routes[1].Weight != 10 || after.Status != registry.EndpointStatusRolledBack || after.Routes[1].Weight != 0 {
		t.Errorf("rollback event before/after: %+v / %+v", before, after)
	}

	events := e.latestEvent()
	_, err = e.s.RecordGuardRollback(e.ctx, system, "ep", 1, routes(1, 100, 2), "again")
	wantCode(t, err, registry.CodePreconditionFailed, "2", "1")
	_, err = e.s.RecordGuardRollback(e.ctx, system, "nope", 1, routes(1, 100, 2), "x")
	wantCode(t, err, registry.CodeNotFound)
	_, err = e.s.RecordGuardRollback(e.ctx, system, "ep", 2, routes(1, 100, 9), "x")
	wantField(t, err, "routes[1].version")
	equal(t, "refused rollbacks write no event", e.latestEvent(), events)

	// Changing anything but routes keeps the rolled_back status; setting
	// routes resets it.
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{StickyHeader: ptr("X-User")}, registry.Precondition{})
	ok(t, err)
	equal(t, "status after a sticky header change", ep.Status, registry.EndpointStatusRolledBack)
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: ptr(routes(1, 100, 2))}, registry.Precondition{IfRevision: 3})
	ok(t, err)
	equal(t, "status after setting routes", ep.Status, registry.EndpointStatusHealthy)
	equal(t, "status message after setting routes", ep.StatusMessage, "")
	equal(t, "revision", ep.Revision, int64(4))
}

func testEndpointBlocksDeletes(e *env) {
	t := e.t
	endpointFixture(e)
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 100, 2)})
	ok(t, err)
	err = e.s.DeleteModel(e.ctx, e.actor, "churn", registry.DeleteModelOptions{Force: true})
	wantCode(t, err, registry.CodeConflict, `"ep"`)
	err = e.s.DeleteVersion(e.ctx, e.actor, "churn", 2, registry.Precondition{})
	wantCode(t, err, registry.CodeConflict, `"ep"`)

	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "ep", registry.EndpointPatch{Routes: &[]registry.Route{
		{Name: "stable", Version: 1, UpstreamURL: "http://churn-stable:8080", Weight: 100},
	}}, registry.Precondition{})
	ok(t, err)
	ok(t, e.s.DeleteVersion(e.ctx, e.actor, "churn", 2, registry.Precondition{}))
	err = e.s.DeleteVersion(e.ctx, e.actor, "churn", 1, registry.Precondition{})
	wantCode(t, err, registry.CodeConflict, `"ep"`)
	ok(t, e.s.DeleteEndpoint(e.ctx, e.actor, "ep", registry.Precondition{}))
	ok(t, e.s.DeleteModel(e.ctx, e.actor, "churn", registry.DeleteModelOptions{Force: true}))
}

// testEndpointServesStage: an endpoint that declares the stage it serves
// only routes to versions that hold that stage or satisfy its policy, on
// create, on update, when the stage itself changes, and in dry runs.
func testEndpointServesStage(e *env) {
	t := e.t
	e.model("churn", func(mc *registry.ModelCreate) {
		mc.StagePolicies = map[string]registry.StagePolicy{"production": {MinMetrics: map[string]float64{"auc": 0.9}}}
	})
	e.version("churn", withMetrics(map[string]float64{"auc": 0.95})) // 1: holds production
	e.version("churn", withMetrics(map[string]float64{"auc": 0.5}))  // 2: fails the policy
	e.version("churn", withMetrics(map[string]float64{"auc": 0.92})) // 3: satisfies it
	e.assign("churn", "production", 1)

	bad := registry.EndpointCreate{Name: "churn-api", Model: "churn", Stage: "production", Routes: routes(1, 90, 2)}
	events := e.latestEvent()
	for name, create := range map[string]func(context.Context, registry.Actor, registry.EndpointCreate) (*registry.Endpoint, error){
		"create": e.s.CreateEndpoint, "dry-run create": e.s.CheckEndpointCreate,
	} {
		_, err := create(e.ctx, e.actor, bad)
		re := wantCode(t, err, registry.CodePolicyViolation, `"production"`, "routes[1].version", `"canary"`)
		if re.Rule != "min_metrics" || re.Field != "routes[1].version" {
			t.Errorf("%s: rule %q field %q, want min_metrics on routes[1].version", name, re.Rule, re.Field)
		}
	}
	equal(t, "refused creates write nothing", e.latestEvent(), events)
	_, err := e.s.GetEndpoint(e.ctx, "churn-api")
	wantCode(t, err, registry.CodeNotFound)

	good := bad
	good.Routes = routes(1, 90, 3)
	dry, err := e.s.CheckEndpointCreate(e.ctx, e.actor, good)
	ok(t, err)
	equal(t, "dry run answers the endpoint", dry.Stage, "production")
	_, err = e.s.GetEndpoint(e.ctx, "churn-api")
	wantCode(t, err, registry.CodeNotFound)
	ep, err := e.s.CreateEndpoint(e.ctx, e.actor, good)
	ok(t, err)
	equal(t, "stage stored", ep.Stage, "production")

	// Routing to version 2 is refused, in a dry run too, and nothing changes.
	r2 := routes(1, 50, 2)
	for name, update := range map[string]func(context.Context, registry.Actor, string, registry.EndpointPatch, registry.Precondition) (*registry.Endpoint, error){
		"update": e.s.UpdateEndpoint, "dry-run update": e.s.CheckEndpointUpdate,
	} {
		_, err = update(e.ctx, e.actor, "churn-api", registry.EndpointPatch{Routes: &r2}, registry.Precondition{})
		if re := wantCode(t, err, registry.CodePolicyViolation); re.Rule != "min_metrics" {
			t.Errorf("%s: rule %q", name, re.Rule)
		}
	}
	got, err := e.s.GetEndpoint(e.ctx, "churn-api")
	ok(t, err)
	equal(t, "endpoint unchanged", got, ep)

	// Without a declared stage the same routes are accepted; declaring the
	// stage again while they route to version 2 is refused.
	none := ""
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{Stage: &none, Routes: &r2}, registry.Precondition{})
	ok(t, err)
	prod := "production"
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{Stage: &prod}, registry.Precondition{})
	wantRule(t, err, "min_metrics")

	// A stage nobody holds yet: versions must satisfy its (absent) policy,
	// and a flagged one never does.
	staging := "staging"
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "churn-api", registry.EndpointPatch{Stage: &staging}, registry.Precondition{})
	ok(t, err)
}

// testEndpointTimeout: the upstream timeout is stored, changed, cleared
// and bumps the revision; a bad one is refused naming the field.
func testEndpointTimeout(e *env) {
	t := e.t
	endpointFixture(e)
	in := registry.EndpointCreate{Name: "timed", Model: "churn", Routes: routes(1, 90, 2), Timeout: "2s"}
	ep, err := e.s.CreateEndpoint(e.ctx, e.actor, in)
	ok(t, err)
	equal(t, "created timeout", ep.Timeout, "2s")
	got, err := e.s.GetEndpoint(e.ctx, "timed")
	ok(t, err)
	equal(t, "read timeout", got.Timeout, "2s")
	long := "2m"
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "timed", registry.EndpointPatch{Timeout: &long}, registry.Precondition{})
	ok(t, err)
	equal(t, "updated timeout", ep.Timeout, "2m")
	equal(t, "revision", ep.Revision, int64(2))
	none := ""
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "timed", registry.EndpointPatch{Timeout: &none}, registry.Precondition{})
	ok(t, err)
	equal(t, "cleared timeout", ep.Timeout, "")
	for _, bad := range []string{"soon", "50ms", "11m"} {
		_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "timed", registry.EndpointPatch{Timeout: &bad}, registry.Precondition{})
		wantField(t, err, "timeout")
	}
}

// testEndpointRouteMatch: a route's header match is stored with the route
// and changed or removed with the routes; a matched route gets traffic
// whatever its weight, so it may not point at a flagged version even at
// weight 0, and flagging its version removes the match with the weight in
// the flag's transaction.
func testEndpointRouteMatch(e *env) {
	t := e.t
	endpointFixture(e)
	rs := routes(1, 100, 2)
	rs[1].Match = &registry.RouteMatch{Header: "X-Canary", Value: "always"}
	ep, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "matched", Model: "churn", Routes: rs})
	ok(t, err)
	equal(t, "created routes", ep.Routes, rs)
	got, err := e.s.GetEndpoint(e.ctx, "matched")
	ok(t, err)
	equal(t, "read routes", got.Routes, rs)

	prefix := routes(1, 100, 2)
	prefix[1].Match = &registry.RouteMatch{Header: "x-tester", Value: "team-", Prefix: true}
	ep, err = e.s.UpdateEndpoint(e.ctx, e.actor, "matched", registry.EndpointPatch{Routes: &prefix}, registry.Precondition{})
	ok(t, err)
	equal(t, "updated routes", ep.Routes, prefix)

	bad := routes(1, 100, 2)
	bad[1].Match = &registry.RouteMatch{Header: "Authorization", Value: "Bearer x"}
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "matched", registry.EndpointPatch{Routes: &bad}, registry.Precondition{})
	wantField(t, err, "routes[1].match.header")

	// Flagging version 2 drains the matched weight-0 route: the match goes.
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 2, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("bias")}, registry.Precondition{})
	ok(t, err)
	got, err = e.s.GetEndpoint(e.ctx, "matched")
	ok(t, err)
	equal(t, "drained routes", got.Routes, routes(1, 100, 2))
	equal(t, "drained status", got.Status, registry.EndpointStatusDrained)
	equal(t, "drained message", got.StatusMessage, `version 2 flagged (bias): route "canary" lost its header match`)

	// A match on the flagged version is refused, even at weight 0; the same
	// route without a match is not.
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "matched", registry.EndpointPatch{Routes: &prefix}, registry.Precondition{})
	wantRule(t, err, "flagged")
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "matched-2", Model: "churn", Routes: rs})
	wantRule(t, err, "flagged")
	plain := routes(1, 100, 2)
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "matched", registry.EndpointPatch{Routes: &plain}, registry.Precondition{})
	ok(t, err)
}
