package client_test

// These tests run the client against a real registry (apptest boots
// app.Main on 127.0.0.1:0 over SQLite in a temp dir).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func newClient(t *testing.T, r *apptest.Registry, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Address: r.URL, Token: token, MaxRetries: -1, UserAgent: "terraform-provider-mlregistry/test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checksum(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func ptr[T any](v T) *T { return &v }

func TestModels(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	c := newClient(t, r, r.AdminToken)
	ctx := context.Background()

	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := c.CreateModel(ctx, registry.ModelCreate{
		Name: "churn", Owner: "ds", Tags: map[string]string{"team": "ds"},
		StagePolicies: map[string]registry.StagePolicy{"production": {RequireStage: "staging", MinSoak: "24h", MinMetrics: map[string]float64{"auc": 0.85}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "churn" || m.Revision < 1 || m.StagePolicies["production"].MinMetrics["auc"] != 0.85 {
		t.Fatalf("created %+v", m)
	}
	if _, err := c.CreateModel(ctx, registry.ModelCreate{Name: "churn"}); !errors.Is(err, registry.ErrAlreadyExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	_, err = c.CreateModel(ctx, registry.ModelCreate{Name: "Bad Name"})
	var regErr *registry.Error
	if !errors.Is(err, registry.ErrInvalidArgument) || !errors.As(err, &regErr) || regErr.Field != "name" || regErr.Rule != "pattern" {
		t.Fatalf("invalid name: %#v", err)
	}
	if !strings.Contains(err.Error(), registry.NameRule) {
		t.Fatalf("error does not state the rule: %v", err)
	}

	got, err := c.GetModel(ctx, "churn")
	if err != nil || got.Revision != m.Revision || got.Owner != "ds" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	upd, err := c.UpdateModel(ctx, "churn", registry.ModelPatch{Description: ptr("predicts churn")}, m.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Revision <= m.Revision || upd.Description != "predicts churn" || upd.Owner != "ds" {
		t.Fatalf("update: %+v", upd)
	}
	// A write with the old revision is refused.
	_, err = c.UpdateModel(ctx, "churn", registry.ModelPatch{Owner: ptr("x")}, m.Revision)
	if !errors.Is(err, registry.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: %v", err)
	}
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 412 {
		t.Fatalf("stale If-Match: %#v", err)
	}

	for _, n := range []string{"a", "b", "c", "d"} {
		if _, err := c.CreateModel(ctx, registry.ModelCreate{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.ListModels(ctx, registry.ListOptions{PageSize: 2})
	if err != nil || len(page.Items) != 2 || page.NextPageToken == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	all, err := c.AllModels(ctx)
	if err != nil || len(all) != 5 {
		t.Fatalf("all models: %d, %v", len(all), err)
	}

	if err := c.DeleteModel(ctx, "churn", false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetModel(ctx, "churn"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := c.DeleteModel(ctx, "churn", false, 0); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestVersionsAndStages(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	c := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	_, err := c.CreateModel(ctx, registry.ModelCreate{
		Name:          "churn",
		StagePolicies: map[string]registry.StagePolicy{"production": {RequireStage: "staging", MinMetrics: map[string]float64{"auc": 0.85}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, auc := range []float64{0.88, 0.92, 0.80} {
		v, err := c.CreateVersion(ctx, "churn", registry.ModelVersionCreate{
			Source: fmt.Sprintf("s3://m/churn/%d.onnx", i+1), Checksum: checksum(i + 1), Format: "onnx",
			Metrics:   map[string]float64{"auc": auc},
			Tags:      map[string]string{"parity": []string{"odd", "even"}[i%2]},
			Signature: &registry.Signature{Inputs: []registry.TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 3}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if v.Version != int64(i+1) || !strings.HasPrefix(v.CreatedBy, "admin") {
			t.Fatalf("version %+v", v)
		}
	}
	_, err = c.CreateVersion(ctx, "churn", registry.ModelVersionCreate{Source: "s3://m/dup", Checksum: checksum(2), Format: "onnx"})
	if !errors.Is(err, registry.ErrAlreadyExists) || !strings.Contains(err.Error(), "2") {
		t.Fatalf("duplicate checksum: %v", err)
	}

	versionsOf := func(f registry.VersionFilter) []int64 {
		t.Helper()
		vs, err := c.AllVersions(ctx, "churn", f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, v := range vs {
			out = append(out, v.Version)
		}
		return out
	}
	for _, tt := range []struct {
		f    registry.VersionFilter
		want string
	}{
		{registry.VersionFilter{}, "[1 2 3]"},
		{registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: 1}}, "[1 2 3]"},
		{registry.VersionFilter{OrderBy: "version desc"}, "[3 2 1]"},
		{registry.VersionFilter{OrderBy: "metrics.auc desc"}, "[2 1 3]"},
		{registry.VersionFilter{Tag: "parity=odd"}, "[1 3]"},
	} {
		if got := fmt.Sprint(versionsOf(tt.f)); got != tt.want {
			t.Errorf("versions %+v = %s, want %s", tt.f, got, tt.want)
		}
	}

	// Dry run: allowed, then refused with the rule named.
	dry, err := c.DryRunAssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 1})
	if err != nil || !dry.Allowed || dry.Version != 1 {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if _, err := c.GetStage(ctx, "churn", "staging"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a dry run wrote the stage: %v", err)
	}
	_, err = c.DryRunAssignStage(ctx, "churn", "production", registry.StageAssign{Version: 1})
	var regErr *registry.Error
	if !errors.Is(err, registry.ErrPolicyViolation) || !errors.As(err, &regErr) || regErr.Rule != "require_stage" {
		t.Fatalf("dry run violation: %#v", err)
	}

	a, err := c.AssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 1, Reason: "first"}, 0)
	if err != nil || a.Version != 1 || a.PreviousVersion != 0 {
		t.Fatalf("assign: %+v, %v", a, err)
	}
	a2, err := c.AssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 2}, a.Revision)
	if err != nil || a2.PreviousVersion != 1 {
		t.Fatalf("promote: %+v, %v", a2, err)
	}
	if _, err := c.AssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 3}, a.Revision); !errors.Is(err, registry.ErrPreconditionFailed) {
		t.Fatalf("stale promote: %v", err)
	}
	if _, err := c.AssignStage(ctx, "churn", "production", registry.StageAssign{Version: 2}, 0); err != nil {
		t.Fatal(err)
	}
	stages, err := c.ListStages(ctx, "churn")
	if err != nil || len(stages) != 2 {
		t.Fatalf("stages: %+v, %v", stages, err)
	}
	v2, err := c.GetVersion(ctx, "churn", 2)
	if err != nil || fmt.Sprint(v2.Stages) != "[production staging]" {
		t.Fatalf("v2: %+v, %v", v2, err)
	}
	if err := c.DeleteVersion(ctx, "churn", 2, 0); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("deleting a version that holds a stage: %v", err)
	}
	hist, err := c.AllStageHistory(ctx, "churn", "staging")
	if err != nil || len(hist) != 2 || hist[0].Version != 2 || hist[1].Reason != "first" {
		t.Fatalf("history: %+v, %v", hist, err)
	}

	// Flag v3: it cannot be assigned anywhere.
	v3, err := c.GetVersion(ctx, "churn", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateVersion(ctx, "churn", 3, registry.ModelVersionPatch{Flagged: ptr(true), FlagReason: ptr("leak")}, v3.Revision); err != nil {
		t.Fatal(err)
	}
	_, err = c.DryRunAssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 3})
	if !errors.As(err, &regErr) || regErr.Rule != "flagged" {
		t.Fatalf("flagged dry run: %v", err)
	}
	if got := fmt.Sprint(versionsOf(registry.VersionFilter{Flagged: ptr(false)})); got != "[1 2]" {
		t.Fatalf("unflagged versions: %s", got)
	}

	if err := c.UnassignStage(ctx, "churn", "staging", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.UnassignStage(ctx, "churn", "staging", 0); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("unassign twice: %v", err)
	}

	// Force delete removes versions and stages (admin).
	if err := c.DeleteModel(ctx, "churn", false, 0); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("delete with versions: %v", err)
	}
	if err := c.DeleteModel(ctx, "churn", true, 0); err != nil {
		t.Fatal(err)
	}

	events, err := c.ListEvents(ctx, registry.EventFilter{Model: "churn"})
	if err != nil || len(events.Items) == 0 || events.Items[0].Action != registry.ActionModelCreate {
		t.Fatalf("events: %+v, %v", events, err)
	}
	if !strings.HasPrefix(events.Items[0].Actor, "admin") {
		t.Fatalf("event actor: %+v", events.Items[0])
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	c := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	if _, err := c.CreateModel(ctx, registry.ModelCreate{Name: "churn"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := c.CreateVersion(ctx, "churn", registry.ModelVersionCreate{Source: "s3://m/x", Checksum: checksum(i), Format: "onnx"}); err != nil {
			t.Fatal(err)
		}
	}
	e, err := c.CreateEndpoint(ctx, registry.EndpointCreate{
		Name: "churn", Model: "churn",
		Routes: []registry.Route{
			{Name: "stable", Version: 1, UpstreamURL: "http://127.0.0.1:1", Weight: 90},
			{Name: "canary", Version: 2, UpstreamURL: "http://127.0.0.1:2", Weight: 10},
		},
		Guard: &registry.Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.URL == "" || e.Status != registry.EndpointStatusHealthy || len(e.Routes) != 2 {
		t.Fatalf("endpoint: %+v", e)
	}
	routes := []registry.Route{{Name: "stable", Version: 2, UpstreamURL: "http://127.0.0.1:2", Weight: 100}}
	e2, err := c.UpdateEndpoint(ctx, "churn", registry.EndpointPatch{Routes: &routes, ClearGuard: true}, e.Revision)
	if err != nil || e2.Guard != nil || len(e2.Routes) != 1 {
		t.Fatalf("update: %+v, %v", e2, err)
	}
	bad := []registry.Route{{Name: "stable", Version: 2, UpstreamURL: "http://127.0.0.1:2", Weight: 50}}
	_, err = c.UpdateEndpoint(ctx, "churn", registry.EndpointPatch{Routes: &bad}, 0)
	var regErr *registry.Error
	if !errors.As(err, &regErr) || regErr.Rule != "weights_sum" {
		t.Fatalf("bad weights: %v", err)
	}
	page, err := c.ListEndpoints(ctx, registry.ListOptions{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("list: %+v, %v", page, err)
	}
	if err := c.DeleteEndpoint(ctx, "churn", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetEndpoint(ctx, "churn"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestAuthErrors(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	ctx := context.Background()
	admin := newClient(t, r, r.AdminToken)
	if _, err := admin.CreateModel(ctx, registry.ModelCreate{Name: "churn"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateVersion(ctx, "churn", registry.ModelVersionCreate{Source: "s3://m/x", Checksum: checksum(1), Format: "onnx"}); err != nil {
		t.Fatal(err)
	}

	const wrong = "mlr_thisisnotavalidtokenatall00000000000"
	err := newClient(t, r, wrong).Ping(ctx)
	if !errors.Is(err, registry.ErrUnauthenticated) {
		t.Fatalf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error shows the token: %v", err)
	}
	if err := newClient(t, r, "").Ping(ctx); !errors.Is(err, registry.ErrUnauthenticated) {
		t.Fatalf("no token: %v", err)
	}

	reader := newClient(t, r, r.Token(t, "reader", registry.ScopeRead))
	if err := reader.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.CreateModel(ctx, registry.ModelCreate{Name: "x"}); !errors.Is(err, registry.ErrPermissionDenied) {
		t.Fatalf("read token writes: %v", err)
	}

	ci := newClient(t, r, r.Token(t, "ci", registry.ScopeWrite, "staging"))
	if _, err := ci.AssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 1}, 0); err != nil {
		t.Fatal(err)
	}
	// The dry run answers whoever asks, and says whether the caller may
	// make the change; the change itself is refused.
	dry, err := ci.DryRunAssignStage(ctx, "churn", "production", registry.StageAssign{Version: 1})
	if err != nil || !dry.Allowed || dry.Permitted || !strings.Contains(dry.Permission, `"ci"`) {
		t.Fatalf("stage-restricted token's dry run: %+v, %v", dry, err)
	}
	if _, err := ci.AssignStage(ctx, "churn", "production", registry.StageAssign{Version: 1}, 0); !errors.Is(err, registry.ErrPermissionDenied) {
		t.Fatalf("stage-restricted token: %v", err)
	}
	dry, err = reader.DryRunAssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 1})
	if err != nil || !dry.Allowed || dry.Permitted || dry.Permission == "" {
		t.Fatalf("read token's dry run: %+v, %v", dry, err)
	}
	endpoint := registry.EndpointCreate{Name: "dry", Model: "churn", Routes: []registry.Route{{Name: "stable", Version: 1, UpstreamURL: "http://stable:8080", Weight: 100}}}
	if _, err := ci.DryRunCreateEndpoint(ctx, endpoint); !errors.Is(err, registry.ErrPermissionDenied) {
		t.Fatalf("stage-restricted token's endpoint dry run: %v", err)
	}
	if e, err := newClient(t, r, r.AdminToken).DryRunCreateEndpoint(ctx, endpoint); err != nil || e.Name != "dry" {
		t.Fatalf("endpoint dry run: %+v, %v", e, err)
	}
	if _, err := newClient(t, r, r.AdminToken).GetEndpoint(ctx, "dry"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("the dry run wrote the endpoint: %v", err)
	}
	if err := ci.DeleteModel(ctx, "churn", true, 0); !errors.Is(err, registry.ErrPermissionDenied) {
		t.Fatalf("force delete without admin: %v", err)
	}
}
