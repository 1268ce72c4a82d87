package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var modelCases = []testCase{
	{"ModelCreateGet", testModelCreateGet},
	{"ModelValidation", testModelValidation},
	{"ModelUpdate", testModelUpdate},
	{"ModelDelete", testModelDelete},
	{"ModelList", testModelList},
	{"Ping", func(e *env) { ok(e.t, e.s.Ping(e.ctx)) }},
}

func testModelCreateGet(e *env) {
	t := e.t
	policies := map[string]registry.StagePolicy{
		"production": {RequireStage: "staging", MinSoak: "24h", MinMetrics: map[string]float64{"auc": 0.85}, RequireSignatureMatch: true},
	}
	m := e.model("churn", func(mc *registry.ModelCreate) {
		mc.Description = "predicts churn"
		mc.Tags = map[string]string{"team": "ds"}
		mc.StagePolicies = policies
	})
	want := &registry.Model{
		Name: "churn", Description: "predicts churn", Owner: "ds-team",
		Tags: map[string]string{"team": "ds"}, StagePolicies: policies,
		CreatedAt: at(Epoch), UpdatedAt: at(Epoch), Revision: 1,
	}
	equal(t, "created model", m, want)
	if m.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at is in %v, want UTC", m.CreatedAt.Location())
	}
	got, err := e.s.GetModel(e.ctx, "churn")
	ok(t, err)
	equal(t, "read model", got, want)

	bare := e.model("bare")
	if bare.Tags == nil || bare.StagePolicies == nil {
		t.Errorf("maps must never be nil: tags %v, stage_policies %v", bare.Tags, bare.StagePolicies)
	}
	got, err = e.s.GetModel(e.ctx, "bare")
	ok(t, err)
	if got.Tags == nil || got.StagePolicies == nil {
		t.Errorf("maps must never be nil after reading: tags %v, stage_policies %v", got.Tags, got.StagePolicies)
	}

	_, err = e.s.CreateModel(e.ctx, e.actor, registry.ModelCreate{Name: "churn"})
	wantCode(t, err, registry.CodeAlreadyExists, `"churn"`)

	_, err = e.s.GetModel(e.ctx, "nope")
	wantCode(t, err, registry.CodeNotFound, `model "nope" not found`)
}

func testModelValidation(e *env) {
	long := strings.Repeat("x", registry.MaxDescriptionLen+1)
	cases := []struct {
		name  string
		in    registry.ModelCreate
		field string
	}{
		{"empty name", registry.ModelCreate{}, "name"},
		{"bad name", registry.ModelCreate{Name: "Churn Model"}, "name"},
		{"long description", registry.ModelCreate{Name: "m", Description: long}, "description"},
		{"empty tag key", registry.ModelCreate{Name: "m", Tags: map[string]string{"": "x"}}, "tags"},
		{"bad stage key", registry.ModelCreate{Name: "m", StagePolicies: map[string]registry.StagePolicy{"Prod": {}}}, "stage_policies key"},
		{"min_soak without require_stage", registry.ModelCreate{Name: "m", StagePolicies: map[string]registry.StagePolicy{
			"production": {MinSoak: "1h"}}}, "stage_policies.production.min_soak"},
		{"bad min_soak", registry.ModelCreate{Name: "m", StagePolicies: map[string]registry.StagePolicy{
			"production": {RequireStage: "staging", MinSoak: "soon"}}}, "stage_policies.production.min_soak"},
	}
	for _, tc := range cases {
		e.t.Run(tc.name, func(t *testing.T) {
			_, err := e.s.CreateModel(t.Context(), e.actor, tc.in)
			wantField(t, err, tc.field)
		})
	}
	e.model("m")
	before := e.latestEvent()
	_, err := e.s.UpdateModel(e.ctx, e.actor, "m", registry.ModelPatch{Tags: &map[string]string{"": "x"}}, registry.Precondition{})
	wantField(e.t, err, "tags")
	_, err = e.s.UpdateModel(e.ctx, e.actor, "m", registry.ModelPatch{Description: ptr(long)}, registry.Precondition{})
	wantField(e.t, err, "description")
	if got := e.latestEvent(); got != before {
		e.t.Errorf("rejected writes wrote events: latest event %d, was %d", got, before)
	}
	if _, err := e.s.GetModel(e.ctx, "churn model"); err == nil {
		e.t.Error("a rejected create stored the model")
	}
}

func testModelUpdate(e *env) {
	t := e.t
	e.model("churn", func(mc *registry.ModelCreate) {
		mc.Description = "v1"
		mc.Tags = map[string]string{"a": "1"}
	})
	e.clock.Advance(time.Minute)
	m, err := e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{Description: ptr("v2")}, registry.Precondition{})
	ok(t, err)
	equal(t, "revision", m.Revision, int64(2))
	equal(t, "description", m.Description, "v2")
	equal(t, "owner kept", m.Owner, "ds-team")
	equal(t, "tags kept", m.Tags, map[string]string{"a": "1"})
	equal(t, "created_at", m.CreatedAt, at(Epoch))
	equal(t, "updated_at", m.UpdatedAt, at(Epoch.Add(time.Minute)))

	// A non-nil field replaces the stored value whole.
	m, err = e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{
		Tags:          &map[string]string{"b": "2"},
		StagePolicies: &map[string]registry.StagePolicy{"production": {RequireStage: "staging"}},
	}, registry.Precondition{IfRevision: 2})
	ok(t, err)
	equal(t, "replaced tags", m.Tags, map[string]string{"b": "2"})
	equal(t, "policies", m.StagePolicies, map[string]registry.StagePolicy{"production": {RequireStage: "staging"}})
	equal(t, "revision", m.Revision, int64(3))

	_, err = e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{Owner: ptr("x")}, registry.Precondition{IfRevision: 2})
	wantCode(t, err, registry.CodePreconditionFailed, "3", "2")

	m, err = e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{StagePolicies: &map[string]registry.StagePolicy{}}, registry.Precondition{IfRevision: 3})
	ok(t, err)
	equal(t, "cleared policies", m.StagePolicies, map[string]registry.StagePolicy{})
	equal(t, "revision", m.Revision, int64(4))

	// A patch that changes nothing is not a change.
	before := e.latestEvent()
	m, err = e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{Description: ptr("v2")}, registry.Precondition{})
	ok(t, err)
	equal(t, "no-op revision", m.Revision, int64(4))
	equal(t, "no-op writes no event", e.latestEvent(), before)

	got, err := e.s.GetModel(e.ctx, "churn")
	ok(t, err)
	equal(t, "read after update", got, m)

	_, err = e.s.UpdateModel(e.ctx, e.actor, "nope", registry.ModelPatch{Description: ptr("x")}, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, `model "nope" not found`)
}

func testModelDelete(e *env) {
	t := e.t
	err := e.s.DeleteModel(e.ctx, e.actor, "nope", registry.DeleteModelOptions{})
	wantCode(t, err, registry.CodeNotFound, `model "nope" not found`)

	e.model("empty")
	err = e.s.DeleteModel(e.ctx, e.actor, "empty", registry.DeleteModelOptions{Precondition: registry.Precondition{IfRevision: 7}})
	wantCode(t, err, registry.CodePreconditionFailed, "1", "7")
	ok(t, e.s.DeleteModel(e.ctx, e.actor, "empty", registry.DeleteModelOptions{Precondition: registry.Precondition{IfRevision: 1}}))
	_, err = e.s.GetModel(e.ctx, "empty")
	wantCode(t, err, registry.CodeNotFound)
	err = e.s.DeleteModel(e.ctx, e.actor, "empty", registry.DeleteModelOptions{})
	wantCode(t, err, registry.CodeNotFound)

	e.model("churn")
	e.version("churn")
	v2 := e.version("churn")
	e.assign("churn", "staging", v2.Version)
	err = e.s.DeleteModel(e.ctx, e.actor, "churn", registry.DeleteModelOptions{})
	wantCode(t, err, registry.CodeConflict, "force")
	if _, err := e.s.GetVersion(e.ctx, "churn", v2.Version); err != nil {
		t.Fatalf("refused delete removed a version: %v", err)
	}

	ok(t, e.s.DeleteModel(e.ctx, e.actor, "churn", registry.DeleteModelOptions{Force: true}))
	_, err = e.s.GetModel(e.ctx, "churn")
	wantCode(t, err, registry.CodeNotFound)
	_, err = e.s.GetVersion(e.ctx, "churn", v2.Version)
	wantCode(t, err, registry.CodeNotFound)

	// The re-created model starts clean but never reuses a version number.
	e.model("churn")
	stages, err := e.s.ListStages(e.ctx, "churn")
	ok(t, err)
	equal(t, "stages of the re-created model", stages, []registry.StageAssignment{})
	equal(t, "history of the re-created model", len(e.history("churn", "staging")), 0)
	equal(t, "versions of the re-created model", e.versionNumbers("churn", registry.VersionFilter{}), []int64{})
	v3 := e.version("churn")
	equal(t, "next number after force delete", v3.Version, int64(3))
}

func testModelList(e *env) {
	t := e.t
	p, err := e.s.ListModels(e.ctx, registry.ListOptions{})
	ok(t, err)
	if p.Items == nil || len(p.Items) != 0 || p.NextPageToken != "" {
		t.Fatalf("empty list: got %+v, want no items, non-nil, no token", p)
	}
	var want []string
	for i := 24; i >= 0; i-- { // created out of order, listed by name
		name := fmt.Sprintf("model-%02d", i)
		e.model(name)
		want = append([]string{name}, want...)
	}

	var got []string
	token := ""
	var sizes []int
	for {
		p, err := e.s.ListModels(e.ctx, registry.ListOptions{PageSize: 10, PageToken: token})
		ok(t, err)
		sizes = append(sizes, len(p.Items))
		for _, m := range p.Items {
			got = append(got, m.Name)
		}
		if p.NextPageToken == "" {
			break
		}
		token = p.NextPageToken
	}
	equal(t, "page sizes", sizes, []int{10, 10, 5})
	equal(t, "names, each once, in order", got, want)

	p, err = e.s.ListModels(e.ctx, registry.ListOptions{})
	ok(t, err)
	equal(t, "default page size holds all 25", len(p.Items), 25)
	equal(t, "no token on the last page", p.NextPageToken, "")

	_, err = e.s.ListModels(e.ctx, registry.ListOptions{PageSize: registry.MaxPageSize + 1})
	wantField(t, err, "page_size")
	_, err = e.s.ListModels(e.ctx, registry.ListOptions{PageSize: -1})
	wantField(t, err, "page_size")
	_, err = e.s.ListModels(e.ctx, registry.ListOptions{PageToken: "not a token!"})
	wantField(t, err, "page_token")
	_, err = e.s.ListModels(e.ctx, registry.ListOptions{PageToken: "eyJ4Ijp0cnVlfQ"})
	wantField(t, err, "page_token")

	// A token of another list is not a token of this one.
	e.version("model-00")
	e.version("model-00")
	vp, err := e.s.ListVersions(e.ctx, "model-00", registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: 1}})
	ok(t, err)
	if vp.NextPageToken == "" {
		t.Fatal("want a next page of versions")
	}
	_, err = e.s.ListModels(e.ctx, registry.ListOptions{PageToken: vp.NextPageToken})
	wantField(t, err, "page_token")
}
