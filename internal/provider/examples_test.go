package provider

// The examples feed the generated docs and the demo; these tests keep them
// correct: formatted, valid against the provider's schema, and the
// quickstart applied for real, promoted and rolled back.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func examplesDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples")
}

func TestAccExamples_validate(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := context.Background()
	dir := examplesDir(t)

	if out, err := w.run(ctx, "fmt", "-check", "-recursive", "-diff", dir); err != nil {
		t.Fatalf("examples are not terraform fmt'ed:\n%s", out)
	}

	// Every example in one configuration: they refer to each other
	// (mlregistry_model.churn, mlregistry_model_version.v7).
	var all strings.Builder
	files, err := filepath.Glob(filepath.Join(dir, "provider", "*.tf"))
	must(t, err)
	for _, pattern := range []string{"resources/*/resource.tf", "data-sources/*/data-source.tf"} {
		more, err := filepath.Glob(filepath.Join(dir, pattern))
		must(t, err)
		files = append(files, more...)
	}
	if len(files) < 7 {
		t.Fatalf("found only %d example files", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		// Outputs of different examples may share names.
		text := strings.ReplaceAll(string(b), `output "`, `output "`+strings.ReplaceAll(filepath.Base(filepath.Dir(f)), "mlregistry_", "")+"_")
		all.WriteString(text + "\n")
	}
	w.writeConfig(all.String())
	must(t, os.MkdirAll(filepath.Join(w.dir, "build"), 0o700))
	must(t, os.WriteFile(filepath.Join(w.dir, "build", "model.onnx"), []byte("onnx"), 0o600))
	if out, err := w.run(ctx, "validate"); err != nil {
		t.Fatalf("examples do not validate:\n%s\n%s", out, all.String())
	}

	// Import blocks: each must name a resource of the examples.
	imports, err := filepath.Glob(filepath.Join(dir, "resources", "*", "import-by-string-id.tf"))
	must(t, err)
	for _, f := range imports {
		b, err := os.ReadFile(f)
		must(t, err)
		w.writeConfig(all.String() + string(b))
		if out, err := w.run(ctx, "validate"); err != nil {
			t.Fatalf("%s does not validate:\n%s", f, out)
		}
	}
}

func TestAccExamples_quickstart(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	w.env["MLREGISTRY_ADDR"] = r.URL
	w.env["MLREGISTRY_TOKEN"] = r.AdminToken
	b, err := os.ReadFile(filepath.Join(examplesDir(t), "quickstart", "main.tf"))
	must(t, err)
	w.writeConfig(string(b))
	// The model artifacts the versions are checksummed from.
	must(t, os.CopyFS(filepath.Join(w.dir, "models"), os.DirFS(filepath.Join(examplesDir(t), "quickstart", "models"))))

	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	// The same configuration and state, planned from another checkout
	// path (a CI runner's), plans no change: nothing in it depends on
	// where it is checked out.
	other := newWorkspace(t)
	other.env["MLREGISTRY_ADDR"], other.env["MLREGISTRY_TOKEN"] = r.URL, r.AdminToken
	other.dir = filepath.Join(other.dir, "another", "checkout")
	must(t, os.MkdirAll(other.dir, 0o700))
	must(t, os.CopyFS(other.dir, os.DirFS(w.dir)))
	if out, err := other.run(ctx, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("the quickstart planned from another checkout path is not empty: %v\n%s", err, out)
	}

	w.mustRun(ctx, "apply", "-auto-approve", "-input=false", "-var", "staging_version=2")
	// A 10% canary of release 2 on the endpoint that serves production.
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false", "-var", "staging_version=2", "-var", "canary_weight=10")
	ep, err := apiClient(t, r).GetEndpoint(ctx, "churn")
	must(t, err)
	if len(ep.Routes) != 2 || ep.Routes[1].Name != "canary" || ep.Routes[1].Weight != 10 || ep.Stage != "production" {
		t.Fatalf("endpoint after the canary step: %+v", ep)
	}
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false", "-var", "staging_version=2", "-var", "production_version=2")
	// Nothing left to do: no perpetual diff.
	if out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode", "-var", "staging_version=2", "-var", "production_version=2"); err != nil {
		t.Fatalf("plan after promotion is not empty: %v\n%s", err, out)
	}
	a, err := apiClient(t, r).GetStage(ctx, "churn", "production")
	must(t, err)
	v, err := apiClient(t, r).GetVersion(ctx, "churn", a.Version)
	must(t, err)
	if v.Metrics["auc"] != 0.92 {
		t.Fatalf("production is %+v, want the auc 0.92 release", v)
	}
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false", "-var", "staging_version=2", "-var", "production_version=1")
	hist, err := apiClient(t, r).AllStageHistory(ctx, "churn", "production")
	must(t, err)
	if len(hist) != 3 || hist[0].PreviousVersion != a.Version {
		t.Fatalf("production history after the rollback: %+v", hist)
	}
	w.mustRun(ctx, "destroy", "-auto-approve", "-input=false", "-var", "staging_version=2", "-var", "production_version=1")
}

// TestAccExamples_dataSources reads the registry the quickstart creates
// with the provider example and every data-source example, as a reader of
// the data-source docs would after the quickstart: each look-up finds what
// it names, and the outputs say what the quickstart registered.
func TestAccExamples_dataSources(t *testing.T) {
	t.Parallel()
	r := startRegistry(t)
	ctx := context.Background()
	dir := examplesDir(t)

	quickstart := newWorkspace(t)
	quickstart.env["MLREGISTRY_ADDR"] = r.URL
	quickstart.env["MLREGISTRY_TOKEN"] = r.AdminToken
	b, err := os.ReadFile(filepath.Join(dir, "quickstart", "main.tf"))
	must(t, err)
	quickstart.writeConfig(string(b))
	must(t, os.CopyFS(filepath.Join(quickstart.dir, "models"), os.DirFS(filepath.Join(dir, "quickstart", "models"))))
	quickstart.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	w := newWorkspace(t)
	w.env["MLREGISTRY_ADDR"] = r.URL
	w.env["MLREGISTRY_TOKEN"] = r.Token(t, "data-sources", registry.ScopeRead)
	files, err := filepath.Glob(filepath.Join(dir, "provider", "*.tf"))
	must(t, err)
	more, err := filepath.Glob(filepath.Join(dir, "data-sources", "*", "data-source.tf"))
	must(t, err)
	if len(more) != 4 {
		t.Fatalf("want four data-source examples, found %v", more)
	}
	var all strings.Builder
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		must(t, err)
		all.Write(b)
		all.WriteString("\n")
	}
	w.writeConfig(all.String())
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	var outputs map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	must(t, json.Unmarshal([]byte(w.mustRun(ctx, "output", "-json")), &outputs))
	if got := string(outputs["production_artifact"].Value); !strings.HasSuffix(got, `churn-r1.json"`) {
		t.Errorf("production_artifact = %s, want release 1's artifact", got)
	}
	var routing bytes.Buffer
	must(t, json.Compact(&routing, outputs["churn_routing"].Value))
	if got, want := routing.String(), `{"routes":{"stable":100},"status":"healthy"}`; got != want {
		t.Errorf("churn_routing = %s, want %s", got, want)
	}
	var policy struct {
		RequireStage string `json:"require_stage"`
	}
	must(t, json.Unmarshal(outputs["production_policy"].Value, &policy))
	if policy.RequireStage != "staging" {
		t.Errorf("production_policy = %s, want the quickstart's production policy", outputs["production_policy"].Value)
	}
	var ranking []struct{ Version, AUC float64 }
	must(t, json.Unmarshal(outputs["ranking"].Value, &ranking))
	if len(ranking) != 3 || ranking[0].AUC != 0.92 || ranking[2].AUC != 0.81 {
		t.Errorf("ranking = %s, want the three quickstart versions, best auc first", outputs["ranking"].Value)
	}
}
