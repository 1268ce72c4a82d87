package server

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func TestModelCRUD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		res := e.do(req{method: "POST", path: "/api/v1/models", token: e.writer, body: registry.ModelCreate{
			Name: "churn", Owner: "ds-team", Tags: map[string]string{"team": "ds"},
			StagePolicies: map[string]registry.StagePolicy{"production": {RequireStage: "staging", MinSoak: "24h"}},
		}}, http.StatusCreated)
		m := into[registry.Model](t, res)
		if m.Name != "churn" || m.Owner != "ds-team" || m.Tags["team"] != "ds" || m.StagePolicies["production"].MinSoak != "24h" || m.Revision < 1 {
			t.Fatalf("created model = %+v", m)
		}
		if got, want := res.header.Get("Location"), e.url+"/api/v1/models/churn"; got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
		tag := res.header.Get("ETag")
		if tag != etag(m.Revision) {
			t.Errorf("ETag = %q, want %q", tag, etag(m.Revision))
		}
		if res.header.Get("Cache-Control") != "no-store" || res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("security headers missing: %v", res.header)
		}

		res = e.do(req{method: "GET", path: "/api/v1/models/churn", token: e.reader}, http.StatusOK)
		if got := into[registry.Model](t, res); got.Name != "churn" || got.Revision != m.Revision || res.header.Get("ETag") != tag {
			t.Errorf("GET = %+v, ETag %q", got, res.header.Get("ETag"))
		}

		e.expectProblem(req{method: "POST", path: "/api/v1/models", token: e.writer, body: registry.ModelCreate{Name: "churn"}}, http.StatusConflict, registry.CodeAlreadyExists)

		// Updates honour If-Match in every accepted form.
		res = e.do(req{method: "PATCH", path: "/api/v1/models/churn", token: e.writer,
			body: map[string]any{"description": "churn model"}, header: map[string]string{"If-Match": tag}}, http.StatusOK)
		m2 := into[registry.Model](t, res)
		if m2.Description != "churn model" || m2.Owner != "ds-team" || m2.Revision <= m.Revision || res.header.Get("ETag") != etag(m2.Revision) {
			t.Fatalf("patched = %+v, ETag %q", m2, res.header.Get("ETag"))
		}
		p := e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn", token: e.writer,
			body: map[string]any{"owner": "x"}, header: map[string]string{"If-Match": tag}}, http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		if p.Instance != "/api/v1/models/churn" {
			t.Errorf("instance = %q", p.Instance)
		}
		for _, form := range []func(rev int64) string{
			func(rev int64) string { return `"1", ` + etag(rev) },
			func(rev int64) string { return `W/"` + itoa(rev) + `", ` + etag(rev) },
			func(int64) string { return "*" },
		} {
			m2 = into[registry.Model](t, e.do(req{method: "PATCH", path: "/api/v1/models/churn", token: e.writer,
				body: map[string]any{"owner": "ml-team"}, header: map[string]string{"If-Match": form(m2.Revision)}}, http.StatusOK))
		}
		e.expectProblem(req{method: "PATCH", path: "/api/v1/models/nope", token: e.writer,
			body: map[string]any{"owner": "x"}, header: map[string]string{"If-Match": "*"}}, http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		p = e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn", token: e.writer,
			body: map[string]any{"owner": "x"}, header: map[string]string{"If-Match": "yesterday"}}, http.StatusBadRequest, registry.CodeInvalidArgument)
		if p.Field != "If-Match" || !strings.Contains(p.Detail, "If-Match") {
			t.Errorf("bad If-Match problem = %+v", p)
		}
		e.expectProblem(req{method: "PATCH", path: "/api/v1/models/nope", token: e.writer, body: map[string]any{}}, http.StatusNotFound, registry.CodeNotFound)

		e.createModel(registry.ModelCreate{Name: "fraud"})
		page := into[registry.Page[registry.Model]](t, e.do(req{method: "GET", path: "/api/v1/models", token: e.reader}, http.StatusOK))
		var names []string
		for _, m := range page.Items {
			names = append(names, m.Name)
		}
		if !slices.Equal(names, []string{"churn", "fraud"}) || page.NextPageToken != "" {
			t.Errorf("list = %v, next %q", names, page.NextPageToken)
		}

		e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn", token: e.writer, header: map[string]string{"If-Match": tag}}, http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		e.do(req{method: "DELETE", path: "/api/v1/models/churn", token: e.writer, header: map[string]string{"If-Match": etag(m2.Revision)}}, http.StatusNoContent)
		e.expectProblem(req{method: "GET", path: "/api/v1/models/churn", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)
		e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn", token: e.writer}, http.StatusNotFound, registry.CodeNotFound)

		if got := e.Changes(); !slices.Contains(got, "model:churn") || !slices.Contains(got, "model:fraud") {
			t.Errorf("OnChange calls = %v", got)
		}
	})
}

func TestVersions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "churn"})
		res := e.do(req{method: "POST", path: "/api/v1/models/churn/versions", token: e.writer, body: registry.ModelVersionCreate{
			Source: "s3://models/churn/1/model.onnx", Checksum: sha("1"), Format: "onnx",
			Metrics: map[string]float64{"auc": 0.80}, Tags: map[string]string{"env": "a"},
			Lineage: &registry.Lineage{RunID: "run-1"},
		}}, http.StatusCreated)
		v1 := into[registry.ModelVersion](t, res)
		if v1.Version != 1 || v1.CreatedBy != "writer" || v1.Model != "churn" || v1.Lineage == nil || v1.Lineage.RunID != "run-1" || v1.Stages == nil {
			t.Fatalf("v1 = %+v", v1)
		}
		if got, want := res.header.Get("Location"), e.url+"/api/v1/models/churn/versions/1"; got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
		if res.header.Get("ETag") != etag(v1.Revision) {
			t.Errorf("ETag = %q", res.header.Get("ETag"))
		}
		v2 := e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2"), Metrics: map[string]float64{"auc": 0.85}})
		if v2.Version != 2 {
			t.Fatalf("v2.version = %d", v2.Version)
		}

		p := e.expectProblem(req{method: "POST", path: "/api/v1/models/churn/versions", token: e.writer, body: registry.ModelVersionCreate{
			Source: "s3://elsewhere/model.onnx", Checksum: sha("1"), Format: "onnx",
		}}, http.StatusConflict, registry.CodeAlreadyExists)
		if !strings.Contains(p.Detail, "version 1") {
			t.Errorf("duplicate checksum problem does not name version 1: %q", p.Detail)
		}

		// Numbers are never reused, even after a delete.
		e.do(req{method: "DELETE", path: "/api/v1/models/churn/versions/2", token: e.writer, header: map[string]string{"If-Match": etag(v2.Revision)}}, http.StatusNoContent)
		e.expectProblem(req{method: "GET", path: "/api/v1/models/churn/versions/2", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)
		v3 := e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("3"), Metrics: map[string]float64{"auc": 0.95}})
		if v3.Version != 3 {
			t.Fatalf("version after delete = %d, want 3", v3.Version)
		}
		// The deleted checksum may come back, as a new number.
		v4 := e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2")})
		if v4.Version != 4 {
			t.Fatalf("version = %d, want 4", v4.Version)
		}

		res = e.do(req{method: "GET", path: "/api/v1/models/churn/versions/3", token: e.reader}, http.StatusOK)
		if got := into[registry.ModelVersion](t, res); got.Checksum != sha("3") || res.header.Get("ETag") != etag(got.Revision) {
			t.Errorf("GET v3 = %+v, ETag %q", got, res.header.Get("ETag"))
		}

		// Mutable fields change; artifact fields are refused by name.
		res = e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: e.writer, header: map[string]string{"If-Match": etag(v1.Revision)},
			body: map[string]any{"description": "first", "flagged": true, "flag_reason": "leaky feature"}}, http.StatusOK)
		if got := into[registry.ModelVersion](t, res); !got.Flagged || got.FlagReason != "leaky feature" || got.Description != "first" || got.Checksum != sha("1") {
			t.Errorf("patched = %+v", got)
		}
		e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: e.writer, header: map[string]string{"If-Match": etag(v1.Revision)},
			body: map[string]any{"description": "stale"}}, http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		for _, field := range []string{"source", "checksum", "format", "parameters", "metrics", "lineage", "signature"} {
			p := e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: e.writer,
				body: map[string]any{"description": "x", field: nil}}, http.StatusBadRequest, registry.CodeInvalidArgument)
			want := field + ": is immutable; create a new version instead"
			if field == "metrics" {
				want = "metrics: recorded metrics are immutable; add metrics the version does not have with add_metrics, or create a new version to change one"
			}
			if p.Field != field || p.Rule != "immutable" || p.Detail != want {
				t.Errorf("PATCH %s: %+v", field, p)
			}
		}
		p = e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: e.writer,
			body: map[string]any{"stages": []string{"x"}}}, http.StatusBadRequest, registry.CodeInvalidArgument)
		if p.Detail != `unknown field "stages"` {
			t.Errorf("unknown field problem = %+v", p)
		}

		// Filters and ordering.
		listed := func(query string) []int64 {
			t.Helper()
			page := into[registry.Page[registry.ModelVersion]](t, e.do(req{method: "GET", path: "/api/v1/models/churn/versions" + query, token: e.reader}, http.StatusOK))
			var got []int64
			for _, v := range page.Items {
				got = append(got, v.Version)
			}
			return got
		}
		e.assign("churn", "staging", 3, e.writer, http.StatusOK)
		for query, want := range map[string][]int64{
			"":                                    {1, 3, 4},
			"?order_by=version+desc":              {4, 3, 1},
			"?order_by=metrics.auc+desc":          {3, 1, 4},
			"?order_by=metrics.auc":               {1, 3, 4},
			"?flagged=true":                       {1},
			"?flagged=false":                      {3, 4},
			"?tag=env":                            {1},
			"?tag=env%3Da":                        {1},
			"?tag=env%3Db":                        nil,
			"?stage=staging":                      {3},
			"?stage=production":                   nil,
			"?flagged=false&order_by=version+asc": {3, 4},
		} {
			if got := listed(query); !slices.Equal(got, want) {
				t.Errorf("versions%s = %v, want %v", query, got, want)
			}
		}

		for _, bad := range []string{"abc", "0", "-1", "1.5", "99999999999999999999", "+1"} {
			p := e.expectProblem(req{method: "GET", path: "/api/v1/models/churn/versions/" + bad, token: e.reader}, http.StatusBadRequest, registry.CodeInvalidArgument)
			if p.Field != "version" {
				t.Errorf("version %q: field %q", bad, p.Field)
			}
		}
		e.expectProblem(req{method: "POST", path: "/api/v1/models/nope/versions", token: e.writer, body: registry.ModelVersionCreate{
			Source: "s3://x/y", Checksum: sha("9"), Format: "onnx"}}, http.StatusNotFound, registry.CodeNotFound)

		if got := e.Changes(); !slices.Contains(got, "model_version:churn/1") || !slices.Contains(got, "model_version:churn/2") {
			t.Errorf("OnChange calls = %v", got)
		}
	})
}

// TestAddMetrics: an evaluation that finishes after registration adds
// its metrics to the version (a staging-only CI token may), the policy
// that refused the version for lack of the metric then lets it through,
// the change is audited, and recorded values never change.
func TestAddMetrics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ci := e.token("ci", registry.ScopeWrite, "staging")
		e.createModel(registry.ModelCreate{Name: "churn", StagePolicies: map[string]registry.StagePolicy{
			"staging": {MinMetrics: map[string]float64{"auc": 0.85, "f1": 0.75}},
		}})
		v1 := e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1"), Metrics: map[string]float64{"auc": 0.91}})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2"), Metrics: map[string]float64{"auc": 0.9, "f1": 0.77}})
		p := e.expectProblem(req{method: "PUT", path: "/api/v1/models/churn/stages/staging", token: ci, body: registry.StageAssign{Version: 1}},
			http.StatusUnprocessableEntity, registry.CodePolicyViolation)
		if p.Rule != "min_metrics" || !strings.Contains(p.Detail, "f1") {
			t.Fatalf("before the metric: %+v", p)
		}

		path := "/api/v1/models/churn/versions/1"
		res := e.do(req{method: "PATCH", path: path, token: ci, header: map[string]string{"If-Match": etag(v1.Revision)},
			body: map[string]any{"add_metrics": map[string]float64{"f1": 0.8, "auc": 0.91}}}, http.StatusOK)
		v := into[registry.ModelVersion](t, res)
		if !maps.Equal(v.Metrics, map[string]float64{"auc": 0.91, "f1": 0.8}) || v.Revision != 2 || res.header.Get("ETag") != etag(2) {
			t.Fatalf("after adding f1: %+v (ETag %s)", v, res.header.Get("ETag"))
		}
		page := into[registry.Page[registry.Event]](t, e.do(req{method: "GET", path: "/api/v1/events?model=churn", token: e.reader}, http.StatusOK))
		last := page.Items[len(page.Items)-1]
		var before, after registry.ModelVersion
		if err := json.Unmarshal(last.Before, &before); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(last.After, &after); err != nil {
			t.Fatal(err)
		}
		if last.Action != registry.ActionVersionUpdate || last.Actor != "ci" || last.Subject != "churn/1" ||
			len(before.Metrics) != 1 || after.Metrics["f1"] != 0.8 {
			t.Errorf("event = %s %s by %s, before %v after %v", last.Action, last.Subject, last.Actor, before.Metrics, after.Metrics)
		}
		listed := into[registry.Page[registry.ModelVersion]](t, e.do(req{method: "GET", path: "/api/v1/models/churn/versions?order_by=metrics.f1+desc", token: e.reader}, http.StatusOK))
		if len(listed.Items) != 2 || listed.Items[0].Version != 1 {
			t.Errorf("ordered by f1: %+v", listed.Items)
		}
		e.assign("churn", "staging", 1, ci, http.StatusOK)

		// The same value again is no change.
		events := e.countEvents()
		v = into[registry.ModelVersion](t, e.do(req{method: "PATCH", path: path, token: ci,
			body: map[string]any{"add_metrics": map[string]float64{"f1": 0.8}}}, http.StatusOK))
		if v.Revision != 2 || e.countEvents() != events {
			t.Errorf("adding the same value again: revision %d, %d events", v.Revision, e.countEvents()-events)
		}
		// A recorded value never changes.
		p = e.expectProblem(req{method: "PATCH", path: path, token: e.admin,
			body: map[string]any{"add_metrics": map[string]float64{"f1": 0.9, "recall": 0.5}}}, http.StatusBadRequest, registry.CodeInvalidArgument)
		if p.Field != "add_metrics.f1" || p.Rule != "immutable" || !strings.Contains(p.Detail, "0.8") {
			t.Errorf("changing f1: %+v", p)
		}
		e.expectProblem(req{method: "PATCH", path: path, token: e.writer,
			body: map[string]any{"add_metrics": map[string]any{"x": "high"}}}, http.StatusBadRequest, registry.CodeInvalidArgument)
		e.expectProblem(req{method: "PATCH", path: path, token: e.reader,
			body: map[string]any{"add_metrics": map[string]float64{"recall": 0.5}}}, http.StatusForbidden, registry.CodePermissionDenied)
		got := into[registry.ModelVersion](t, e.do(req{method: "GET", path: path, token: e.reader}, http.StatusOK))
		if got.Revision != 2 || len(got.Metrics) != 2 || e.countEvents() != events {
			t.Errorf("refused changes changed the version: %+v", got)
		}
	})
}

func TestStagesPromoteAndRollback(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "churn"})
		for _, seed := range []string{"1", "2"} {
			e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha(seed)})
		}
		path := "/api/v1/models/churn/stages/staging"

		res := e.assign("churn", "staging", 1, e.writer, http.StatusOK)
		a := into[registry.StageAssignment](t, res)
		if a.Version != 1 || a.PreviousVersion != 0 || a.AssignedBy != "writer" || a.Stage != "staging" || res.header.Get("ETag") != etag(a.Revision) {
			t.Fatalf("assign = %+v, ETag %q", a, res.header.Get("ETag"))
		}
		first := res.header.Get("ETag")
		res = e.do(req{method: "PUT", path: path, token: e.writer, body: registry.StageAssign{Version: 2, Reason: "better auc"},
			header: map[string]string{"If-Match": first}}, http.StatusOK)
		a = into[registry.StageAssignment](t, res)
		if a.Version != 2 || a.PreviousVersion != 1 || a.Reason != "better auc" {
			t.Fatalf("promote = %+v", a)
		}
		e.expectProblem(req{method: "PUT", path: path, token: e.writer, body: registry.StageAssign{Version: 1},
			header: map[string]string{"If-Match": first}}, http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		// Rollback.
		a = into[registry.StageAssignment](t, e.do(req{method: "PUT", path: path, token: e.writer, body: registry.StageAssign{Version: 1, Reason: "rollback"},
			header: map[string]string{"If-Match": res.header.Get("ETag")}}, http.StatusOK))
		if a.Version != 1 || a.PreviousVersion != 2 {
			t.Fatalf("rollback = %+v", a)
		}

		res = e.do(req{method: "GET", path: path, token: e.reader}, http.StatusOK)
		if got := into[registry.StageAssignment](t, res); got.Version != 1 || res.header.Get("ETag") != etag(got.Revision) {
			t.Errorf("GET stage = %+v ETag %q", got, res.header.Get("ETag"))
		}
		stages := into[registry.Page[registry.StageAssignment]](t, e.do(req{method: "GET", path: "/api/v1/models/churn/stages", token: e.reader}, http.StatusOK))
		if len(stages.Items) != 1 || stages.Items[0].Stage != "staging" {
			t.Errorf("stages = %+v", stages)
		}
		if v := into[registry.ModelVersion](t, e.do(req{method: "GET", path: "/api/v1/models/churn/versions/1", token: e.reader}, http.StatusOK)); !slices.Equal(v.Stages, []string{"staging"}) {
			t.Errorf("v1.stages = %v", v.Stages)
		}

		hist := into[registry.Page[registry.StageHistoryEntry]](t, e.do(req{method: "GET", path: path + "/history", token: e.reader}, http.StatusOK))
		var got [][2]int64
		for _, h := range hist.Items {
			got = append(got, [2]int64{h.Version, h.PreviousVersion})
		}
		if want := [][2]int64{{1, 2}, {2, 1}, {1, 0}}; !slices.Equal(got, want) {
			t.Errorf("history (version, previous) newest first = %v, want %v", got, want)
		}

		// A version holding a stage cannot be deleted.
		p := e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn/versions/1", token: e.writer}, http.StatusConflict, registry.CodeConflict)
		if !strings.Contains(p.Detail, "staging") {
			t.Errorf("delete held version: detail %q does not name the stage", p.Detail)
		}

		// Unknown version, flagged version.
		e.expectProblem(req{method: "PUT", path: path, token: e.writer, body: registry.StageAssign{Version: 99}}, http.StatusNotFound, registry.CodeNotFound)
		e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/2", token: e.writer, body: map[string]any{"flagged": true, "flag_reason": "bias"}}, http.StatusOK)
		for _, q := range []string{"", "?dry_run=true"} {
			p := e.expectProblem(req{method: "PUT", path: "/api/v1/models/churn/stages/production" + q, token: e.writer, body: registry.StageAssign{Version: 2}},
				http.StatusUnprocessableEntity, registry.CodePolicyViolation)
			if p.Rule != "flagged" || !strings.Contains(p.Detail, "flagged") {
				t.Errorf("flagged promotion%s: %+v", q, p)
			}
		}

		// Unassign.
		cur := e.do(req{method: "GET", path: path, token: e.reader}, http.StatusOK).header.Get("ETag")
		e.expectProblem(req{method: "DELETE", path: path, token: e.writer, header: map[string]string{"If-Match": first}}, http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		e.do(req{method: "DELETE", path: path, token: e.writer, header: map[string]string{"If-Match": cur}}, http.StatusNoContent)
		e.expectProblem(req{method: "GET", path: path, token: e.reader}, http.StatusNotFound, registry.CodeNotFound)
		e.expectProblem(req{method: "PUT", path: path, token: e.writer, body: registry.StageAssign{Version: 1}, header: map[string]string{"If-Match": "*"}},
			http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		hist = into[registry.Page[registry.StageHistoryEntry]](t, e.do(req{method: "GET", path: path + "/history", token: e.reader}, http.StatusOK))
		if len(hist.Items) != 4 || hist.Items[0].Action != registry.StageActionUnassign || hist.Items[0].PreviousVersion != 1 {
			t.Errorf("history after unassign = %+v", hist.Items)
		}
		e.do(req{method: "DELETE", path: "/api/v1/models/churn/versions/1", token: e.writer}, http.StatusNoContent)

		if got := e.Changes(); !slices.Contains(got, "stage_assignment:churn/staging") {
			t.Errorf("OnChange calls = %v", got)
		}
	})
}

func TestStagePolicies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "fraud", StagePolicies: map[string]registry.StagePolicy{
			"production": {RequireStage: "staging", MinSoak: "24h"},
			"gold":       {MinMetrics: map[string]float64{"auc": 0.9}},
			"fast":       {MaxMetrics: map[string]float64{"latency_ms": 50}},
			"shadow":     {RequireSignatureMatch: true},
		}})
		sigA := &registry.Signature{Inputs: []registry.TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 8}}}}
		sigB := &registry.Signature{Inputs: []registry.TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 9}}}}
		e.createVersion("fraud", registry.ModelVersionCreate{Checksum: sha("f1"), Metrics: map[string]float64{"auc": 0.95, "latency_ms": 40}, Signature: sigA})
		e.createVersion("fraud", registry.ModelVersionCreate{Checksum: sha("f2"), Metrics: map[string]float64{"auc": 0.85, "latency_ms": 60}, Signature: sigB})
		e.createVersion("fraud", registry.ModelVersionCreate{Checksum: sha("f3")})
		e.createVersion("fraud", registry.ModelVersionCreate{Checksum: sha("f4"), Flagged: true, FlagReason: "drift"})
		e.assign("fraud", "shadow", 1, e.writer, http.StatusOK)
		e.assign("fraud", "staging", 2, e.writer, http.StatusOK)

		for _, c := range []struct {
			name    string
			stage   string
			version int64
			rule    string
		}{
			{"require_stage never held", "production", 1, "require_stage"},
			{"min_soak too short", "production", 2, "min_soak"},
			{"min_metrics below", "gold", 2, "min_metrics"},
			{"min_metrics missing", "gold", 3, "min_metrics"},
			{"max_metrics above", "fast", 2, "max_metrics"},
			{"max_metrics missing", "fast", 3, "max_metrics"},
			{"signature differs", "shadow", 2, "require_signature_match"},
			{"flagged", "staging", 4, "flagged"},
		} {
			t.Run(c.name, func(t *testing.T) {
				events := e.countEvents()
				path := "/api/v1/models/fraud/stages/" + c.stage
				for _, q := range []string{"?dry_run=true", ""} {
					r := e.do(req{method: "PUT", path: path + q, token: e.writer, body: registry.StageAssign{Version: c.version}}, http.StatusUnprocessableEntity)
					p := problem(t, r, registry.CodePolicyViolation)
					if p.Rule != c.rule || !strings.Contains(p.Detail, "stage policy rule "+c.rule+" failed") {
						t.Errorf("PUT %s%s version %d: rule %q detail %q, want rule %s", c.stage, q, c.version, p.Rule, p.Detail, c.rule)
					}
				}
				if got := e.countEvents(); got != events {
					t.Errorf("refused assignment wrote %d events", got-events)
				}
			})
		}

		// An allowed dry run answers what would happen and writes nothing.
		events := e.countEvents()
		dry := into[registry.StageDryRun](t, e.do(req{method: "PUT", path: "/api/v1/models/fraud/stages/gold?dry_run=true", token: e.writer, body: registry.StageAssign{Version: 1}}, http.StatusOK))
		if want := (registry.StageDryRun{Allowed: true, Model: "fraud", Stage: "gold", Version: 1, Permitted: true}); dry != want {
			t.Errorf("dry run = %+v, want %+v", dry, want)
		}
		e.expectProblem(req{method: "GET", path: "/api/v1/models/fraud/stages/gold", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)
		if got := e.countEvents(); got != events {
			t.Errorf("dry run wrote %d events", got-events)
		}

		// After the soak, the same promotion passes, first as a dry run.
		e.clock.Advance(25 * time.Hour)
		dry = into[registry.StageDryRun](t, e.do(req{method: "PUT", path: "/api/v1/models/fraud/stages/production?dry_run=true", token: e.writer, body: registry.StageAssign{Version: 2}}, http.StatusOK))
		if !dry.Allowed || dry.Version != 2 || dry.PreviousVersion != 0 {
			t.Errorf("dry run after soak = %+v", dry)
		}
		e.expectProblem(req{method: "GET", path: "/api/v1/models/fraud/stages/production", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)
		e.assign("fraud", "production", 2, e.writer, http.StatusOK)
		e.assign("fraud", "gold", 1, e.writer, http.StatusOK)
		e.assign("fraud", "fast", 1, e.writer, http.StatusOK)
	})
}

func TestStageRestrictedToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ci := e.token("ci", registry.ScopeWrite, "staging")
		e.createModel(registry.ModelCreate{Name: "churn"})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1")})
		e.assign("churn", "production", 1, e.writer, http.StatusOK)

		for _, r := range []req{
			{method: "PUT", path: "/api/v1/models/churn/stages/production", token: ci, body: registry.StageAssign{Version: 1}},
			{method: "DELETE", path: "/api/v1/models/churn/stages/production", token: ci},
		} {
			p := e.expectProblem(r, http.StatusForbidden, registry.CodePermissionDenied)
			if p.Detail != `token "ci" may assign stages [staging], not "production"` {
				t.Errorf("%s %s: detail %q", r.method, r.path, p.Detail)
			}
		}
		// A dry run answers the policy and whether this token could make
		// the change, so a plan fails before apply would.
		dry := into[registry.StageDryRun](t, e.do(req{method: "PUT", path: "/api/v1/models/churn/stages/production?dry_run=true", token: ci, body: registry.StageAssign{Version: 1}}, http.StatusOK))
		if !dry.Allowed || dry.Permitted || dry.Permission != `token "ci" may assign stages [staging], not "production"` {
			t.Errorf("restricted dry run: %+v", dry)
		}
		e.assign("churn", "staging", 1, ci, http.StatusOK)
		e.do(req{method: "DELETE", path: "/api/v1/models/churn/stages/staging", token: ci}, http.StatusNoContent)
		// A read token may ask (a dry run changes nothing) and learns that
		// it could not make the change; it cannot assign for real.
		dry = into[registry.StageDryRun](t, e.do(req{method: "PUT", path: "/api/v1/models/churn/stages/staging?dry_run=true", token: e.reader, body: registry.StageAssign{Version: 1}}, http.StatusOK))
		if !dry.Allowed || dry.Permitted || !strings.Contains(dry.Permission, "needs scope write") {
			t.Errorf("read token dry run: %+v", dry)
		}
		p := e.expectProblem(req{method: "PUT", path: "/api/v1/models/churn/stages/staging", token: e.reader, body: registry.StageAssign{Version: 1}},
			http.StatusForbidden, registry.CodePermissionDenied)
		if !strings.Contains(p.Detail, "needs scope write") {
			t.Errorf("read token: %q", p.Detail)
		}
		// A policy violation is reported to a read token too.
		e.do(req{method: "PATCH", path: "/api/v1/models/churn", token: e.writer, body: map[string]any{
			"stage_policies": map[string]any{"staging": map[string]any{"min_metrics": map[string]float64{"auc": 0.9}}}}}, http.StatusOK)
		p = e.expectProblem(req{method: "PUT", path: "/api/v1/models/churn/stages/staging?dry_run=true", token: e.reader, body: registry.StageAssign{Version: 1}},
			http.StatusUnprocessableEntity, registry.CodePolicyViolation)
		if p.Rule != "min_metrics" {
			t.Errorf("read token policy dry run: rule %q", p.Rule)
		}
	})
}

func TestAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "churn"})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1")})

		for _, c := range []struct {
			name, header string
		}{
			{"missing", ""},
			{"not bearer", "Basic dXNlcjpwYXNz"},
			{"empty bearer", "Bearer "},
			{"unknown", "Bearer mlr_notarealtoken"},
		} {
			r := e.do(req{method: "GET", path: "/api/v1/models", header: map[string]string{"Authorization": c.header}}, http.StatusUnauthorized)
			problem(t, r, registry.CodeUnauthenticated)
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate = %q", c.name, r.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(r.body), "notarealtoken") {
				t.Errorf("%s: the token is echoed: %s", c.name, r.body)
			}
		}

		// Under-scoped tokens.
		p := e.expectProblem(req{method: "POST", path: "/api/v1/models", token: e.reader, body: registry.ModelCreate{Name: "x"}}, http.StatusForbidden, registry.CodePermissionDenied)
		if !strings.Contains(p.Detail, `token "reader" has scope read`) || !strings.Contains(p.Detail, "needs scope write") {
			t.Errorf("read token POST: %q", p.Detail)
		}
		e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn/versions/1", token: e.reader}, http.StatusForbidden, registry.CodePermissionDenied)
		p = e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn?force=true", token: e.writer}, http.StatusForbidden, registry.CodePermissionDenied)
		if !strings.Contains(p.Detail, "needs scope admin") {
			t.Errorf("force delete by writer: %q", p.Detail)
		}
		e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn", token: e.writer}, http.StatusConflict, registry.CodeConflict)
		e.do(req{method: "DELETE", path: "/api/v1/models/churn?force=true", token: e.admin}, http.StatusNoContent)
		e.expectProblem(req{method: "GET", path: "/api/v1/models/churn/versions/1", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)

		// Health needs no token; metrics and the API description do.
		e.do(req{method: "GET", path: "/healthz"}, http.StatusOK)
		e.do(req{method: "GET", path: "/readyz"}, http.StatusOK)
		problem(t, e.do(req{method: "GET", path: "/metrics"}, http.StatusUnauthorized), registry.CodeUnauthenticated)
		problem(t, e.do(req{method: "GET", path: "/openapi.json"}, http.StatusUnauthorized), registry.CodeUnauthenticated)

		// Revocation takes effect once the cached validation expires.
		temp := e.token("temp", registry.ScopeRead)
		e.do(req{method: "GET", path: "/api/v1/models", token: temp}, http.StatusOK)
		if err := e.store.RevokeToken(context.Background(), registry.Actor{Name: "test"}, "temp"); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(defaultTokenCacheTTL)
		problem(t, e.do(req{method: "GET", path: "/api/v1/models", token: temp}, http.StatusUnauthorized), registry.CodeUnauthenticated)

		// An unknown token is remembered for at most a second: a token
		// created right after a failed attempt works a second later.
		secret, hash, err := registry.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		e.do(req{method: "GET", path: "/api/v1/models", token: secret}, http.StatusUnauthorized)
		if _, err := e.store.CreateToken(context.Background(), registry.Actor{Name: "test"}, registry.Token{Name: "late", Scope: registry.ScopeRead, Hash: hash}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(maxNegativeCacheTTL)
		e.do(req{method: "GET", path: "/api/v1/models", token: secret}, http.StatusOK)

		// Use is recorded (in the background; Close waits for it).
		if err := e.srv.Close(); err != nil {
			t.Fatal(err)
		}
		toks, err := e.store.ListTokens(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			if (tok.Name == "reader" || tok.Name == "late") && tok.LastUsedAt == nil {
				t.Errorf("token %s: last_used_at not recorded", tok.Name)
			}
		}
	})
}

func TestInsecureNoAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, func(o *Options) { o.InsecureNoAuth = true; o.PublicURL = "" })
		res := e.do(req{method: "POST", path: "/api/v1/models", body: registry.ModelCreate{Name: "churn"}}, http.StatusCreated)
		if got, want := res.header.Get("Location"), e.url+"/api/v1/models/churn"; got != want {
			t.Errorf("Location without PublicURL = %q, want %q", got, want)
		}
		v := into[registry.ModelVersion](t, e.do(req{method: "POST", path: "/api/v1/models/churn/versions",
			body: registry.ModelVersionCreate{Source: "file:///m.onnx", Checksum: sha("1"), Format: "onnx"}}, http.StatusCreated))
		if v.CreatedBy != "anonymous" {
			t.Errorf("created_by = %q, want anonymous", v.CreatedBy)
		}
		e.do(req{method: "DELETE", path: "/api/v1/models/churn?force=true"}, http.StatusNoContent)
	})
}

func TestEndpoints(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "churn"})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1")})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2")})
		create := registry.EndpointCreate{
			Name: "churn-api", Model: "churn", StickyHeader: "X-User",
			Routes: []registry.Route{
				{Name: "stable", Version: 1, UpstreamURL: "http://churn-v1:8080", Weight: 90},
				{Name: "canary", Version: 2, UpstreamURL: "http://churn-v2:8080", Weight: 10},
			},
			Guard: &registry.Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"},
		}
		res := e.do(req{method: "POST", path: "/api/v1/endpoints", token: e.writer, body: create}, http.StatusCreated)
		ep := into[registry.Endpoint](t, res)
		if ep.URL != e.url+"/serve/churn-api/" || len(ep.Routes) != 2 || ep.Guard == nil || ep.Status != registry.EndpointStatusHealthy {
			t.Fatalf("created endpoint = %+v", ep)
		}
		if got, want := res.header.Get("Location"), e.url+"/api/v1/endpoints/churn-api"; got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
		e.expectProblem(req{method: "POST", path: "/api/v1/endpoints", token: e.writer, body: create}, http.StatusConflict, registry.CodeAlreadyExists)

		res = e.do(req{method: "GET", path: "/api/v1/endpoints/churn-api", token: e.reader}, http.StatusOK)
		if got := into[registry.Endpoint](t, res); got.URL != ep.URL || res.header.Get("ETag") != etag(got.Revision) {
			t.Errorf("GET endpoint = %+v ETag %q", got, res.header.Get("ETag"))
		}
		list := into[registry.Page[registry.Endpoint]](t, e.do(req{method: "GET", path: "/api/v1/endpoints", token: e.reader}, http.StatusOK))
		if len(list.Items) != 1 || list.Items[0].URL != ep.URL {
			t.Errorf("list = %+v", list)
		}

		half := []registry.Route{create.Routes[0], create.Routes[1]}
		half[0].Weight, half[1].Weight = 50, 50
		res = e.do(req{method: "PATCH", path: "/api/v1/endpoints/churn-api", token: e.writer, header: map[string]string{"If-Match": etag(ep.Revision)},
			body: registry.EndpointPatch{Routes: &half, ClearGuard: true}}, http.StatusOK)
		up := into[registry.Endpoint](t, res)
		if up.Routes[0].Weight != 50 || up.Guard != nil || up.Revision <= ep.Revision || up.URL != ep.URL {
			t.Errorf("patched = %+v", up)
		}
		e.expectProblem(req{method: "PATCH", path: "/api/v1/endpoints/churn-api", token: e.writer, header: map[string]string{"If-Match": etag(ep.Revision)},
			body: registry.EndpointPatch{Routes: &half}}, http.StatusPreconditionFailed, registry.CodePreconditionFailed)
		p := e.expectProblem(req{method: "PATCH", path: "/api/v1/endpoints/churn-api", token: e.writer,
			body: map[string]any{"routes": []map[string]any{{"name": "a", "version": 1, "upstream_url": "http://a", "weight": 60}}}}, http.StatusBadRequest, registry.CodeInvalidArgument)
		if p.Field != "routes" || p.Rule != "weights_sum" {
			t.Errorf("weights problem = %+v", p)
		}

		// The endpoint pins its versions and its model.
		e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn/versions/2", token: e.writer}, http.StatusConflict, registry.CodeConflict)

		evs := into[registry.Page[registry.Event]](t, e.do(req{method: "GET", path: "/api/v1/events?endpoint=churn-api", token: e.reader}, http.StatusOK))
		var actions []string
		for _, ev := range evs.Items {
			actions = append(actions, ev.Action)
		}
		if !slices.Equal(actions, []string{registry.ActionEndpointCreate, registry.ActionEndpointUpdate}) {
			t.Errorf("endpoint events = %v", actions)
		}

		e.do(req{method: "DELETE", path: "/api/v1/endpoints/churn-api", token: e.writer, header: map[string]string{"If-Match": res.header.Get("ETag")}}, http.StatusNoContent)
		e.expectProblem(req{method: "GET", path: "/api/v1/endpoints/churn-api", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)
		if got := e.Changes(); !slices.Contains(got, "endpoint:churn-api") {
			t.Errorf("OnChange calls = %v", got)
		}
	})
}
