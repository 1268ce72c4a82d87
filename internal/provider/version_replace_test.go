package provider

// Replacing a version that holds a stage or receives traffic, and a
// registration that the registry committed but never answered.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// productionVersionConfig is a model whose production policy needs
// auc >= 0.85, one version with create_before_destroy and production
// assigned to it.
func productionVersionConfig(source string, checksumN int, auc float64) string {
	return fmt.Sprintf(`
resource "mlregistry_model" "churn" {
  name = "churn"
  stage_policy {
    stage       = "production"
    min_metrics = { auc = 0.85 }
  }
}

resource "mlregistry_model_version" "prod" {
  model    = mlregistry_model.churn.name
  source   = %q
  checksum = %q
  format   = "onnx"
  metrics  = { auc = %g }

  lifecycle {
    create_before_destroy = true
  }
}

resource "mlregistry_stage_assignment" "production" {
  model   = mlregistry_model.churn.name
  stage   = "production"
  version = mlregistry_model_version.prod.version
}
`, source, checksum(checksumN), auc)
}

// TestAccModelVersion_replaceProductionVersion: with create_before_destroy,
// one apply replaces the artifact of the version production holds: the
// new version is registered, production follows it (its policy checked by
// the registry), and the old version is deleted last. When the new version
// fails the policy, the apply stops at the assignment and production keeps
// the old version.
func TestAccModelVersion_replaceProductionVersion(t *testing.T) {
	r := testRegistry(t)
	const version, production = "mlregistry_model_version.prod", "mlregistry_stage_assignment.production"
	ctx := context.Background()
	productionHolds := func(want int64) {
		t.Helper()
		a, err := apiClient(t, r).GetStage(ctx, "churn", "production")
		must(t, err)
		if a.Version != want {
			t.Fatalf("production holds version %d, want %d", a.Version, want)
		}
		if _, err := apiClient(t, r).GetVersion(ctx, "churn", want); err != nil {
			t.Fatalf("version %d: %v", want, err)
		}
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: providerBlock(r, "") + productionVersionConfig("s3://models/churn/a.onnx", 1, 0.90),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(production, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
				},
			},
			{
				Config: providerBlock(r, "") + productionVersionConfig("s3://models/churn/b.onnx", 2, 0.91),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(version, plancheck.ResourceActionCreateBeforeDestroy),
						plancheck.ExpectResourceAction(production, plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(version, tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue(production, tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue(production, tfjsonpath.New("previous_version"), knownvalue.Int64Exact(1)),
				},
				Check: func(*terraformState) error {
					productionHolds(2)
					if _, err := apiClient(t, r).GetVersion(ctx, "churn", 1); !errors.Is(err, registry.ErrNotFound) {
						return fmt.Errorf("the replaced version 1 is still registered (err %v)", err)
					}
					return nil
				},
			},
			{
				// The new artifact's auc is below production's floor: the
				// registry refuses the move at apply (the version number
				// was unknown at plan), and nothing is lost.
				Config:      providerBlock(r, "") + productionVersionConfig("s3://models/churn/c.onnx", 3, 0.80),
				ExpectError: expectError("version 3 has auc = 0.8", `policy for "production" needs >= 0.85`),
			},
			{
				PreConfig: func() { productionHolds(2) },
				// Version 3 is registered and known now, so the plan-time
				// dry run reports the policy before anything is applied.
				Config:      providerBlock(r, "") + productionVersionConfig("s3://models/churn/c.onnx", 3, 0.80),
				PlanOnly:    true,
				ExpectError: expectError("version 3 has auc = 0.8", `policy for "production" needs >= 0.85`),
			},
		},
	})
}

// cliHeader makes a configuration the terraform CLI runs against r.
func cliHeader(r *apptest.Registry) string {
	return fmt.Sprintf(requiredProvidersHCL+`
provider "mlregistry" {
  address = %q
  token   = %q
}
`, r.URL, r.AdminToken)
}

// servedVersionsConfig: production holds v1, endpoint churn routes to v1
// and v2, nothing uses v3. checksums are the three versions' checksum
// numbers; lifecycle goes into every version.
func servedVersionsConfig(r *apptest.Registry, checksums [3]int, lifecycle string) string {
	var b strings.Builder
	b.WriteString(cliHeader(r) + `
resource "mlregistry_model" "churn" {
  name = "churn"
  stage_policy {
    stage       = "production"
    min_metrics = { auc = 0.85 }
  }
}
`)
	for i, n := range checksums {
		dep := ""
		if i > 0 {
			// Registered in order, so resource vN is version N.
			dep = fmt.Sprintf("depends_on = [mlregistry_model_version.v%d]", i)
		}
		fmt.Fprintf(&b, `
resource "mlregistry_model_version" "v%d" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/%d/model.onnx"
  checksum = %q
  format   = "onnx"
  metrics  = { auc = 0.9 }
  %s
  %s
}
`, i+1, n, checksum(n), dep, lifecycle)
	}
	b.WriteString(`
resource "mlregistry_stage_assignment" "production" {
  model   = mlregistry_model.churn.name
  stage   = "production"
  version = mlregistry_model_version.v1.version
}

resource "mlregistry_endpoint" "churn" {
  name  = "churn"
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = "http://stable.internal:8080"
    weight       = 90
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v2.version
    upstream_url = "http://canary.internal:8080"
    weight       = 10
  }
}
`)
	return b.String()
}

// TestAccTerraformCLI_replaceVersionInUseWarns: a plan that replaces a
// version that holds a stage or receives traffic warns, naming the version,
// the stage, the endpoint route and the fix; without the fix the apply
// fails as warned, with it the same change applies. A version nothing uses
// is replaced without a warning.
func TestAccTerraformCLI_replaceVersionInUseWarns(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	const cbd = "lifecycle {\n    create_before_destroy = true\n  }"

	// listsEndpoints runs a plan and reports whether the provider listed
	// the endpoints for it (the TRACE log holds its request logs).
	listsEndpoints := func() (string, bool) {
		t.Helper()
		must(t, os.Truncate(w.logPath, 0))
		out := w.mustRun(ctx, "plan", "-input=false")
		log, err := os.ReadFile(w.logPath)
		must(t, err)
		list := regexp.MustCompile(`path=/api/v1/endpoints(\s|$)`)
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "registry request:") && list.MatchString(l) {
				return out, true
			}
		}
		return out, false
	}

	w.writeConfig(servedVersionsConfig(r, [3]int{1, 2, 3}, ""))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	out, listed := listsEndpoints()
	if strings.Contains(out, "Replacing version") || !strings.Contains(out, "No changes") {
		t.Fatalf("a plan without changes warns or changes:\n%s", out)
	}
	if listed {
		t.Fatal("a plan that replaces nothing listed the endpoints")
	}

	w.writeConfig(servedVersionsConfig(r, [3]int{11, 12, 13}, ""))
	out, listed = listsEndpoints()
	if !listed {
		t.Fatal("the plan that replaces versions did not list the endpoints (or the TRACE log format changed)")
	}
	for _, want := range [][]string{
		{`Warning: Replacing version 1 of model "churn", which holds stage production and receives traffic from endpoint "churn" (route "stable")`,
			"Changing source, checksum registers a new version and deletes version 1", "Add lifecycle { create_before_destroy = true }"},
		{`Warning: Replacing version 2 of model "churn", which receives traffic from endpoint "churn" (route "canary")`},
	} {
		if !expectError(want...).MatchString(out) {
			t.Fatalf("the plan does not warn %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "version 3 of") {
		t.Fatalf("the plan warns about version 3, which nothing uses:\n%s", out)
	}

	// What the warning says happens without create_before_destroy.
	out, err := w.run(ctx, "apply", "-auto-approve", "-input=false")
	if err == nil || !expectError(`of model "churn" is in use`, "move the stage").MatchString(out) {
		t.Fatalf("apply without create_before_destroy: %v\n%s", err, out)
	}

	w.writeConfig(servedVersionsConfig(r, [3]int{11, 12, 13}, cbd))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	if out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("plan after the replacement is not empty: %v\n%s", err, out)
	}
	c := apiClient(t, r)
	a, err := c.GetStage(ctx, "churn", "production")
	must(t, err)
	ep, err := c.GetEndpoint(ctx, "churn")
	must(t, err)
	live, err := c.AllVersions(ctx, "churn", registry.VersionFilter{})
	must(t, err)
	v1, err := c.GetVersion(ctx, "churn", a.Version)
	must(t, err)
	if v1.Checksum != checksum(11) || ep.Routes[0].Version != a.Version || len(live) != 3 {
		t.Fatalf("after the replacement: production %+v, routes %+v, %d live versions", a, ep.Routes, len(live))
	}
	w.mustRun(ctx, "destroy", "-auto-approve", "-input=false")
}

// TestAccTerraformCLI_adoptCommittedCreate: a registration the registry
// committed but never answered (here: made through the API) is adopted by
// the resource that plans exactly that artifact, with a warning, and the
// next plan is empty; one whose artifact differs stays an error that names
// the import.
func TestAccTerraformCLI_adoptCommittedCreate(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	c := apiClient(t, r)
	model := cliHeader(r) + `
resource "mlregistry_model" "fraud" {
  name = "fraud"
}
`
	// adopted plans exactly the artifact registered through the API below.
	adopted := `
resource "mlregistry_model_version" "v" {
  model       = mlregistry_model.fraud.name
  source      = "s3://models/fraud/1.onnx"
  checksum    = "` + checksum(1) + `"
  format      = "onnx"
  parameters  = { epochs = "20" }
  metrics     = { auc = 0.91 }
  lineage {
    run_id = "run-42"
  }
  description = "baseline, adopted"
  tags        = { team = "ds" }
}
`
	w.writeConfig(model)
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	_, err := c.CreateVersion(ctx, "fraud", registry.ModelVersionCreate{
		Source: "s3://models/fraud/1.onnx", Checksum: checksum(1), Format: "onnx",
		Parameters: map[string]string{"epochs": "20"}, Metrics: map[string]float64{"auc": 0.91},
		Lineage:     &registry.Lineage{RunID: "run-42"},
		Description: "baseline", Tags: map[string]string{"team": "ds"},
	})
	must(t, err)
	w.writeConfig(model + adopted + `
output "version" {
  value = mlregistry_model_version.v.version
}
`)
	out := w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	if !expectError("Warning: Version 1 already registered with this artifact: adopted into state", "committed but not answered").MatchString(out) {
		t.Fatalf("apply does not warn about the adoption:\n%s", out)
	}
	if !strings.Contains(out, "version = 1") {
		t.Fatalf("the resource is not version 1:\n%s", out)
	}
	if out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("plan after the adoption is not empty: %v\n%s", err, out)
	}
	live, err := c.AllVersions(ctx, "fraud", registry.VersionFilter{})
	must(t, err)
	if len(live) != 1 || live[0].Description != "baseline, adopted" {
		t.Fatalf("versions after the adoption: %+v", live)
	}

	// Same checksum, another source: not the planned artifact.
	_, err = c.CreateVersion(ctx, "fraud", registry.ModelVersionCreate{Source: "s3://models/fraud/2.onnx", Checksum: checksum(2), Format: "onnx"})
	must(t, err)
	w.writeConfig(model + adopted + `
resource "mlregistry_model_version" "w" {
  model    = mlregistry_model.fraud.name
  source   = "s3://models/fraud/2-retrained.onnx"
  checksum = "` + checksum(2) + `"
  format   = "onnx"
}
`)
	out, err = w.run(ctx, "apply", "-auto-approve", "-input=false")
	if err == nil || !expectError("Artifact already registered as version 2", "this field differs from this resource's: source.", "terraform import", "fraud/2").MatchString(out) {
		t.Fatalf("apply of a different artifact with a registered checksum: %v\n%s", err, out)
	}
	must(t, c.DeleteVersion(ctx, "fraud", 2, 0))

	// Exactly the planned artifact, but flagged since it was registered:
	// adopting it would lift the flag without a plan that shows it.
	_, err = c.CreateVersion(ctx, "fraud", registry.ModelVersionCreate{
		Source: "s3://models/fraud/3.onnx", Checksum: checksum(3), Format: "onnx", Flagged: true, FlagReason: "label leak",
	})
	must(t, err)
	w.writeConfig(model + `
resource "mlregistry_model_version" "x" {
  model    = mlregistry_model.fraud.name
  source   = "s3://models/fraud/3.onnx"
  checksum = "` + checksum(3) + `"
  format   = "onnx"
}
`)
	out, err = w.run(ctx, "apply", "-auto-approve", "-input=false", "-target=mlregistry_model_version.x")
	if err == nil || !expectError("Artifact already registered as version 3", `flagged ("label leak")`, "terraform import", "fraud/3").MatchString(out) {
		t.Fatalf("apply of the artifact of a flagged version: %v\n%s", err, out)
	}
	if v, err := c.GetVersion(ctx, "fraud", 3); err != nil || !v.Flagged {
		t.Fatalf("version 3 after the refused adoption: %+v, %v", v, err)
	}
	must(t, c.DeleteVersion(ctx, "fraud", 3, 0))
	w.mustRun(ctx, "destroy", "-auto-approve", "-input=false")
}

// answerLoser forwards every request; while lose is set, it loses the
// answer to each registration of a version after the registry handled it,
// as a crash of the replica or a cut connection does.
type answerLoser struct {
	lose atomic.Bool
	lost atomic.Int64
}

func (l *answerLoser) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && l.lose.Load() && req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/versions") {
		_ = resp.Body.Close()
		l.lost.Add(1)
		return nil, errors.New("connection reset by peer (answer lost on purpose)")
	}
	return resp, err
}

// TestAccModelVersion_createConvergesAfterLostAnswers: a registration the
// registry committed but whose answers (the first and every retry's) were
// lost fails the apply; the next apply adopts the registered version
// instead of failing on its checksum, and converges without an import.
func TestAccModelVersion_createConvergesAfterLostAnswers(t *testing.T) {
	r := testRegistry(t)
	loser := &answerLoser{}
	loser.lose.Store(true)
	providers := map[string]func() (tfprotov6.ProviderServer, error){
		"mlregistry": providerserver.NewProtocol6WithError(func() fwprovider.Provider {
			return &mlregistryProvider{version: "test", clientOptions: func(o *client.Options) {
				o.HTTPClient = &http.Client{Transport: loser}
				o.MaxRetries, o.RetryWaitMin, o.RetryWaitMax = 2, time.Millisecond, 5*time.Millisecond
			}}
		}()),
	}
	c := apiClient(t, r)
	ctx := context.Background()
	const name = "mlregistry_model_version.v"
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: providers,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config:      providerBlock(r, "") + versionConfig(1, ""),
				ExpectError: expectError("could not reach the registry", "answer lost on purpose"),
			},
			{
				PreConfig: func() {
					live, err := c.AllVersions(ctx, "fraud", registry.VersionFilter{})
					must(t, err)
					if len(live) != 1 || loser.lost.Load() != 3 {
						t.Fatalf("after the lost answers: %d versions registered, %d answers lost; want 1 and 3", len(live), loser.lost.Load())
					}
					loser.lose.Store(false)
				},
				Config: providerBlock(r, "") + versionConfig(1, ""),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
				},
				Check: func(*terraformState) error {
					live, err := c.AllVersions(ctx, "fraud", registry.VersionFilter{})
					if err != nil {
						return err
					}
					if len(live) != 1 {
						return fmt.Errorf("%d versions registered, want the one adopted", len(live))
					}
					return nil
				},
			},
		},
	})
}

// TestReplacedBy: the plan's warning asks the questions the attributes'
// plan modifiers ask. Every attribute whose plan modifiers can replace the
// version is in the table, so a new one fails here until replacedBy knows
// it too.
func TestReplacedBy(t *testing.T) {
	ctx := context.Background()
	var resp resource.SchemaResponse
	NewModelVersionResource().Schema(ctx, resource.SchemaRequest{}, &resp)
	replaces := regexp.MustCompile(`(?i)replace|recreate`)
	var replacing []string
	for name, a := range resp.Schema.Attributes {
		var descs []string
		switch a := a.(type) {
		case rschema.StringAttribute:
			for _, m := range a.PlanModifiers {
				descs = append(descs, m.Description(ctx))
			}
		case rschema.MapAttribute:
			for _, m := range a.PlanModifiers {
				descs = append(descs, m.Description(ctx))
			}
		case rschema.SingleNestedAttribute:
			for _, m := range a.PlanModifiers {
				descs = append(descs, m.Description(ctx))
			}
		case rschema.ListAttribute, rschema.BoolAttribute, rschema.Int64Attribute:
		default:
			t.Fatalf("attribute %s: %T is not inspected by this test", name, a)
		}
		if slices.ContainsFunc(descs, replaces.MatchString) {
			replacing = append(replacing, name)
		}
	}
	for name, b := range resp.Schema.Blocks {
		var descs []string
		switch b := b.(type) {
		case rschema.SingleNestedBlock:
			for _, m := range b.PlanModifiers {
				descs = append(descs, m.Description(ctx))
			}
		case rschema.ListNestedBlock:
			for _, m := range b.PlanModifiers {
				descs = append(descs, m.Description(ctx))
			}
		default:
			t.Fatalf("block %s: %T is not inspected by this test", name, b)
		}
		if slices.ContainsFunc(descs, replaces.MatchString) {
			replacing = append(replacing, name)
		}
	}

	lineage := func(run string) types.Object {
		return types.ObjectValueMust(lineageAttrTypes, map[string]attr.Value{
			"run_id": types.StringValue(run), "git_commit": types.StringNull(), "dataset": types.StringNull(), "code_uri": types.StringNull(),
		})
	}
	signature := func(dtype string) types.Object {
		in := types.ObjectValueMust(tensorAttrTypes, map[string]attr.Value{
			"name": types.StringValue("x"), "dtype": types.StringValue(dtype), "shape": types.ListNull(types.Int64Type),
		})
		return types.ObjectValueMust(signatureAttrTypes, map[string]attr.Value{
			"inputs": types.ListValueMust(tensorObjectType, []attr.Value{in}), "outputs": types.ListNull(tensorObjectType),
		})
	}
	metrics := func(kv ...any) types.Map {
		m := map[string]attr.Value{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = types.NumberValue(big.NewFloat(kv[i+1].(float64)))
		}
		return types.MapValueMust(types.NumberType, m)
	}
	// Set field by field: the fields are promoted from embedded structs,
	// whose layout is not this test's business.
	var state modelVersionResourceModel
	state.Model = types.StringValue("churn")
	state.Source, state.Checksum, state.Format = types.StringValue("s3://a"), types.StringValue(checksum(1)), types.StringValue("onnx")
	state.Parameters = types.MapValueMust(types.StringType, map[string]attr.Value{"lr": types.StringValue("0.1")})
	state.Metrics, state.Lineage, state.Signature = metrics("auc", 0.9), lineage("run-1"), signature("float32")
	state.Description, state.Tags = types.StringValue("a"), types.MapValueMust(types.StringType, map[string]attr.Value{})
	changes := map[string]func(*modelVersionResourceModel){
		"model":      func(m *modelVersionResourceModel) { m.Model = types.StringValue("fraud") },
		"source":     func(m *modelVersionResourceModel) { m.Source = types.StringValue("s3://b") },
		"checksum":   func(m *modelVersionResourceModel) { m.Checksum = types.StringValue(checksum(2)) },
		"format":     func(m *modelVersionResourceModel) { m.Format = types.StringUnknown() },
		"parameters": func(m *modelVersionResourceModel) { m.Parameters = types.MapNull(types.StringType) },
		"metrics":    func(m *modelVersionResourceModel) { m.Metrics = metrics("auc", 0.8) },
		"lineage":    func(m *modelVersionResourceModel) { m.Lineage = lineage("run-2") },
		"signature":  func(m *modelVersionResourceModel) { m.Signature = signature("int64") },
	}
	if got, want := slices.Sorted(slices.Values(replacing)), slices.Sorted(maps.Keys(changes)); !slices.Equal(got, want) {
		t.Fatalf("attributes that can replace the version: %v; this test covers %v", got, want)
	}
	for name, change := range changes {
		plan := state
		change(&plan)
		if got := replacedBy(ctx, plan, state); !slices.Equal(got, []string{name}) {
			t.Errorf("changing %s: replacedBy = %v", name, got)
		}
	}
	for what, change := range map[string]func(*modelVersionResourceModel){
		"nothing":          func(*modelVersionResourceModel) {},
		"an added metric":  func(m *modelVersionResourceModel) { m.Metrics = metrics("auc", 0.9, "f1", 0.5) },
		"the description":  func(m *modelVersionResourceModel) { m.Description = types.StringValue("b") },
		"empty for absent": func(m *modelVersionResourceModel) { m.Tags = types.MapNull(types.StringType) },
	} {
		plan := state
		change(&plan)
		if got := replacedBy(ctx, plan, state); len(got) != 0 {
			t.Errorf("changing %s: replacedBy = %v, want nothing", what, got)
		}
	}
}

// TestAccTerraformCLI_replacementAdoptsUnchangedArtifact: a replacement
// planned because an artifact field was unknown at plan time, which turns
// out unchanged at apply, registers nothing new: the create finds the
// version it replaces and adopts it. Terraform then destroys the replaced
// object (create_before_destroy), which is the very version now in state;
// that destroy must leave it registered.
func TestAccTerraformCLI_replacementAdoptsUnchangedArtifact(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	c := apiClient(t, r)
	config := func(trigger string) string {
		return cliHeader(r) + `
resource "mlregistry_model" "fraud" {
  name = "fraud"
}

# Replaced whenever the trigger changes, so its output is unknown at plan
# time although it is always the same string.
resource "terraform_data" "source" {
  input            = "s3://models/fraud/1.onnx"
  triggers_replace = "` + trigger + `"
}

resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.fraud.name
  source   = terraform_data.source.output
  checksum = "` + checksum(1) + `"
  format   = "onnx"
  lifecycle {
    create_before_destroy = true
  }
}

output "version" {
  value = mlregistry_model_version.v.version
}
`
	}
	w.writeConfig(config("a"))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	w.writeConfig(config("b"))
	if out := w.mustRun(ctx, "plan", "-input=false"); !strings.Contains(out, "mlregistry_model_version.v must be replaced") {
		t.Fatalf("the unknown source does not plan a replacement:\n%s", out)
	}
	out := w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	if !strings.Contains(out, "version = 1") {
		t.Fatalf("the resource is not version 1 after the apply:\n%s", out)
	}
	if !expectError("Warning: Version 1 of model \"fraud\" kept: adopted by its replacement").MatchString(out) {
		t.Errorf("apply does not say why version 1 was not deleted:\n%s", out)
	}
	live, err := c.AllVersions(ctx, "fraud", registry.VersionFilter{})
	must(t, err)
	if len(live) != 1 || live[0].Version != 1 {
		t.Fatalf("versions after the replacement: %+v\n%s", live, out)
	}
	if out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("plan after the replacement is not empty: %v\n%s", err, out)
	}
}
