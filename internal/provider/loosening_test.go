package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// looseningConfig is a model with a production and (optionally) a
// staging policy and an endpoint with the given guard block ("" for none).
func looseningConfig(url, production, staging, guard string) string {
	stagingBlock := ""
	if staging != "" {
		stagingBlock = "  stage_policy {\n    stage = \"staging\"\n" + staging + "  }\n"
	}
	return fmt.Sprintf(requiredProvidersHCL+`provider "mlregistry" {
  address = %q
}
resource "mlregistry_model" "churn" {
  name = "churn"
  stage_policy {
    stage = "production"
%s  }
%s}
resource "mlregistry_model_version" "v1" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/1/model.onnx"
  checksum = %q
  format   = "onnx"
}
resource "mlregistry_endpoint" "churn" {
  name  = "churn"
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = "http://stable:8080"
    weight       = 100
  }
%s}
`, url, production, stagingBlock, checksum(1), guard)
}

const (
	strictProduction = `    require_stage           = "staging"
    min_soak                = "24h"
    min_metrics             = { auc = 0.85, recall = 0.7 }
    max_metrics             = { latency_ms = 50 }
    require_signature_match = true
`
	strictGuard = `  guard {
    max_error_rate = 0.05
    min_requests   = 100
    window         = "5m"
  }
`
)

// TestAccTerraformCLI_looseningWarnings: every change that loosens a
// stage policy or weakens a guard is a warning in the plan naming the
// stage (or the guard) and the rule; a tightening plan has none.
func TestAccTerraformCLI_looseningWarnings(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t).withoutTrace()
	r := startRegistry(t)
	w.env["MLREGISTRY_TOKEN"] = r.AdminToken
	ctx := context.Background()

	w.writeConfig(looseningConfig(r.URL, strictProduction, "    min_metrics = { auc = 0.8 }\n", strictGuard))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	loosened := `    require_stage           = "staging"
    min_soak                = "12h"
    min_metrics             = { recall = 0.6 }
    max_metrics             = { latency_ms = 80 }
    require_signature_match = false
`
	weaker := `  guard {
    max_error_rate = 0.2
    min_requests   = 100
    window         = "10m"
  }
`
	w.writeConfig(looseningConfig(r.URL, loosened, "", weaker))
	out := w.mustRun(ctx, "plan", "-input=false")
	for _, want := range []string{
		"Warning: Loosens the production stage policy: min_metrics.auc 0.85 -> removed",
		"Warning: Loosens the production stage policy: min_metrics.recall 0.7 -> 0.6",
		"Warning: Loosens the production stage policy: max_metrics.latency_ms 50 -> 80",
		"Warning: Loosens the production stage policy: min_soak 24h -> 12h",
		"Warning: Loosens the production stage policy: require_signature_match true -> false",
		"Warning: Loosens the staging stage policy: stage_policy {min_metrics.auc=0.8} -> removed",
		"Warning: Weakens the endpoint guard: guard.max_error_rate 0.05 -> 0.2",
		"Warning: Weakens the endpoint guard: guard.window 5m -> 10m",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "min_requests 100") {
		t.Errorf("an unchanged min_requests is not a loosening:\n%s", out)
	}

	// Removing the guard.
	w.writeConfig(looseningConfig(r.URL, strictProduction, "    min_metrics = { auc = 0.8 }\n", ""))
	out = w.mustRun(ctx, "plan", "-input=false")
	if want := "Warning: Weakens the endpoint guard: guard {max_error_rate=0.05, min_requests=100, window=5m} -> removed"; !strings.Contains(out, want) {
		t.Errorf("plan lacks %q:\n%s", want, out)
	}

	// Tightening every rule warns about nothing.
	tighter := `    require_stage           = "staging"
    min_soak                = "48h"
    min_metrics             = { auc = 0.9, recall = 0.7, f1 = 0.5 }
    max_metrics             = { latency_ms = 40 }
    require_signature_match = true
`
	w.writeConfig(looseningConfig(r.URL, tighter, "    min_metrics = { auc = 0.8 }\n", strings.Replace(strictGuard, "0.05", "0.01", 1)))
	out = w.mustRun(ctx, "plan", "-input=false")
	if strings.Contains(out, "Loosens") || strings.Contains(out, "Weakens") {
		t.Errorf("a tightening plan warns:\n%s", out)
	}
	if !strings.Contains(out, "to change") {
		t.Errorf("the tightening plan should update the model and endpoint:\n%s", out)
	}
}

// TestAccTerraformCLI_stageUnbindingWarning: removing an endpoint's stage
// binding (or binding it to another stage) stops the registry checking
// its routes against that stage's policy; the plan says so, naming the
// stage.
func TestAccTerraformCLI_stageUnbindingWarning(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t).withoutTrace()
	r := startRegistry(t)
	w.env["MLREGISTRY_TOKEN"] = r.AdminToken
	ctx := context.Background()
	config := func(stage string) string {
		return fmt.Sprintf(requiredProvidersHCL+`provider "mlregistry" {
  address = %q
}
resource "mlregistry_model" "churn" {
  name = "churn"
  stage_policy {
    stage       = "production"
    min_metrics = { auc = 0.8 }
  }
}
resource "mlregistry_model_version" "v1" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/1/model.onnx"
  checksum = %q
  format   = "onnx"
  metrics  = { auc = 0.9 }
}
resource "mlregistry_endpoint" "churn" {
  name  = "churn"
  model = mlregistry_model.churn.name
%s  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = "http://stable:8080"
    weight       = 100
  }
}
`, r.URL, checksum(1), stage)
	}
	w.writeConfig(config("  stage = \"production\"\n"))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	w.writeConfig(config(""))
	out := w.mustRun(ctx, "plan", "-input=false")
	if want := "Warning: Unbinds the endpoint from the production stage: its routes are no longer checked against the production stage policy (stage production -> removed)"; !strings.Contains(out, want) {
		t.Errorf("plan lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, `Endpoint "churn"`) {
		t.Errorf("the warning does not name the endpoint:\n%s", out)
	}

	w.writeConfig(config("  stage = \"staging\"\n"))
	out = w.mustRun(ctx, "plan", "-input=false")
	if want := "(stage production -> staging)"; !strings.Contains(out, want) {
		t.Errorf("plan lacks %q:\n%s", want, out)
	}

	w.writeConfig(config("  stage = \"production\"\n"))
	if out := w.mustRun(ctx, "plan", "-input=false"); strings.Contains(out, "Unbinds") {
		t.Errorf("an unchanged binding warns:\n%s", out)
	}
}
