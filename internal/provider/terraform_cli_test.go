package provider

// These tests run the terraform binary from PATH the way a user does:
// against the provider binary built from main.go (go build into a temp
// directory) through a dev_overrides CLI configuration, so they cover
// what resource.Test cannot: saved plans applied later, destroy without
// refresh, and Terraform's own TRACE log.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var providerBinary struct {
	once sync.Once
	dir  string
	err  error
}

// buildProvider builds the provider binary once per test binary run.
func buildProvider(t *testing.T) string {
	t.Helper()
	providerBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "mlregistry-provider-bin-")
		if err != nil {
			providerBinary.err = err
			return
		}
		providerBinary.dir = dir
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "terraform-provider-mlregistry"), ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			providerBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if providerBinary.err != nil {
		t.Fatal(providerBinary.err)
	}
	return providerBinary.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if providerBinary.dir != "" {
		os.RemoveAll(providerBinary.dir)
	}
	os.Exit(code)
}

// tfWorkspace is a directory where the terraform CLI runs with the dev
// override, TRACE logging into logPath.
type tfWorkspace struct {
	t       *testing.T
	dir     string
	logPath string
	env     map[string]string
	// output collects every command's stdout and stderr.
	output bytes.Buffer
}

func newWorkspace(t *testing.T) *tfWorkspace {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform not on PATH")
	}
	binDir := buildProvider(t)
	dir := t.TempDir()
	cliConfig := filepath.Join(dir, "dev.tfrc")
	must(t, os.WriteFile(cliConfig, []byte(fmt.Sprintf(`
provider_installation {
  dev_overrides {
    "mlregistry/mlregistry" = %q
  }
  direct {}
}
`, binDir)), 0o600))
	w := &tfWorkspace{t: t, dir: filepath.Join(dir, "work"), logPath: filepath.Join(dir, "terraform.log")}
	must(t, os.Mkdir(w.dir, 0o700))
	w.env = map[string]string{
		"TF_CLI_CONFIG_FILE": cliConfig,
		"TF_LOG":             "TRACE",
		"TF_LOG_PATH":        w.logPath,
		"TF_IN_AUTOMATION":   "1",
		"CHECKPOINT_DISABLE": "1",
	}
	return w
}

// withoutTrace turns the TRACE log off, for tests that never read it.
func (w *tfWorkspace) withoutTrace() *tfWorkspace {
	delete(w.env, "TF_LOG")
	delete(w.env, "TF_LOG_PATH")
	return w
}

func (w *tfWorkspace) writeConfig(hcl string) {
	w.t.Helper()
	must(w.t, os.WriteFile(filepath.Join(w.dir, "main.tf"), []byte(hcl), 0o600))
}

// run runs terraform with args and returns its combined output.
func (w *tfWorkspace) run(ctx context.Context, args ...string) (string, error) {
	w.t.Helper()
	cmd := exec.CommandContext(ctx, "terraform", append(args, "-no-color")...)
	cmd.Dir = w.dir
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TF_") || strings.HasPrefix(k, "MLREGISTRY_") {
			continue // only what this workspace sets
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range w.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	fmt.Fprintf(&w.output, "$ terraform %s\n%s\n", strings.Join(args, " "), out.String())
	return out.String(), err
}

func (w *tfWorkspace) mustRun(ctx context.Context, args ...string) string {
	w.t.Helper()
	out, err := w.run(ctx, args...)
	if err != nil {
		w.t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// requiredProvidersHCL names the provider by the source address the
// workspace's dev_overrides point at the freshly built binary.
const requiredProvidersHCL = `
terraform {
  required_providers {
    mlregistry = { source = "mlregistry/mlregistry" }
  }
}
`

// cliConfig is the churn configuration with a required_providers block,
// the token from a sensitive variable (null: MLREGISTRY_TOKEN), and a
// model "other" with the given description that nothing depends on.
func cliConfig(r *apptest.Registry, c churn, description string) string {
	return fmt.Sprintf(requiredProvidersHCL+`
variable "registry_token" {
  type      = string
  sensitive = true
  default   = null
}

provider "mlregistry" {
  address = %q
  token   = var.registry_token
}

resource "mlregistry_model" "other" {
  name        = "other"
  description = %q
}
`, r.URL, description) + c.hcl()
}

func TestAccTerraformCLI_tokenNeverLogged(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	token := r.AdminToken
	w.env["TF_VAR_registry_token"] = token

	w.writeConfig(cliConfig(r, churn{staging: 1, production: 1, reason: "first"}, "churn model"))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	// A plan that fails on the policy, so error paths are logged too.
	w.writeConfig(cliConfig(r, churn{staging: 1, production: 2}, "churn model"))
	out, err := w.run(ctx, "plan", "-input=false")
	if err == nil || !strings.Contains(out, "require_stage") {
		t.Fatalf("plan should fail on the require_stage rule: %v\n%s", err, out)
	}

	// The token from the environment instead of the provider block.
	delete(w.env, "TF_VAR_registry_token")
	w.env["MLREGISTRY_TOKEN"] = token
	w.writeConfig(cliConfig(r, churn{staging: 2, production: 1}, "churn model"))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	w.mustRun(ctx, "destroy", "-auto-approve", "-input=false")

	logData, err := os.ReadFile(w.logPath)
	must(t, err)
	log := string(logData)
	if !strings.Contains(log, "registry request") || !strings.Contains(log, "[TRACE]") {
		t.Fatalf("the TRACE log does not hold the provider's request logs (%d bytes); is TF_LOG_PATH honoured?", len(log))
	}
	secretPart := strings.TrimPrefix(token, registry.TokenPrefix)
	for name, text := range map[string]string{"TF_LOG_PATH log": log, "terraform output": w.output.String()} {
		if strings.Contains(text, secretPart) {
			i := strings.Index(text, secretPart)
			t.Fatalf("%s contains the token near: %q", name, text[max(0, i-200):i])
		}
	}
	// The state holds the token only if Terraform stored provider config;
	// it must not.
	state, err := os.ReadFile(filepath.Join(w.dir, "terraform.tfstate"))
	if err == nil && bytes.Contains(state, []byte(secretPart)) {
		t.Fatal("terraform.tfstate contains the token")
	}
}

func TestAccTerraformCLI_savedPlanAfterOutOfBandChange(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	w.env["TF_VAR_registry_token"] = r.AdminToken
	c := apiClient(t, r)

	w.writeConfig(cliConfig(r, churn{staging: 1}, "v1 in staging"))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	// A reviewed plan: new description, staging moves to v2 ...
	w.writeConfig(cliConfig(r, churn{staging: 2}, "v2 in staging"))
	w.mustRun(ctx, "plan", "-input=false", "-out=reviewed.tfplan")

	// ... then someone changes both objects before it is applied.
	owner := "someone-else"
	_, err := c.UpdateModel(ctx, "other", registry.ModelPatch{Owner: &owner}, 0)
	must(t, err)
	_, err = c.AssignStage(ctx, "churn", "staging", registry.StageAssign{Version: 3, Reason: "hotfix"}, 0)
	must(t, err)

	out, err := w.run(ctx, "apply", "-input=false", "reviewed.tfplan")
	if err == nil {
		t.Fatalf("applying the stale plan succeeded:\n%s", out)
	}
	flat := strings.Join(strings.Fields(strings.ReplaceAll(out, "│", " ")), " ")
	for _, want := range []string{
		`Model "other" changed outside this plan`,
		`Stage "staging" of model "churn" changed outside this plan`,
		"Run `terraform plan` (or `terraform apply -refresh-only`) again",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	// Nothing was overwritten.
	m, err := c.GetModel(ctx, "other")
	must(t, err)
	a, err := c.GetStage(ctx, "churn", "staging")
	must(t, err)
	if m.Owner != "someone-else" || m.Description != "v1 in staging" || a.Version != 3 {
		t.Fatalf("the stale plan overwrote changes: model %+v, staging %+v", m, a)
	}

	// Re-planning shows the changes and applies cleanly.
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	a, err = c.GetStage(ctx, "churn", "staging")
	must(t, err)
	if a.Version != 2 || a.PreviousVersion != 3 {
		t.Fatalf("staging after re-plan: %+v", a)
	}

	// Destroy without refresh after objects vanished: deleting what is
	// already gone succeeds.
	must(t, c.UnassignStage(ctx, "churn", "staging", 0))
	must(t, c.DeleteVersion(ctx, "churn", 3, 0))
	w.mustRun(ctx, "destroy", "-auto-approve", "-input=false", "-refresh=false")
	if _, err := c.GetModel(ctx, "churn"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("model after destroy: %v", err)
	}
}
