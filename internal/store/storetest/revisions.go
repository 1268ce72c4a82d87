package storetest

import (
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The gateway reloads an endpoint when its stamp in EndpointRevisions
// changes, so every change to what an endpoint routes must change the
// stamp, and nothing else needs to.
var endpointRevisionCases = []testCase{
	{"EndpointRevisions", testEndpointRevisions},
}

// stamps is what EndpointRevisions must answer: every endpoint's
// revision and creation time as the endpoint itself reports them.
func (e *env) stamps() map[string]registry.EndpointRevision {
	e.t.Helper()
	eps := all(e.t, func(token string) (*registry.Page[registry.Endpoint], error) {
		return e.s.ListEndpoints(e.ctx, registry.ListOptions{PageToken: token})
	})
	out := map[string]registry.EndpointRevision{}
	for _, ep := range eps {
		rev := registry.EndpointRevision{Revision: ep.Revision, CreatedAt: ep.CreatedAt}
		if ep.Rollout != nil && ep.Rollout.RolloutStatus != nil {
			rev.RolloutSeq = ep.Rollout.Seq
		}
		out[ep.Name] = rev
	}
	return out
}

func (e *env) revisions() map[string]registry.EndpointRevision {
	e.t.Helper()
	revs, err := e.s.EndpointRevisions(e.ctx)
	ok(e.t, err)
	equal(e.t, "EndpointRevisions agrees with the endpoints", revs, e.stamps())
	return revs
}

func testEndpointRevisions(e *env) {
	t := e.t
	equal(t, "no endpoints", e.revisions(), map[string]registry.EndpointRevision{})

	endpointFixture(e)
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "a", Model: "churn", Routes: routes(1, 90, 2)})
	ok(t, err)
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "b", Model: "churn", Routes: routes(1, 100, 2)})
	ok(t, err)
	first := registry.EndpointRevision{Revision: 1, CreatedAt: at(Epoch)}
	revs := e.revisions()
	equal(t, "after creates", revs, map[string]registry.EndpointRevision{"a": first, "b": first})

	// Writes that do not change what an endpoint routes leave the stamps
	// alone: the gateway routes from the endpoint row only (flagging a
	// version no route gives weight drains nothing; deletes of routed
	// versions and models are refused).
	e.clock.Advance(time.Minute)
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "a", registry.EndpointPatch{Routes: ptr(routes(1, 90, 2))}, registry.Precondition{})
	ok(t, err) // a no-op: the same routes
	e.version("churn")
	e.version("churn")
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 4, registry.ModelVersionPatch{Flagged: ptr(true)}, registry.Precondition{})
	ok(t, err)
	_, err = e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{Description: ptr("churn model")}, registry.Precondition{})
	ok(t, err)
	e.assign("churn", "staging", 1)
	e.model("other")
	_, err = e.s.UpdateEndpoint(e.ctx, e.actor, "a", registry.EndpointPatch{Routes: ptr(routes(1, 50, 9))}, registry.Precondition{})
	wantField(t, err, "routes[1].version")
	_, err = e.s.RecordGuardRollback(e.ctx, registry.Actor{Name: "system"}, "a", 7, routes(1, 100, 2), "stale")
	wantCode(t, err, registry.CodePreconditionFailed)
	equal(t, "after unrelated, no-op and refused writes", e.revisions(), revs)

	// Every change to an endpoint moves its stamp, and only its own.
	steps := []struct {
		what  string
		write func() error
		want  int64
	}{
		{"routes", func() error {
			_, err := e.s.UpdateEndpoint(e.ctx, e.actor, "a", registry.EndpointPatch{Routes: ptr(routes(1, 100, 3))}, registry.Precondition{})
			return err
		}, 2},
		{"sticky header", func() error {
			_, err := e.s.UpdateEndpoint(e.ctx, e.actor, "a", registry.EndpointPatch{StickyHeader: ptr("X-User")}, registry.Precondition{})
			return err
		}, 3},
		{"guard", func() error {
			_, err := e.s.UpdateEndpoint(e.ctx, e.actor, "a", registry.EndpointPatch{Guard: &registry.Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "1m"}}, registry.Precondition{})
			return err
		}, 4},
		{"guard rollback", func() error {
			_, err := e.s.RecordGuardRollback(e.ctx, registry.Actor{Name: "system"}, "a", 4, routes(1, 0, 3), "route stable failing")
			return err
		}, 5},
		{"guard removed", func() error {
			_, err := e.s.UpdateEndpoint(e.ctx, e.actor, "a", registry.EndpointPatch{ClearGuard: true}, registry.Precondition{})
			return err
		}, 6},
	}
	for _, step := range steps {
		ok(t, step.write())
		revs = e.revisions()
		equal(t, step.what+": a", revs["a"].Revision, step.want)
		equal(t, step.what+": b", revs["b"], first)
	}

	// Deleted and created again, an endpoint is back at revision 1: its
	// creation time tells the two apart.
	ok(t, e.s.DeleteEndpoint(e.ctx, e.actor, "b", registry.Precondition{}))
	if _, found := e.revisions()["b"]; found {
		t.Fatal("deleted endpoint b still has a revision")
	}
	e.clock.Advance(time.Minute)
	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "b", Model: "churn", Routes: routes(3, 100, 1)})
	ok(t, err)
	revs = e.revisions()
	equal(t, "created again", revs["b"], registry.EndpointRevision{Revision: 1, CreatedAt: at(Epoch.Add(2 * time.Minute))})
	if revs["b"] == first {
		t.Error("the new endpoint b has the stamp of the deleted one")
	}
}
