package provider

// The refresh of mlregistry_model_version reads through the client's read
// cache (client.ReadVersion): one list call per page of a model's versions
// and provider run.
// These tests check what it costs at the registry and that refresh stays
// exact: changes made by hand between Terraform commands are seen.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// versionRequests is how many GETs the registry has answered on its
// version list and version routes, from its own /metrics.
func versionRequests(t *testing.T, r *apptest.Registry) (lists, gets int) {
	t.Helper()
	counts := registryRequests(t, r)
	return counts["GET "+routeVersions], counts["GET "+routeVersion]
}

// versionsConfig is one model per entry of counts with that many versions
// (model name => count), descriptions "d<i>".
func versionsConfig(counts map[string]int) string {
	var b strings.Builder
	for _, name := range sortedKeys(counts) {
		b.WriteString(`
resource "mlregistry_model" "` + name + `" {
  name = "` + name + `"
}

resource "mlregistry_model_version" "` + name + `" {
  count       = ` + strconv.Itoa(counts[name]) + `
  model       = mlregistry_model.` + name + `.name
  source      = "s3://models/` + name + `/${count.index}/model.onnx"
  checksum    = format("sha256:%064x", count.index + 1)
  format      = "onnx"
  metrics     = { auc = 0.9 }
  description = "d${count.index}"
  tags        = { n = "${count.index}" }
}
`)
	}
	return b.String()
}

// TestAccTerraformCLI_refreshListsEachModelOnce: `terraform plan` over 12
// versions of one model and 3 of another refreshes them with one version
// list call per model and no GET of a single version, and plans nothing.
func TestAccTerraformCLI_refreshListsEachModelOnce(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	r := startRegistry(t)
	ctx := context.Background()
	w.env["TF_VAR_registry_token"] = r.AdminToken
	w.writeConfig(requiredProvidersHCL + `
variable "registry_token" {
  type      = string
  sensitive = true
}

provider "mlregistry" {
  address = "` + r.URL + `"
  token   = var.registry_token
}
` + versionsConfig(map[string]int{"big": 12, "small": 3}))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	lists0, gets0 := versionRequests(t, r)
	out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode")
	if err != nil {
		t.Fatalf("plan after apply (want no changes, exit 0): %v\n%s", err, out)
	}
	// The server counts a request once its handler has returned, which can
	// be just after the provider has the answer.
	deadline := time.Now().Add(3 * time.Second)
	for {
		lists, gets := versionRequests(t, r)
		lists, gets = lists-lists0, gets-gets0
		if lists == 2 && gets == 0 {
			break
		}
		if lists > 2 || gets > 0 || time.Now().After(deadline) {
			t.Fatalf("refreshing 15 versions of 2 models took %d version lists and %d version GETs, want 2 and 0", lists, gets)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccModelVersion_refreshSeesChangesByHand: with the read cache,
// refresh still reads what the registry holds at each plan: a version
// changed by hand between two applies plans an update back, a stage
// assigned by hand shows in stages, and a version deleted by hand leaves
// state and is planned for create.
func TestAccModelVersion_refreshSeesChangesByHand(t *testing.T) {
	r := testRegistry(t)
	c := apiClient(t, r)
	ctx := context.Background()
	config := providerBlock(r, "") + versionsConfig(map[string]int{"drift": 5})
	v := func(i int) string { return "mlregistry_model_version.drift[" + strconv.Itoa(i) + "]" }
	// number is the version number of drift[i]: the versions are created
	// in parallel, so their numbers follow no index.
	number := func(i int) int64 {
		all, err := c.AllVersions(ctx, "drift", registry.VersionFilter{})
		must(t, err)
		for _, v := range all {
			if v.Description == "d"+strconv.Itoa(i) {
				return v.Version
			}
		}
		t.Fatalf("no version of drift has description d%d", i)
		return 0
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(v(2), tfjsonpath.New("description"), knownvalue.StringExact("d2")),
				},
			},
			{
				// drift[2] edited and drift[1] promoted by hand.
				PreConfig: func() {
					d := "by hand"
					_, err := c.UpdateVersion(ctx, "drift", number(2), registry.ModelVersionPatch{Description: &d, Tags: &map[string]string{"n": "x"}}, 0)
					must(t, err)
					_, err = c.AssignStage(ctx, "drift", "staging", registry.StageAssign{Version: number(1)}, 0)
					must(t, err)
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(v(2), plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(v(2), tfjsonpath.New("description"), knownvalue.StringExact("d2")),
						plancheck.ExpectResourceAction(v(0), plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction(v(1), plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction(v(3), plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction(v(4), plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(v(2), tfjsonpath.New("description"), knownvalue.StringExact("d2")),
					statecheck.ExpectKnownValue(v(2), tfjsonpath.New("tags"), knownvalue.MapExact(map[string]knownvalue.Check{"n": knownvalue.StringExact("2")})),
					statecheck.ExpectKnownValue(v(1), tfjsonpath.New("stages"), knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("staging")})),
					statecheck.ExpectKnownValue(v(0), tfjsonpath.New("stages"), knownvalue.ListExact([]knownvalue.Check{})),
				},
			},
			{
				// The stage removed and drift[3] deleted by hand.
				PreConfig: func() {
					must(t, c.UnassignStage(ctx, "drift", "staging", 0))
					must(t, c.DeleteVersion(ctx, "drift", number(3), 0))
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(v(3), plancheck.ResourceActionCreate),
						plancheck.ExpectResourceAction(v(2), plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction(v(1), plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(v(3), tfjsonpath.New("version"), knownvalue.Int64Exact(6)),
					statecheck.ExpectKnownValue(v(1), tfjsonpath.New("stages"), knownvalue.ListExact([]knownvalue.Check{})),
				},
			},
		},
	})
}

// TestAccTerraformCLI_refreshPagesThroughALongHistory: `terraform plan`
// over 3,000 versions of one model refreshes them from the model's list
// pages: the registry answers no more requests than the list pages, the
// models and a ping (with room for a GET or two where a read reaches past
// the pages listed so far), never one GET per version, and the plan is
// empty, so every version was read exactly.
//
// Applying 3,000 versions through Terraform would take most of the test's
// time for nothing it checks, so Terraform creates the model and the first
// version, the others are created through the API with the configuration's
// values, and the state is that first version's instance copied for each
// of them; the plan's refresh then replaces every copy with what the
// registry answers.
func TestAccTerraformCLI_refreshPagesThroughALongHistory(t *testing.T) {
	t.Parallel()
	const (
		versions = 3000
		models   = 1
		pages    = (versions + registry.MaxPageSize - 1) / registry.MaxPageSize
	)
	w := newWorkspace(t).withoutTrace()
	r := startRegistry(t)
	ctx := context.Background()
	c := apiClient(t, r)
	w.env["TF_VAR_registry_token"] = r.AdminToken
	config := func(n int) string {
		return requiredProvidersHCL + `
variable "registry_token" {
  type      = string
  sensitive = true
}

provider "mlregistry" {
  address = "` + r.URL + `"
  token   = var.registry_token
}
` + versionsConfig(map[string]int{"big": n})
	}
	w.writeConfig(config(1))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")

	// Created in index order, so big[i] is version i+1.
	for i := 1; i < versions; i++ {
		_, err := c.CreateVersion(ctx, "big", registry.ModelVersionCreate{
			Source:      fmt.Sprintf("s3://models/big/%d/model.onnx", i),
			Checksum:    fmt.Sprintf("sha256:%064x", i+1),
			Format:      "onnx",
			Metrics:     map[string]float64{"auc": 0.9},
			Description: fmt.Sprintf("d%d", i),
			Tags:        map[string]string{"n": strconv.Itoa(i)},
		})
		must(t, err)
	}
	copyVersionInstances(t, filepath.Join(w.dir, "terraform.tfstate"), "big", versions)
	w.writeConfig(config(versions))

	before := registryRequests(t, r)
	out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode")
	if err != nil {
		t.Fatalf("plan over %d versions (want no changes, exit 0): %v\n%s", versions, err, out)
	}
	limit := pages + models + 3
	// The server counts a request once its handler has returned, which can
	// be just after the provider has the answer, so the count is read
	// again for a while unless it is already past the limit. The reads of
	// /metrics are this test's own.
	var got map[string]int
	deadline := time.Now().Add(2 * time.Second)
	for {
		got = registryRequests(t, r)
		for route, n := range before {
			got[route] -= n
		}
		got[""] -= got["GET /metrics"]
		delete(got, "GET /metrics")
		if got[""] > limit || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("plan over %d versions: %d requests: %v", versions, got[""], got)
	if got[""] > limit {
		t.Fatalf("refreshing %d versions of one model took %d registry requests (%d version lists, %d version GETs); "+
			"want at most %d (%d list pages + %d model + a ping and two spare)",
			versions, got[""], got["GET "+routeVersions], got["GET "+routeVersion], limit, pages, models)
	}
}

// Routes of the version reads, as the registry's metrics label them.
const (
	routeVersions = "/api/v1/models/{model}/versions"
	routeVersion  = "/api/v1/models/{model}/versions/{version}"
)

// registryRequests is how many requests the registry has answered, from
// its own /metrics (mlregistry_http_requests_total, every status): per
// "METHOD route", and under "" the total.
func registryRequests(t *testing.T, r *apptest.Registry) map[string]int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.URL+"/metrics", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+r.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	counts := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "mlregistry_http_requests_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		must(t, err)
		counts[""] += int(v)
		counts[label(line, "method")+" "+label(line, "route")] += int(v)
	}
	must(t, sc.Err())
	return counts
}

// copyVersionInstances rewrites the state file at path so the
// mlregistry_model_version resource of model holds n instances: its
// instance 0 copied with index i, version i+1 and the configuration's
// values of versionsConfig for i.
func copyVersionInstances(t *testing.T, path, model string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	var state map[string]any
	must(t, json.Unmarshal(data, &state))
	resources, _ := state["resources"].([]any)
	found := false
	for _, res := range resources {
		res, _ := res.(map[string]any)
		if res["type"] != "mlregistry_model_version" || res["name"] != model {
			continue
		}
		instances, _ := res["instances"].([]any)
		if len(instances) != 1 {
			t.Fatalf("state holds %d instances of mlregistry_model_version.%s, want 1", len(instances), model)
		}
		first, err := json.Marshal(instances[0])
		must(t, err)
		out := make([]any, n)
		for i := range n {
			var inst map[string]any
			must(t, json.Unmarshal(first, &inst))
			inst["index_key"] = i
			attrs, _ := inst["attributes"].(map[string]any)
			if attrs == nil {
				t.Fatalf("instance 0 of mlregistry_model_version.%s has no attributes", model)
			}
			attrs["id"] = fmt.Sprintf("%s/%d", model, i+1)
			attrs["version"] = i + 1
			attrs["source"] = fmt.Sprintf("s3://models/%s/%d/model.onnx", model, i)
			attrs["checksum"] = fmt.Sprintf("sha256:%064x", i+1)
			attrs["description"] = fmt.Sprintf("d%d", i)
			attrs["tags"] = map[string]any{"n": strconv.Itoa(i)}
			out[i] = inst
		}
		res["instances"] = out
		found = true
	}
	if !found {
		t.Fatalf("state has no mlregistry_model_version.%s", model)
	}
	serial, _ := state["serial"].(float64)
	state["serial"] = serial + 1
	data, err = json.Marshal(state)
	must(t, err)
	must(t, os.WriteFile(path, data, 0o600))
}

// label is the value of a label of a Prometheus text-format line.
func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	value, _, _ := strings.Cut(rest, `"`)
	return value
}
