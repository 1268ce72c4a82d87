package provider

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// stateV1Config is the configuration of testdata/state_v0.tf.txt written
// with blocks.
const stateV1Config = requiredProvidersHCL + `resource "mlregistry_model" "churn" {
  name = "churn"
  tags = { team = "ds" }
  stage_policy {
    stage         = "production"
    require_stage = "staging"
    min_soak      = "24h"
    min_metrics   = { auc = 0.85 }
  }
  stage_policy {
    stage                   = "staging"
    max_metrics             = { latency_ms = 50 }
    require_signature_match = true
  }
}
resource "mlregistry_model" "bare" {
  name = "bare"
}
resource "mlregistry_model_version" "v1" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/1/model.onnx"
  checksum = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  format   = "onnx"
  metrics  = { auc = 0.91 }
  lineage {
    run_id     = "run-42"
    git_commit = "3f2c1e0"
  }
  signature {
    input {
      name  = "x"
      dtype = "float32"
      shape = [-1, 4]
    }
    input {
      name  = "plan"
      dtype = "string"
    }
    output {
      name  = "y"
      dtype = "float32"
      shape = [-1]
    }
  }
}
resource "mlregistry_model_version" "v2" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/2/model.onnx"
  checksum = "sha256:0000000000000000000000000000000000000000000000000000000000000002"
  format   = "onnx"
  signature {
    input {
      name  = "x"
      dtype = "float32"
    }
  }
  depends_on = [mlregistry_model_version.v1]
}
resource "mlregistry_endpoint" "churn" {
  name  = "churn"
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = "http://stable:8080"
    weight       = 90
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v2.version
    upstream_url = "http://canary:8080"
    weight       = 10
  }
  guard {
    max_error_rate = 0.05
    min_requests   = 100
    window         = "5m"
  }
}
resource "mlregistry_endpoint" "plain" {
  name  = "plain"
  model = mlregistry_model.churn.name
  route {
    name         = "only"
    version      = mlregistry_model_version.v1.version
    upstream_url = "http://stable:8080"
    weight       = 100
  }
}
`

// TestAccTerraformCLI_upgradeStateV0: state written by the provider
// before the nested objects became blocks (testdata/state_v0.tfstate, as
// that provider wrote it for testdata/state_v0.tf.txt) upgrades to the
// block shape, and the same configuration written with blocks plans no
// change, so upgrading the provider is a no-op plan.
func TestAccTerraformCLI_upgradeStateV0(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t).withoutTrace()
	r := startRegistry(t)
	ctx := context.Background()

	// The registry objects the old state describes.
	c := apiClient(t, r)
	_, err := c.CreateModel(ctx, registry.ModelCreate{Name: "churn", Tags: map[string]string{"team": "ds"}, StagePolicies: map[string]registry.StagePolicy{
		"production": {RequireStage: "staging", MinSoak: "24h", MinMetrics: map[string]float64{"auc": 0.85}},
		"staging":    {MaxMetrics: map[string]float64{"latency_ms": 50}, RequireSignatureMatch: true},
	}})
	must(t, err)
	_, err = c.CreateModel(ctx, registry.ModelCreate{Name: "bare"})
	must(t, err)
	_, err = c.CreateVersion(ctx, "churn", registry.ModelVersionCreate{
		Source: "s3://models/churn/1/model.onnx", Checksum: checksum(1), Format: "onnx",
		Metrics: map[string]float64{"auc": 0.91},
		Lineage: &registry.Lineage{RunID: "run-42", GitCommit: "3f2c1e0"},
		Signature: &registry.Signature{
			Inputs:  []registry.TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 4}}, {Name: "plan", DType: "string"}},
			Outputs: []registry.TensorSpec{{Name: "y", DType: "float32", Shape: []int64{-1}}},
		},
	})
	must(t, err)
	_, err = c.CreateVersion(ctx, "churn", registry.ModelVersionCreate{
		Source: "s3://models/churn/2/model.onnx", Checksum: checksum(2), Format: "onnx",
		Signature: &registry.Signature{Inputs: []registry.TensorSpec{{Name: "x", DType: "float32"}}},
	})
	must(t, err)
	_, err = c.CreateEndpoint(ctx, registry.EndpointCreate{Name: "churn", Model: "churn", Routes: []registry.Route{
		{Name: "stable", Version: 1, UpstreamURL: "http://stable:8080", Weight: 90},
		{Name: "canary", Version: 2, UpstreamURL: "http://canary:8080", Weight: 10},
	}, Guard: &registry.Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"}})
	must(t, err)
	_, err = c.CreateEndpoint(ctx, registry.EndpointCreate{Name: "plain", Model: "churn", Routes: []registry.Route{
		{Name: "only", Version: 1, UpstreamURL: "http://stable:8080", Weight: 100},
	}})
	must(t, err)

	old, err := os.ReadFile(filepath.Join("testdata", "state_v0.tfstate"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(w.dir, "terraform.tfstate"), []byte(strings.ReplaceAll(string(old), "REGISTRY_URL", r.URL)), 0o600))
	w.writeConfig(providerBlock(r, "") + stateV1Config)

	out, err := w.run(ctx, "plan", "-detailed-exitcode", "-input=false")
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		t.Fatalf("the first plan after upgrading the provider shows changes:\n%s", out)
	}
	if err != nil {
		t.Fatalf("terraform plan: %v\n%s", err, out)
	}
	if !strings.Contains(out, "No changes.") {
		t.Fatalf("plan output does not say No changes:\n%s", out)
	}

	// A refresh writes the upgraded state: version 1, blocks only.
	w.mustRun(ctx, "apply", "-refresh-only", "-auto-approve", "-input=false")
	raw, err := os.ReadFile(filepath.Join(w.dir, "terraform.tfstate"))
	must(t, err)
	var st struct {
		Resources []struct {
			Type      string `json:"type"`
			Name      string `json:"name"`
			Instances []struct {
				SchemaVersion int                        `json:"schema_version"`
				Attributes    map[string]json.RawMessage `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
	}
	must(t, json.Unmarshal(raw, &st))
	gone := map[string][]string{
		"mlregistry_model":         {"stage_policies"},
		"mlregistry_endpoint":      {"routes"},
		"mlregistry_model_version": {},
	}
	for _, res := range st.Resources {
		for _, inst := range res.Instances {
			if inst.SchemaVersion != 1 {
				t.Errorf("%s.%s: schema_version %d after refresh, want 1", res.Type, res.Name, inst.SchemaVersion)
			}
			for _, a := range gone[res.Type] {
				if _, ok := inst.Attributes[a]; ok {
					t.Errorf("%s.%s: state still has %s", res.Type, res.Name, a)
				}
			}
		}
	}
	if got := string(raw); !strings.Contains(got, `"stage_policy"`) || !strings.Contains(got, `"route"`) || !strings.Contains(got, `"input"`) {
		t.Errorf("refreshed state lacks the block attributes:\n%s", got)
	}
	// And the refreshed state still plans nothing.
	if out, err := w.run(ctx, "plan", "-detailed-exitcode", "-input=false"); err != nil {
		t.Fatalf("plan after the refresh: %v\n%s", err, out)
	}
}
