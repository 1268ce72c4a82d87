package storetest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var eventCases = []testCase{
	{"EventsForEveryWrite", testEventsForEveryWrite},
	{"FailedWritesLeaveNothing", testFailedWritesLeaveNothing},
}

// testEventsForEveryWrite makes one of every write, a second apart, each
// with its own request id, and checks the audit log they leave.
func testEventsForEveryWrite(e *env) {
	t := e.t
	equal(t, "latest event id of an empty store", e.latestEvent(), int64(0))
	p, err := e.s.ListEvents(e.ctx, registry.EventFilter{})
	ok(t, err)
	if p.Items == nil || len(p.Items) != 0 || p.NextPageToken != "" {
		t.Fatalf("empty event list: %+v", p)
	}

	n := 0
	step := func(write func(a registry.Actor) error) {
		t.Helper()
		n++
		e.clock.Advance(time.Second)
		ok(t, write(registry.Actor{Name: "alice", RequestID: fmt.Sprintf("req-%02d", n)}))
	}
	noPre := registry.Precondition{}
	step(func(a registry.Actor) error {
		_, err := e.s.CreateModel(e.ctx, a, registry.ModelCreate{Name: "churn", Description: "d1"})
		return err
	})
	step(func(a registry.Actor) error {
		_, err := e.s.UpdateModel(e.ctx, a, "churn", registry.ModelPatch{Description: ptr("d2")}, noPre)
		return err
	})
	step(func(a registry.Actor) error {
		_, err := e.s.CreateVersion(e.ctx, a, "churn", e.versionCreate())
		return err
	})
	step(func(a registry.Actor) error {
		_, err := e.s.CreateVersion(e.ctx, a, "churn", e.versionCreate())
		return err
	})
	step(func(a registry.Actor) error {
		_, err := e.s.UpdateVersion(e.ctx, a, "churn", 1, registry.ModelVersionPatch{Description: ptr("x")}, noPre)
		return err
	})
	step(func(a registry.Actor) error {
		_, err := e.s.AssignStage(e.ctx, a, "churn", "staging", registry.StageAssign{Version: 1}, registry.AssignOptions{})
		return err
	})
	step(func(a registry.Actor) error { return e.s.UnassignStage(e.ctx, a, "churn", "staging", "", noPre) })
	step(func(a registry.Actor) error {
		_, err := e.s.CreateEndpoint(e.ctx, a, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 90, 2)})
		return err
	})
	step(func(a registry.Actor) error {
		_, err := e.s.UpdateEndpoint(e.ctx, a, "ep", registry.EndpointPatch{StickyHeader: ptr("X-User")}, noPre)
		return err
	})
	step(func(a registry.Actor) error {
		_, err := e.s.RecordGuardRollback(e.ctx, a, "ep", 2, routes(1, 100, 2), "canary failing")
		return err
	})
	step(func(a registry.Actor) error { return e.s.DeleteEndpoint(e.ctx, a, "ep", noPre) })
	step(func(a registry.Actor) error { return e.s.DeleteVersion(e.ctx, a, "churn", 2, noPre) })
	step(func(a registry.Actor) error {
		_, err := e.s.CreateToken(e.ctx, a, registry.Token{Name: "ci", Scope: registry.ScopeWrite, Hash: registry.HashToken("mlr_secret")})
		return err
	})
	step(func(a registry.Actor) error { return e.s.RevokeToken(e.ctx, a, "ci") })
	step(func(a registry.Actor) error {
		return e.s.DeleteModel(e.ctx, a, "churn", registry.DeleteModelOptions{Force: true})
	})

	type row struct {
		Action, SubjectType, Subject, Model, Endpoint string
		HasBefore, HasAfter                           bool
	}
	want := []row{
		{registry.ActionModelCreate, "model", "churn", "churn", "", false, true},
		{registry.ActionModelUpdate, "model", "churn", "churn", "", true, true},
		{registry.ActionVersionCreate, "model_version", "churn/1", "churn", "", false, true},
		{registry.ActionVersionCreate, "model_version", "churn/2", "churn", "", false, true},
		{registry.ActionVersionUpdate, "model_version", "churn/1", "churn", "", true, true},
		{registry.ActionStageAssign, "stage", "churn/staging", "churn", "", false, true},
		{registry.ActionStageUnassign, "stage", "churn/staging", "churn", "", true, false},
		{registry.ActionEndpointCreate, "endpoint", "ep", "churn", "ep", false, true},
		{registry.ActionEndpointUpdate, "endpoint", "ep", "churn", "ep", true, true},
		{registry.ActionEndpointGuardRollback, "endpoint", "ep", "churn", "ep", true, true},
		{registry.ActionEndpointDelete, "endpoint", "ep", "churn", "ep", true, false},
		{registry.ActionVersionDelete, "model_version", "churn/2", "churn", "", true, false},
		{registry.ActionTokenCreate, "token", "ci", "", "", false, true},
		{registry.ActionTokenRevoke, "token", "ci", "", "", true, true},
		{registry.ActionModelDelete, "model", "churn", "churn", "", true, false},
	}
	evs := e.events(registry.EventFilter{})
	var got []row
	for i, ev := range evs {
		got = append(got, row{ev.Action, ev.SubjectType, ev.Subject, ev.Model, ev.Endpoint, len(ev.Before) > 0, len(ev.After) > 0})
		if ev.Actor != "alice" || ev.RequestID != fmt.Sprintf("req-%02d", i+1) {
			t.Errorf("event %d (%s): actor %q request id %q", i, ev.Action, ev.Actor, ev.RequestID)
		}
		if wantTime := at(Epoch.Add(time.Duration(i+1) * time.Second)); !ev.Time.Equal(wantTime) || ev.Time.Location() != time.UTC {
			t.Errorf("event %d (%s): time %v, want %v UTC", i, ev.Action, ev.Time, wantTime)
		}
		if i > 0 && ev.ID <= evs[i-1].ID {
			t.Errorf("event ids must grow: %d after %d", ev.ID, evs[i-1].ID)
		}
		for _, raw := range []json.RawMessage{ev.Before, ev.After} {
			if len(raw) > 0 && !json.Valid(raw) {
				t.Errorf("event %d (%s): invalid JSON %s", i, ev.Action, raw)
			}
		}
	}
	equal(t, "events", got, want)
	equal(t, "latest event id", e.latestEvent(), evs[len(evs)-1].ID)

	// Before and after are the wire objects.
	var before, after registry.Model
	ok(t, json.Unmarshal(evs[1].Before, &before))
	ok(t, json.Unmarshal(evs[1].After, &after))
	if before.Description != "d1" || after.Description != "d2" || before.Revision != 1 || after.Revision != 2 {
		t.Errorf("model.update before/after: %+v / %+v", before, after)
	}
	var v registry.ModelVersion
	ok(t, json.Unmarshal(evs[2].After, &v))
	if v.Model != "churn" || v.Version != 1 || v.CreatedBy != "alice" {
		t.Errorf("version.create after: %+v", v)
	}
	var sa registry.StageAssignment
	ok(t, json.Unmarshal(evs[5].After, &sa))
	if sa.Stage != "staging" || sa.Version != 1 {
		t.Errorf("stage.assign after: %+v", sa)
	}
	var tokAfter map[string]any
	ok(t, json.Unmarshal(evs[12].After, &tokAfter))
	if tokAfter["name"] != "ci" || tokAfter["hash"] != nil {
		t.Errorf("token.create after must name the token and hold no hash: %v", tokAfter)
	}

	// Filters.
	equal(t, "model filter", len(e.events(registry.EventFilter{Model: "churn"})), 13)
	equal(t, "endpoint filter", actions(e.events(registry.EventFilter{Endpoint: "ep"})), []string{
		registry.ActionEndpointCreate, registry.ActionEndpointUpdate, registry.ActionEndpointGuardRollback, registry.ActionEndpointDelete,
	})
	equal(t, "no match", len(e.events(registry.EventFilter{Model: "other"})), 0)
	since := e.events(registry.EventFilter{Since: at(Epoch.Add(13 * time.Second))})
	equal(t, "since (inclusive)", actions(since), []string{registry.ActionTokenCreate, registry.ActionTokenRevoke, registry.ActionModelDelete})
	since = e.events(registry.EventFilter{Since: at(Epoch.Add(13 * time.Second)).Add(time.Nanosecond)})
	equal(t, "since between two microseconds", len(since), 2)
	equal(t, "since and model", len(e.events(registry.EventFilter{Since: at(Epoch.Add(13 * time.Second)), Model: "churn"})), 1)

	var paged []int64
	token := ""
	for {
		p, err := e.s.ListEvents(e.ctx, registry.EventFilter{ListOptions: registry.ListOptions{PageSize: 4, PageToken: token}})
		ok(t, err)
		for _, ev := range p.Items {
			paged = append(paged, ev.ID)
		}
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	var ids []int64
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	equal(t, "paged events", paged, ids)
	_, err = e.s.ListEvents(e.ctx, registry.EventFilter{ListOptions: registry.ListOptions{PageToken: "x"}})
	wantField(t, err, "page_token")
	_, err = e.s.ListEvents(e.ctx, registry.EventFilter{ListOptions: registry.ListOptions{PageSize: 1001}})
	wantField(t, err, "page_size")
}

// testFailedWritesLeaveNothing checks that a refused write changes nothing
// and writes no event.
func testFailedWritesLeaveNothing(e *env) {
	t := e.t
	e.model("churn", func(mc *registry.ModelCreate) {
		mc.StagePolicies = map[string]registry.StagePolicy{"production": {RequireStage: "staging"}}
	})
	v1 := e.version("churn")
	e.version("churn", func(v *registry.ModelVersionCreate) { v.Flagged = true })
	base := e.latestEvent()
	nothing := func(what string) {
		t.Helper()
		if got := e.latestEvent(); got != base {
			t.Errorf("%s wrote an event (latest id %d, was %d)", what, got, base)
		}
	}

	dup := e.versionCreate()
	dup.Checksum = v1.Checksum
	_, err := e.s.CreateVersion(e.ctx, e.actor, "churn", dup)
	wantCode(t, err, registry.CodeAlreadyExists, "version 1")
	nothing("a duplicate checksum")

	_, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1}, registry.AssignOptions{})
	wantRule(t, err, "require_stage")
	nothing("a policy violation")
	_, err = e.s.GetStage(e.ctx, "churn", "production")
	wantCode(t, err, registry.CodeNotFound)
	equal(t, "no history", len(e.history("churn", "production")), 0)

	err = e.s.DeleteModel(e.ctx, e.actor, "churn", registry.DeleteModelOptions{})
	wantCode(t, err, registry.CodeConflict)
	nothing("a refused model delete")
	equal(t, "versions kept", e.versionNumbers("churn", registry.VersionFilter{}), []int64{1, 2})

	_, err = e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{Owner: ptr("x")}, registry.Precondition{IfRevision: 9})
	wantCode(t, err, registry.CodePreconditionFailed)
	nothing("a failed precondition")
	m, err := e.s.GetModel(e.ctx, "churn")
	ok(t, err)
	if m.Owner != "ds-team" || m.Revision != 1 {
		t.Errorf("model changed by a failed update: %+v", m)
	}

	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "ep", Model: "churn", Routes: routes(1, 50, 2)})
	wantRule(t, err, "flagged")
	nothing("a refused endpoint")
	_, err = e.s.GetEndpoint(e.ctx, "ep")
	wantCode(t, err, registry.CodeNotFound)

	_, err = e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "ci", Scope: "root", Hash: registry.HashToken("x")})
	wantField(t, err, "scope")
	nothing("a refused token")

	// A refused create consumes no version number.
	equal(t, "next version number", e.version("churn").Version, int64(3))
}
