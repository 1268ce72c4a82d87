package provider

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestAccExamples_resources applies the provider example and every
// resource example together, as a reader who copies them into one
// directory would (with the local artifact the version example
// checksums), against a real registry: the apply succeeds, a second plan
// is empty, the registry holds what the examples say, and destroy
// removes it all.
func TestAccExamples_resources(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	dir := examplesDir(t)

	files, err := filepath.Glob(filepath.Join(dir, "provider", "*.tf"))
	must(t, err)
	more, err := filepath.Glob(filepath.Join(dir, "resources", "*", "resource.tf"))
	must(t, err)
	files = append(files, more...)
	if len(files) != 5 {
		t.Fatalf("want provider.tf and four resource examples, found %v", files)
	}
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		all.Write(b)
		all.WriteString("\n")
	}
	// Only the environment says where the registry is, as for a reader
	// whose registry is not on the default address: the provider example
	// must not pin one.
	w.writeConfig(all.String())
	w.env["MLREGISTRY_ADDR"] = r.URL
	w.env["MLREGISTRY_TOKEN"] = r.AdminToken
	// The version example checksums a local artifact, as its comment says.
	must(t, os.MkdirAll(filepath.Join(w.dir, "build"), 0o700))
	must(t, os.WriteFile(filepath.Join(w.dir, "build", "model.onnx"), []byte("onnx bytes of churn v7"), 0o600))

	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	if out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("plan after applying the examples is not empty: %v\n%s", err, out)
	}

	c := apiClient(t, r)
	versions, err := c.AllVersions(ctx, "churn", registry.VersionFilter{})
	must(t, err)
	bySource := map[string]int64{}
	for _, v := range versions {
		bySource[v.Source] = v.Version
	}
	v6, v7 := bySource["s3://models/churn/6/model.onnx"], bySource["s3://models/churn/7/model.onnx"]
	if len(bySource) != 2 || v6 == 0 || v7 == 0 {
		t.Fatalf("versions: %v", bySource)
	}
	for stage, want := range map[string]int64{"staging": v7, "production": v7} {
		a, err := c.GetStage(ctx, "churn", stage)
		must(t, err)
		if a.Version != want {
			t.Errorf("%s holds version %d, want %d", stage, a.Version, want)
		}
	}
	ep, err := c.GetEndpoint(ctx, "churn")
	must(t, err)
	if len(ep.Routes) != 3 || ep.Routes[0].Version != v6 || ep.Routes[0].Weight != 90 || ep.Routes[1].Version != v7 || ep.Routes[1].Weight != 10 ||
		!ep.Routes[2].Shadow || ep.Routes[2].Share != 0.1 {
		t.Errorf("endpoint churn: %+v", ep.Routes)
	}
	if ep.Rollout == nil || !slices.Equal(ep.Rollout.Steps, []int{10, 25, 50, 100}) || ep.Rollout.RolloutStatus != nil {
		t.Errorf("endpoint churn's rollout (created at once, so none ran): %+v", ep.Rollout)
	}
	prod, err := c.GetEndpoint(ctx, "churn-production")
	must(t, err)
	if prod.Stage != "production" || len(prod.Routes) != 1 || prod.Routes[0].Version != v7 {
		t.Errorf("endpoint churn-production: %+v", prod)
	}

	w.mustRun(ctx, "destroy", "-auto-approve", "-input=false")
	if _, err := c.GetModel(ctx, "churn"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("model churn after destroy: %v", err)
	}
}
