package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var stageCases = []testCase{
	{"StageLifecycle", testStageLifecycle},
	{"StageErrors", testStageErrors},
	{"StagePolicies", testStagePolicies},
	{"StageDryRun", testStageDryRun},
}

func testStageLifecycle(e *env) {
	t := e.t
	e.model("churn")
	e.version("churn")
	e.version("churn")
	_, err := e.s.GetStage(e.ctx, "churn", "production")
	wantCode(t, err, registry.CodeNotFound, `"production"`)

	e.clock.Advance(time.Minute)
	t1 := at(e.clock.Now())
	a, err := e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1, Reason: "first"}, registry.AssignOptions{})
	ok(t, err)
	want := &registry.StageAssignment{Model: "churn", Stage: "production", Version: 1, PreviousVersion: 0,
		AssignedAt: t1, AssignedBy: "alice", Reason: "first", Revision: 1}
	equal(t, "first assignment", a, want)
	got, err := e.s.GetStage(e.ctx, "churn", "production")
	ok(t, err)
	equal(t, "read assignment", got, want)

	e.assign("churn", "staging", 1)
	v, err := e.s.GetVersion(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "stages of version 1, sorted", v.Stages, []string{"production", "staging"})

	e.clock.Advance(time.Minute)
	a, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 2, Reason: "promote"}, registry.AssignOptions{})
	ok(t, err)
	equal(t, "promotion previous_version", a.PreviousVersion, int64(1))
	equal(t, "promotion revision", a.Revision, int64(2))
	promoted := a
	v, err = e.s.GetVersion(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "version 1 lost production", v.Stages, []string{"staging"})

	// Re-assigning the holder is a no-op.
	events, hist := e.latestEvent(), len(e.history("churn", "production"))
	e.clock.Advance(time.Minute)
	a, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 2, Reason: "again"}, registry.AssignOptions{})
	ok(t, err)
	equal(t, "no-op answers the current assignment", a, promoted)
	equal(t, "no-op writes no event", e.latestEvent(), events)
	equal(t, "no-op writes no history", len(e.history("churn", "production")), hist)

	a, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1, Reason: "rollback"}, registry.AssignOptions{})
	ok(t, err)
	equal(t, "rollback previous_version", a.PreviousVersion, int64(2))
	equal(t, "rollback revision", a.Revision, int64(3))

	stages, err := e.s.ListStages(e.ctx, "churn")
	ok(t, err)
	if len(stages) != 2 || stages[0].Stage != "production" || stages[0].Version != 1 || stages[1].Stage != "staging" {
		t.Errorf("list stages: got %+v", stages)
	}

	h := e.history("churn", "production")
	type entry struct {
		Action        string
		Version, Prev int64
		By, Reason    string
		AssignedAt    time.Time
	}
	var gotH []entry
	for i, x := range h {
		gotH = append(gotH, entry{x.Action, x.Version, x.PreviousVersion, x.AssignedBy, x.Reason, x.AssignedAt})
		if x.Model != "churn" || x.Stage != "production" {
			t.Errorf("history entry %d: model/stage %q/%q", i, x.Model, x.Stage)
		}
		if i > 0 && x.ID >= h[i-1].ID {
			t.Errorf("history ids must fall, newest first: %d after %d", x.ID, h[i-1].ID)
		}
	}
	equal(t, "history newest first", gotH, []entry{
		{"assign", 1, 2, "alice", "rollback", at(Epoch.Add(3 * time.Minute))},
		{"assign", 2, 1, "alice", "promote", at(Epoch.Add(2 * time.Minute))},
		{"assign", 1, 0, "alice", "first", t1},
	})

	ok(t, e.s.UnassignStage(e.ctx, e.actor, "churn", "production", "retired", registry.Precondition{IfRevision: 3}))
	_, err = e.s.GetStage(e.ctx, "churn", "production")
	wantCode(t, err, registry.CodeNotFound)
	h = e.history("churn", "production")
	if h[0].Action != registry.StageActionUnassign || h[0].Version != 0 || h[0].PreviousVersion != 1 || h[0].Reason != "retired" {
		t.Errorf("unassign history entry: %+v", h[0])
	}
	stages, err = e.s.ListStages(e.ctx, "churn")
	ok(t, err)
	if len(stages) != 1 || stages[0].Stage != "staging" {
		t.Errorf("list stages after unassign: %+v", stages)
	}
	err = e.s.UnassignStage(e.ctx, e.actor, "churn", "production", "", registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, `"production"`)

	// The stage's revision keeps counting across unassign and reassign, and
	// an unassign followed by an assign is recorded like a move from the
	// last version the stage held.
	a = e.assign("churn", "production", 2)
	equal(t, "reassign previous_version", a.PreviousVersion, int64(1))
	equal(t, "reassign revision", a.Revision, int64(5))
	_, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1}, registry.AssignOptions{Precondition: registry.Precondition{IfRevision: 4}})
	wantCode(t, err, registry.CodePreconditionFailed, "5", "4")
	a, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1}, registry.AssignOptions{Precondition: registry.Precondition{IfRevision: 5}})
	ok(t, err)
	equal(t, "revision", a.Revision, int64(6))
	err = e.s.UnassignStage(e.ctx, e.actor, "churn", "production", "", registry.Precondition{IfRevision: 5})
	wantCode(t, err, registry.CodePreconditionFailed, "6", "5")

	// History pages newest first.
	var paged []int64
	token := ""
	for {
		p, err := e.s.StageHistory(e.ctx, "churn", "production", registry.ListOptions{PageSize: 2, PageToken: token})
		ok(t, err)
		for _, x := range p.Items {
			paged = append(paged, x.ID)
		}
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	var ids []int64
	for _, x := range e.history("churn", "production") {
		ids = append(ids, x.ID)
	}
	equal(t, "paged history", paged, ids)
	equal(t, "history length", len(ids), 6)
}

func testStageErrors(e *env) {
	t := e.t
	e.model("churn")
	e.version("churn")
	assign := func(model, stage string, version int64) error {
		_, err := e.s.AssignStage(e.ctx, e.actor, model, stage, registry.StageAssign{Version: version}, registry.AssignOptions{})
		return err
	}
	wantCode(t, assign("nope", "production", 1), registry.CodeNotFound, `model "nope" not found`)
	wantCode(t, assign("churn", "production", 9), registry.CodeNotFound, "version 9")
	wantField(t, assign("churn", "Prod", 1), "stage")
	wantField(t, assign("churn", "production", 0), "version")
	_, err := e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1, Reason: string(make([]byte, registry.MaxReasonLen+1))}, registry.AssignOptions{})
	wantField(t, err, "reason")

	_, err = e.s.GetStage(e.ctx, "nope", "production")
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
	_, err = e.s.ListStages(e.ctx, "nope")
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
	_, err = e.s.StageHistory(e.ctx, "nope", "production", registry.ListOptions{})
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
	_, err = e.s.StageHistory(e.ctx, "churn", "production", registry.ListOptions{PageToken: "garbage"})
	wantField(t, err, "page_token")
	err = e.s.UnassignStage(e.ctx, e.actor, "nope", "production", "", registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
	stages, err := e.s.ListStages(e.ctx, "churn")
	ok(t, err)
	if stages == nil || len(stages) != 0 {
		t.Errorf("no stages: got %#v, want an empty non-nil list", stages)
	}
	p, err := e.s.StageHistory(e.ctx, "churn", "production", registry.ListOptions{})
	ok(t, err)
	if p.Items == nil || len(p.Items) != 0 {
		t.Errorf("no history: got %#v, want an empty non-nil list", p.Items)
	}
	equal(t, "refused writes write no event", e.latestEvent(), int64(2))
}

// policyCase sets up a model whose only policy is policy on "production"
// and returns the version to assign; wantRule "" means the assignment
// must pass.
type policyCase struct {
	name     string
	policy   registry.StagePolicy
	setup    func(e *env, model string) int64
	wantRule string
}

var (
	sigA = &registry.Signature{Inputs: []registry.TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 16}}}}
	sigB = &registry.Signature{Inputs: []registry.TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 32}}}}
)

func withMetrics(m map[string]float64) func(*registry.ModelVersionCreate) {
	return func(v *registry.ModelVersionCreate) { v.Metrics = m }
}

var policyCases = []policyCase{
	{"no policy", registry.StagePolicy{}, func(e *env, m string) int64 { return e.version(m).Version }, ""},
	{"flagged version without policy", registry.StagePolicy{}, func(e *env, m string) int64 {
		return e.version(m, func(v *registry.ModelVersionCreate) { v.Flagged, v.FlagReason = true, "bias" }).Version
	}, "flagged"},
	{"flagged after creation", registry.StagePolicy{}, func(e *env, m string) int64 {
		v := e.version(m)
		_, err := e.s.UpdateVersion(e.ctx, e.actor, m, v.Version, registry.ModelVersionPatch{Flagged: ptr(true)}, registry.Precondition{})
		ok(e.t, err)
		return v.Version
	}, "flagged"},
	{"require_stage never held", registry.StagePolicy{RequireStage: "staging"}, func(e *env, m string) int64 {
		return e.version(m).Version
	}, "require_stage"},
	{"require_stage held now", registry.StagePolicy{RequireStage: "staging"}, func(e *env, m string) int64 {
		v := e.version(m)
		e.assign(m, "staging", v.Version)
		return v.Version
	}, ""},
	{"require_stage held before", registry.StagePolicy{RequireStage: "staging"}, func(e *env, m string) int64 {
		v := e.version(m)
		e.assign(m, "staging", v.Version)
		e.assign(m, "staging", e.version(m).Version)
		return v.Version
	}, ""},
	{"min_soak too short", registry.StagePolicy{RequireStage: "staging", MinSoak: "24h"}, func(e *env, m string) int64 {
		v := e.version(m)
		e.assign(m, "staging", v.Version)
		e.clock.Advance(23 * time.Hour)
		return v.Version
	}, "min_soak"},
	{"min_soak long enough", registry.StagePolicy{RequireStage: "staging", MinSoak: "24h"}, func(e *env, m string) int64 {
		v := e.version(m)
		e.assign(m, "staging", v.Version)
		e.clock.Advance(25 * time.Hour)
		return v.Version
	}, ""},
	{"min_soak counts a finished hold", registry.StagePolicy{RequireStage: "staging", MinSoak: "24h"}, func(e *env, m string) int64 {
		v := e.version(m)
		e.assign(m, "staging", v.Version)
		e.clock.Advance(30 * time.Hour)
		ok(e.t, e.s.UnassignStage(e.ctx, e.actor, m, "staging", "", registry.Precondition{}))
		e.clock.Advance(time.Hour)
		return v.Version
	}, ""},
	{"min_metrics met", registry.StagePolicy{MinMetrics: map[string]float64{"auc": 0.85}}, func(e *env, m string) int64 {
		return e.version(m, withMetrics(map[string]float64{"auc": 0.85})).Version
	}, ""},
	{"min_metrics below", registry.StagePolicy{MinMetrics: map[string]float64{"auc": 0.85}}, func(e *env, m string) int64 {
		return e.version(m, withMetrics(map[string]float64{"auc": 0.84})).Version
	}, "min_metrics"},
	{"min_metrics missing", registry.StagePolicy{MinMetrics: map[string]float64{"auc": 0.85}}, func(e *env, m string) int64 {
		return e.version(m, withMetrics(map[string]float64{"loss": 0.1})).Version
	}, "min_metrics"},
	{"max_metrics met", registry.StagePolicy{MaxMetrics: map[string]float64{"latency_ms": 50}}, func(e *env, m string) int64 {
		return e.version(m, withMetrics(map[string]float64{"latency_ms": 49.5})).Version
	}, ""},
	{"max_metrics above", registry.StagePolicy{MaxMetrics: map[string]float64{"latency_ms": 50}}, func(e *env, m string) int64 {
		return e.version(m, withMetrics(map[string]float64{"latency_ms": 50.5})).Version
	}, "max_metrics"},
	{"max_metrics missing", registry.StagePolicy{MaxMetrics: map[string]float64{"latency_ms": 50}}, func(e *env, m string) int64 {
		return e.version(m).Version
	}, "max_metrics"},
	{"signature matches holder", registry.StagePolicy{RequireSignatureMatch: true}, func(e *env, m string) int64 {
		e.assign(m, "production", e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigA }).Version)
		return e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigA }).Version
	}, ""},
	{"signature differs from holder", registry.StagePolicy{RequireSignatureMatch: true}, func(e *env, m string) int64 {
		e.assign(m, "production", e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigA }).Version)
		return e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigB }).Version
	}, "require_signature_match"},
	{"signature without holder", registry.StagePolicy{RequireSignatureMatch: true}, func(e *env, m string) int64 {
		return e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigB }).Version
	}, ""},
	// Unassigning first must not skip the signature rule: the new version
	// is compared with the last version the stage held.
	{"signature differs from the last holder after unassign", registry.StagePolicy{RequireSignatureMatch: true}, func(e *env, m string) int64 {
		e.assign(m, "production", e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigA }).Version)
		ok(e.t, e.s.UnassignStage(e.ctx, e.actor, m, "production", "", registry.Precondition{}))
		return e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigB }).Version
	}, "require_signature_match"},
	{"signature differs from a deleted last holder", registry.StagePolicy{RequireSignatureMatch: true}, func(e *env, m string) int64 {
		old := e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigA })
		e.assign(m, "production", old.Version)
		ok(e.t, e.s.UnassignStage(e.ctx, e.actor, m, "production", "", registry.Precondition{}))
		ok(e.t, e.s.DeleteVersion(e.ctx, e.actor, m, old.Version, registry.Precondition{}))
		return e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigB }).Version
	}, "require_signature_match"},
	{"signature matches the last holder after unassign", registry.StagePolicy{RequireSignatureMatch: true}, func(e *env, m string) int64 {
		e.assign(m, "production", e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigA }).Version)
		ok(e.t, e.s.UnassignStage(e.ctx, e.actor, m, "production", "", registry.Precondition{}))
		return e.version(m, func(v *registry.ModelVersionCreate) { v.Signature = sigA }).Version
	}, ""},
}

func testStagePolicies(e *env) {
	for _, tc := range policyCases {
		e.t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			// Each case has its own model and clock offset in the shared store.
			model := fmt.Sprintf("model-%d", e.seq.Add(1))
			e.model(model, func(mc *registry.ModelCreate) {
				mc.StagePolicies = map[string]registry.StagePolicy{"production": tc.policy}
			})
			version := tc.setup(e, model)
			events := e.latestEvent()
			prev, _ := e.s.GetStage(e.ctx, model, "production")
			hist := len(e.history(model, "production"))

			a, err := e.s.AssignStage(e.ctx, e.actor, model, "production", registry.StageAssign{Version: version}, registry.AssignOptions{})
			if tc.wantRule != "" {
				wantRule(t, err, tc.wantRule)
				equal(t, "a refused assignment writes no event", e.latestEvent(), events)
				equal(t, "a refused assignment writes no history", len(e.history(model, "production")), hist)
				now, _ := e.s.GetStage(e.ctx, model, "production")
				equal(t, "the stage is unchanged", now, prev)
				return
			}
			ok(t, err)
			equal(t, "assigned version", a.Version, version)
			if e.latestEvent() == events {
				t.Error("an assignment must write an event")
			}
		})
	}
}

func testStageDryRun(e *env) {
	t := e.t
	e.model("churn", func(mc *registry.ModelCreate) {
		mc.StagePolicies = map[string]registry.StagePolicy{"production": {MinMetrics: map[string]float64{"auc": 0.9}}}
	})
	e.version("churn", withMetrics(map[string]float64{"auc": 0.95}))
	e.version("churn", withMetrics(map[string]float64{"auc": 0.97}))
	e.version("churn", withMetrics(map[string]float64{"auc": 0.5}))
	dry := registry.AssignOptions{DryRun: true}

	events := e.latestEvent()
	a, err := e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1, Reason: "try"}, dry)
	ok(t, err)
	equal(t, "dry run on an unassigned stage", a, &registry.StageAssignment{Model: "churn", Stage: "production", Version: 1,
		PreviousVersion: 0, AssignedAt: at(Epoch), AssignedBy: "alice", Reason: "try", Revision: 1})
	_, err = e.s.GetStage(e.ctx, "churn", "production")
	wantCode(t, err, registry.CodeNotFound)
	equal(t, "dry run writes no event", e.latestEvent(), events)
	equal(t, "dry run writes no history", len(e.history("churn", "production")), 0)
	v, err := e.s.GetVersion(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "dry run assigns no stage", v.Stages, []string{})

	held := e.assign("churn", "production", 1)
	events = e.latestEvent()
	e.clock.Advance(time.Hour)
	a, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 2}, dry)
	ok(t, err)
	equal(t, "dry run of a promotion", a, &registry.StageAssignment{Model: "churn", Stage: "production", Version: 2,
		PreviousVersion: 1, AssignedAt: at(Epoch.Add(time.Hour)), AssignedBy: "alice", Revision: 2})
	got, err := e.s.GetStage(e.ctx, "churn", "production")
	ok(t, err)
	equal(t, "the stage is unchanged", got, held)
	equal(t, "no event", e.latestEvent(), events)
	equal(t, "no history", len(e.history("churn", "production")), 1)

	_, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 3}, dry)
	wantRule(t, err, "min_metrics")
	_, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 2},
		registry.AssignOptions{DryRun: true, Precondition: registry.Precondition{IfRevision: 9}})
	wantCode(t, err, registry.CodePreconditionFailed)
	a, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1}, dry)
	ok(t, err)
	equal(t, "dry run of the holder answers the current assignment", a, held)
	equal(t, "still no event", e.latestEvent(), events)
}
