package storetest

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var versionCases = []testCase{
	{"VersionCreateGet", testVersionCreateGet},
	{"VersionValidation", testVersionValidation},
	{"VersionNumbering", testVersionNumbering},
	{"VersionChecksumUnique", testVersionChecksumUnique},
	{"VersionUpdate", testVersionUpdate},
	{"VersionAddMetrics", testVersionAddMetrics},
	{"VersionDelete", testVersionDelete},
	{"VersionListFilters", testVersionListFilters},
	{"VersionListOrderByMetric", testVersionListOrderByMetric},
	{"VersionListPagination", testVersionListPagination},
}

func testVersionCreateGet(e *env) {
	t := e.t
	e.model("churn")
	in := registry.ModelVersionCreate{
		Source:      "s3://models/churn/1/model.onnx",
		Checksum:    checksum("churn-1"),
		Format:      "onnx",
		Parameters:  map[string]string{"lr": "0.01"},
		Metrics:     map[string]float64{"auc": 0.91, "loss": 0.1234567890123},
		Lineage:     &registry.Lineage{RunID: "run-42", GitCommit: "3f2c1e0", Dataset: "s3://data/2025-03", CodeURI: "https://git.example.com/churn"},
		Signature:   &registry.Signature{Inputs: []registry.TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 16}}}, Outputs: []registry.TensorSpec{{Name: "p", DType: "float32", Shape: []int64{-1}}}},
		Description: "first",
		Tags:        map[string]string{"candidate": "yes"},
	}
	e.clock.Advance(time.Second)
	v, err := e.s.CreateVersion(e.ctx, e.actor, "churn", in)
	ok(t, err)
	want := &registry.ModelVersion{
		Model: "churn", Version: 1, Source: in.Source, Checksum: in.Checksum, Format: in.Format,
		Parameters: in.Parameters, Metrics: in.Metrics, Lineage: in.Lineage, Signature: in.Signature,
		Description: "first", Tags: in.Tags, FlagReason: "",
		CreatedAt: at(Epoch.Add(time.Second)), CreatedBy: "alice", UpdatedAt: at(Epoch.Add(time.Second)),
		Stages: []string{}, Revision: 1,
	}
	equal(t, "created version", v, want)
	got, err := e.s.GetVersion(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "read version", got, want)

	bare := e.version("churn")
	equal(t, "second number", bare.Version, int64(2))
	got, err = e.s.GetVersion(e.ctx, "churn", 2)
	ok(t, err)
	if got.Parameters == nil || got.Metrics == nil || got.Tags == nil || got.Stages == nil {
		t.Errorf("maps and stages must never be nil: %+v", got)
	}
	if got.Lineage != nil || got.Signature != nil {
		t.Errorf("absent lineage/signature must stay absent: %+v %+v", got.Lineage, got.Signature)
	}

	flagged := e.version("churn", func(vc *registry.ModelVersionCreate) { vc.Flagged, vc.FlagReason = true, "leaky" })
	if !flagged.Flagged || flagged.FlagReason != "leaky" {
		t.Errorf("created flagged: got %v %q", flagged.Flagged, flagged.FlagReason)
	}

	_, err = e.s.CreateVersion(e.ctx, e.actor, "nope", e.versionCreate())
	wantCode(t, err, registry.CodeNotFound, `model "nope" not found`)
	_, err = e.s.GetVersion(e.ctx, "churn", 9)
	wantCode(t, err, registry.CodeNotFound, "version 9", `"churn"`)
	_, err = e.s.GetVersion(e.ctx, "nope", 1)
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
}

func testVersionValidation(e *env) {
	e.model("churn")
	cases := []struct {
		name   string
		mutate func(*registry.ModelVersionCreate)
		field  string
	}{
		{"missing source", func(v *registry.ModelVersionCreate) { v.Source = "" }, "source"},
		{"relative source", func(v *registry.ModelVersionCreate) { v.Source = "models/x.onnx" }, "source"},
		{"bad checksum", func(v *registry.ModelVersionCreate) { v.Checksum = "md5:abc" }, "checksum"},
		{"bad format", func(v *registry.ModelVersionCreate) { v.Format = "zip" }, "format"},
		{"NaN metric", func(v *registry.ModelVersionCreate) { v.Metrics = map[string]float64{"auc": math.NaN()} }, "metrics.auc"},
		{"reason without flag", func(v *registry.ModelVersionCreate) { v.FlagReason = "why" }, "flag_reason"},
		{"unnamed input", func(v *registry.ModelVersionCreate) {
			v.Signature = &registry.Signature{Inputs: []registry.TensorSpec{{DType: "float32"}}}
		}, "signature.inputs[0].name"},
	}
	for _, tc := range cases {
		e.t.Run(tc.name, func(t *testing.T) {
			vc := e.versionCreate()
			tc.mutate(&vc)
			_, err := e.s.CreateVersion(t.Context(), e.actor, "churn", vc)
			wantField(t, err, tc.field)
		})
	}
	_, err := e.s.CreateVersion(e.ctx, e.actor, "Not A Name", e.versionCreate())
	wantField(e.t, err, "model")
	equal(e.t, "nothing stored", e.versionNumbers("churn", registry.VersionFilter{}), []int64{})
	equal(e.t, "the first valid version is 1", e.version("churn").Version, int64(1))
}

func testVersionNumbering(e *env) {
	t := e.t
	e.model("churn")
	e.model("other")
	for i := int64(1); i <= 3; i++ {
		equal(t, "number", e.version("churn").Version, i)
	}
	equal(t, "numbers are per model", e.version("other").Version, int64(1))
	ok(t, e.s.DeleteVersion(e.ctx, e.actor, "churn", 3, registry.Precondition{}))
	equal(t, "the deleted newest number is not reused", e.version("churn").Version, int64(4))
	ok(t, e.s.DeleteVersion(e.ctx, e.actor, "churn", 2, registry.Precondition{}))
	equal(t, "after deleting 2", e.version("churn").Version, int64(5))
	equal(t, "live versions", e.versionNumbers("churn", registry.VersionFilter{}), []int64{1, 4, 5})

	ok(t, e.s.DeleteModel(e.ctx, e.actor, "churn", registry.DeleteModelOptions{Force: true}))
	e.model("churn")
	equal(t, "after force delete and re-create", e.version("churn").Version, int64(6))
	equal(t, "the other model is untouched", e.version("other").Version, int64(2))
}

func testVersionChecksumUnique(e *env) {
	t := e.t
	e.model("churn")
	e.model("other")
	first := e.version("churn")
	before := e.latestEvent()

	dup := e.versionCreate()
	dup.Checksum = first.Checksum
	_, err := e.s.CreateVersion(e.ctx, e.actor, "churn", dup)
	wantCode(t, err, registry.CodeAlreadyExists, "version 1")
	equal(t, "a refused create writes no event", e.latestEvent(), before)
	// Documented choice of this suite: a failed create consumes no number.
	equal(t, "next number", e.version("churn").Version, int64(2))

	_, err = e.s.CreateVersion(e.ctx, e.actor, "other", dup)
	ok(t, err)

	ok(t, e.s.DeleteVersion(e.ctx, e.actor, "churn", 1, registry.Precondition{}))
	again, err := e.s.CreateVersion(e.ctx, e.actor, "churn", dup)
	ok(t, err)
	equal(t, "a deleted version's checksum may come back as a new version", again.Version, int64(3))
}

func testVersionUpdate(e *env) {
	t := e.t
	e.model("churn")
	orig := e.version("churn", func(vc *registry.ModelVersionCreate) {
		vc.Description = "d1"
		vc.Tags = map[string]string{"a": "1"}
		vc.Metrics = map[string]float64{"auc": 0.9}
		vc.Parameters = map[string]string{"lr": "0.1"}
		vc.Lineage = &registry.Lineage{RunID: "r1"}
	})
	e.clock.Advance(time.Hour)
	v, err := e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{
		Description: ptr("d2"), Tags: &map[string]string{"b": "2"},
	}, registry.Precondition{IfRevision: 1})
	ok(t, err)
	equal(t, "description", v.Description, "d2")
	equal(t, "tags replaced", v.Tags, map[string]string{"b": "2"})
	equal(t, "revision", v.Revision, int64(2))
	equal(t, "updated_at", v.UpdatedAt, at(Epoch.Add(time.Hour)))
	// The artifact identity never changes.
	immutable := func(m *registry.ModelVersion) []any {
		return []any{m.Source, m.Checksum, m.Format, m.Parameters, m.Metrics, m.Lineage, m.Signature, m.CreatedAt, m.CreatedBy}
	}
	equal(t, "artifact fields", immutable(v), immutable(orig))

	v, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("data leak")}, registry.Precondition{})
	ok(t, err)
	if !v.Flagged || v.FlagReason != "data leak" || v.Revision != 3 {
		t.Errorf("flag: got flagged=%v reason=%q revision=%d", v.Flagged, v.FlagReason, v.Revision)
	}
	v, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{Flagged: ptr(false)}, registry.Precondition{})
	ok(t, err)
	if v.Flagged || v.FlagReason != "" {
		t.Errorf("unflag clears the reason: got flagged=%v reason=%q", v.Flagged, v.FlagReason)
	}
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{FlagReason: ptr("why")}, registry.Precondition{})
	wantField(t, err, "flag_reason")

	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{Description: ptr("x")}, registry.Precondition{IfRevision: 2})
	wantCode(t, err, registry.CodePreconditionFailed, "4", "2")

	before := e.latestEvent()
	v, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{Description: ptr("d2")}, registry.Precondition{})
	ok(t, err)
	equal(t, "no-op revision", v.Revision, int64(4))
	equal(t, "no-op writes no event", e.latestEvent(), before)

	got, err := e.s.GetVersion(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "read after update", got, v)

	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 9, registry.ModelVersionPatch{Description: ptr("x")}, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, "version 9")
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "nope", 1, registry.ModelVersionPatch{Description: ptr("x")}, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{Description: ptr(strings.Repeat("x", registry.MaxDescriptionLen+1))}, registry.Precondition{})
	wantField(t, err, "description")
}

// testVersionAddMetrics: metrics recorded after registration join the
// version in one transaction with their event, are seen by list orders
// and by stage policies, and never change a recorded value.
func testVersionAddMetrics(e *env) {
	t := e.t
	e.model("churn", func(m *registry.ModelCreate) {
		m.StagePolicies = map[string]registry.StagePolicy{"production": {MinMetrics: map[string]float64{"f1": 0.75}}}
	})
	orig := e.version("churn", func(vc *registry.ModelVersionCreate) { vc.Metrics = map[string]float64{"auc": 0.9} })
	e.version("churn", func(vc *registry.ModelVersionCreate) { vc.Metrics = map[string]float64{"auc": 0.8, "f1": 0.7} })

	_, err := e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1}, registry.AssignOptions{})
	wantCode(t, err, registry.CodePolicyViolation, "f1")
	equal(t, "ordered by f1 before", e.versionNumbers("churn", registry.VersionFilter{OrderBy: "metrics.f1 desc"}), []int64{2, 1})

	e.clock.Advance(time.Hour)
	before := e.latestEvent()
	v, err := e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{
		AddMetrics: map[string]float64{"f1": 0.8, "auc": 0.9},
	}, registry.Precondition{IfRevision: 1})
	ok(t, err)
	equal(t, "metrics", v.Metrics, map[string]float64{"auc": 0.9, "f1": 0.8})
	equal(t, "revision", v.Revision, int64(2))
	equal(t, "updated_at", v.UpdatedAt, at(Epoch.Add(time.Hour)))
	got, err := e.s.GetVersion(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "read after adding", got, v)

	evs := e.events(registry.EventFilter{Model: "churn"})
	last := evs[len(evs)-1]
	if last.ID <= before || last.Action != registry.ActionVersionUpdate || last.Subject != "churn/1" {
		t.Fatalf("want a version.update event for churn/1, got %+v", last)
	}
	var eb, ea registry.ModelVersion
	ok(t, json.Unmarshal(last.Before, &eb))
	ok(t, json.Unmarshal(last.After, &ea))
	equal(t, "event before", eb.Metrics, orig.Metrics)
	equal(t, "event after", ea.Metrics, v.Metrics)

	// List orders read the added metric.
	equal(t, "ordered by f1 after", e.versionNumbers("churn", registry.VersionFilter{OrderBy: "metrics.f1 desc"}), []int64{1, 2})
	equal(t, "ordered by f1, one a page", e.versionNumbers("churn", registry.VersionFilter{OrderBy: "metrics.f1", ListOptions: registry.ListOptions{PageSize: 1}}), []int64{2, 1})
	// The policy sees it.
	_, err = e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 1}, registry.AssignOptions{})
	ok(t, err)

	// The same values again change nothing and write no event.
	before = e.latestEvent()
	v, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{AddMetrics: map[string]float64{"f1": 0.8}}, registry.Precondition{})
	ok(t, err)
	equal(t, "no-op revision", v.Revision, int64(2))
	equal(t, "no-op writes no event", e.latestEvent(), before)

	// A recorded value never changes, and a refused patch changes nothing
	// else either.
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{
		Description: ptr("x"), AddMetrics: map[string]float64{"f1": 0.81, "recall": 0.5},
	}, registry.Precondition{})
	re := wantCode(t, err, registry.CodeInvalidArgument, `"f1"`, "0.8")
	equal(t, "field", re.Field, "add_metrics.f1")
	equal(t, "rule", re.Rule, "immutable")
	got, err = e.s.GetVersion(e.ctx, "churn", 1)
	ok(t, err)
	equal(t, "after a refused change", got, v)
	equal(t, "no recall to order by", e.versionNumbers("churn", registry.VersionFilter{OrderBy: "metrics.recall desc"}), []int64{2, 1})

	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{AddMetrics: map[string]float64{"x": math.Inf(1)}}, registry.Precondition{})
	wantField(t, err, "add_metrics.x")
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{AddMetrics: map[string]float64{"x": 1}}, registry.Precondition{IfRevision: 1})
	wantCode(t, err, registry.CodePreconditionFailed)
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 9, registry.ModelVersionPatch{AddMetrics: map[string]float64{"x": 1}}, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, "version 9")

	// Added with other changes, in the same write.
	v, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 2, registry.ModelVersionPatch{
		Description: ptr("evaluated"), AddMetrics: map[string]float64{"recall": 0.6},
	}, registry.Precondition{})
	ok(t, err)
	if v.Description != "evaluated" || v.Metrics["recall"] != 0.6 || v.Revision != 2 {
		t.Errorf("description and metric in one patch: %+v", v)
	}
	equal(t, "ordered by recall", e.versionNumbers("churn", registry.VersionFilter{OrderBy: "metrics.recall desc"}), []int64{2, 1})
}

func testVersionDelete(e *env) {
	t := e.t
	e.model("churn")
	e.version("churn")
	e.version("churn")
	err := e.s.DeleteVersion(e.ctx, e.actor, "churn", 9, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, "version 9")
	err = e.s.DeleteVersion(e.ctx, e.actor, "nope", 1, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
	err = e.s.DeleteVersion(e.ctx, e.actor, "churn", 1, registry.Precondition{IfRevision: 5})
	wantCode(t, err, registry.CodePreconditionFailed, "1", "5")

	e.assign("churn", "production", 1)
	err = e.s.DeleteVersion(e.ctx, e.actor, "churn", 1, registry.Precondition{})
	re := wantCode(t, err, registry.CodeConflict)
	equal(t, "message", re.Message, "version 1 holds stage production; assign another version or unassign the stage first")

	_, err = e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "churn-api", Model: "churn", Routes: []registry.Route{
		{Name: "stable", Version: 2, UpstreamURL: "http://churn-v2:8080", Weight: 100},
	}})
	ok(t, err)
	err = e.s.DeleteVersion(e.ctx, e.actor, "churn", 2, registry.Precondition{})
	wantCode(t, err, registry.CodeConflict, `"churn-api"`)

	ok(t, e.s.UnassignStage(e.ctx, e.actor, "churn", "production", "", registry.Precondition{}))
	ok(t, e.s.DeleteVersion(e.ctx, e.actor, "churn", 1, registry.Precondition{IfRevision: 1}))
	_, err = e.s.GetVersion(e.ctx, "churn", 1)
	wantCode(t, err, registry.CodeNotFound)
	err = e.s.DeleteVersion(e.ctx, e.actor, "churn", 1, registry.Precondition{})
	wantCode(t, err, registry.CodeNotFound)
	// History still names the deleted version.
	h := e.history("churn", "production")
	equal(t, "history kept", len(h), 2)
}

func testVersionListFilters(e *env) {
	t := e.t
	e.model("churn")
	e.version("churn", func(v *registry.ModelVersionCreate) { v.Tags = map[string]string{"team": "a"} })
	e.version("churn", func(v *registry.ModelVersionCreate) {
		v.Tags = map[string]string{"team": "b"}
		v.Flagged = true
	})
	e.version("churn", func(v *registry.ModelVersionCreate) { v.Tags = map[string]string{"other": "x"} })
	e.version("churn")
	e.assign("churn", "staging", 1)
	e.assign("churn", "production", 3)

	list := func(f registry.VersionFilter) []int64 {
		t.Helper()
		return e.versionNumbers("churn", f)
	}
	cases := []struct {
		name string
		f    registry.VersionFilter
		want []int64
	}{
		{"all", registry.VersionFilter{}, []int64{1, 2, 3, 4}},
		{"version desc", registry.VersionFilter{OrderBy: "version desc"}, []int64{4, 3, 2, 1}},
		{"version asc", registry.VersionFilter{OrderBy: "version asc"}, []int64{1, 2, 3, 4}},
		{"stage staging", registry.VersionFilter{Stage: "staging"}, []int64{1}},
		{"stage production", registry.VersionFilter{Stage: "production"}, []int64{3}},
		{"unassigned stage", registry.VersionFilter{Stage: "dev"}, []int64{}},
		{"tag key", registry.VersionFilter{Tag: "team"}, []int64{1, 2}},
		{"tag key=value", registry.VersionFilter{Tag: "team=b"}, []int64{2}},
		{"tag key=empty value", registry.VersionFilter{Tag: "team="}, []int64{}},
		{"flagged", registry.VersionFilter{Flagged: ptr(true)}, []int64{2}},
		{"not flagged", registry.VersionFilter{Flagged: ptr(false)}, []int64{1, 3, 4}},
		{"tag and not flagged", registry.VersionFilter{Tag: "team", Flagged: ptr(false)}, []int64{1}},
		{"stage and tag", registry.VersionFilter{Stage: "production", Tag: "other=x"}, []int64{3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			equal(t, "versions", e.with(t).versionNumbers("churn", tc.f), tc.want)
		})
	}

	p, err := e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{Stage: "staging"})
	ok(t, err)
	equal(t, "stages in list items", p.Items[0].Stages, []string{"staging"})

	// Tag filters follow tag updates.
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 4, registry.ModelVersionPatch{Tags: &map[string]string{"team": "a"}}, registry.Precondition{})
	ok(t, err)
	_, err = e.s.UpdateVersion(e.ctx, e.actor, "churn", 1, registry.ModelVersionPatch{Tags: &map[string]string{}}, registry.Precondition{})
	ok(t, err)
	equal(t, "after tag updates", list(registry.VersionFilter{Tag: "team=a"}), []int64{4})

	_, err = e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{Stage: "Prod"})
	wantField(t, err, "stage")
	_, err = e.s.ListVersions(e.ctx, "nope", registry.VersionFilter{})
	wantCode(t, err, registry.CodeNotFound, `"nope"`)

	// Items carry every stage they hold, sorted. A model without versions
	// lists none; a missing model is not found whatever the filter.
	e.assign("churn", "canary", 3)
	p, err = e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{Stage: "production"})
	ok(t, err)
	equal(t, "two stages in a list item, sorted", p.Items[0].Stages, []string{"canary", "production"})
	e.model("empty")
	p, err = e.s.ListVersions(e.ctx, "empty", registry.VersionFilter{OrderBy: "metrics.auc desc"})
	ok(t, err)
	equal(t, "versions of a model without any", len(p.Items), 0)
	_, err = e.s.ListVersions(e.ctx, "nope", registry.VersionFilter{Tag: "team", OrderBy: "metrics.auc desc"})
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
}

func testVersionListOrderByMetric(e *env) {
	t := e.t
	e.model("churn")
	for _, auc := range []float64{0.8, 0.9, -1, 0.8, 0.95, -1} { // -1: no auc
		e.version("churn", func(v *registry.ModelVersionCreate) {
			v.Metrics = map[string]float64{"loss": 0.5}
			if auc >= 0 {
				v.Metrics["auc"] = auc
			}
		})
	}
	cases := []struct {
		order string
		want  []int64
	}{
		// Versions without the metric come last in both directions; ties
		// and metric-less versions are ordered by version in the same
		// direction.
		{"metrics.auc", []int64{1, 4, 2, 5, 3, 6}},
		{"metrics.auc asc", []int64{1, 4, 2, 5, 3, 6}},
		{"metrics.auc desc", []int64{5, 2, 4, 1, 6, 3}},
		{"metrics.missing desc", []int64{6, 5, 4, 3, 2, 1}},
		{"metrics.loss", []int64{1, 2, 3, 4, 5, 6}},
	}
	for _, tc := range cases {
		t.Run(tc.order, func(t *testing.T) {
			e := e.with(t)
			for _, size := range []int{0, 1, 2, 4} {
				f := registry.VersionFilter{OrderBy: tc.order, ListOptions: registry.ListOptions{PageSize: size}}
				equal(t, fmt.Sprintf("order with page size %d", size), e.versionNumbers("churn", f), tc.want)
			}
		})
	}
	got := e.versionNumbers("churn", registry.VersionFilter{OrderBy: "metrics.auc desc", Flagged: ptr(false)})
	equal(t, "ordered and filtered", got, []int64{5, 2, 4, 1, 6, 3})

	for _, bad := range []string{"metrics.", "accuracy", "version sideways", "metrics.auc desc extra"} {
		_, err := e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{OrderBy: bad})
		wantField(t, err, "order_by")
	}
	p, err := e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{OrderBy: "metrics.auc", ListOptions: registry.ListOptions{PageSize: 2}})
	ok(t, err)
	_, err = e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{OrderBy: "metrics.auc desc", ListOptions: registry.ListOptions{PageToken: p.NextPageToken}})
	wantField(t, err, "page_token")
}

func testVersionListPagination(e *env) {
	t := e.t
	e.model("churn")
	for range 25 {
		e.version("churn")
	}
	var got []int64
	var sizes []int
	token := ""
	for {
		p, err := e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: 10, PageToken: token}})
		ok(t, err)
		sizes = append(sizes, len(p.Items))
		for _, v := range p.Items {
			got = append(got, v.Version)
		}
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	equal(t, "page sizes", sizes, []int{10, 10, 5})
	equal(t, "each version once, in order", got, seq(1, 25))
	desc := e.versionNumbers("churn", registry.VersionFilter{OrderBy: "version desc", ListOptions: registry.ListOptions{PageSize: 10}})
	equal(t, "descending", sortedInts(desc), seq(1, 25))
	equal(t, "descending starts at the newest", desc[0], int64(25))
	_, err := e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{ListOptions: registry.ListOptions{PageToken: "%%%"}})
	wantField(t, err, "page_token")
	_, err = e.s.ListVersions(e.ctx, "churn", registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: 5000}})
	wantField(t, err, "page_size")
}
