package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/faultproxy"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// lossyModels is how many models the lossy configuration declares; each
// has 3 versions and a stage assignment, and one endpoint routes to the
// first model: 40 + 120 + 40 + 1 = 201 resources.
const lossyModels = 40

// lossyConfig declares the 201 resources. Each model's staging stage
// points at its version declared stageVersion-th (1 to 3; the numbers
// the registry gives out depend on the order the creates arrive), desc is
// the description of every model and version, stable the endpoint's
// stable weight.
func lossyConfig(address, token string, stageVersion int, desc string, stable int) string {
	return fmt.Sprintf(`
provider "mlregistry" {
  address = %q
  token   = %q
}

# count, not for_each: the testing framework's state shim indexes by number.
resource "mlregistry_model" "m" {
  count       = %d
  name        = format("lossy-%%02d", count.index)
  description = %q
}

# Versions 3i, 3i+1 and 3i+2 belong to model i.
resource "mlregistry_model_version" "v" {
  count       = %d
  model       = mlregistry_model.m[floor(count.index / 3)].name
  source      = "s3://models/${count.index}.onnx"
  checksum    = "sha256:${sha256(tostring(count.index))}"
  format      = "onnx"
  description = %q
}

resource "mlregistry_stage_assignment" "s" {
  count   = %d
  model   = mlregistry_model.m[count.index].name
  stage   = "staging"
  version = mlregistry_model_version.v[3 * count.index + %d].version
}

resource "mlregistry_endpoint" "e" {
  name  = "lossy"
  model = mlregistry_model.m[0].name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v[0].version
    upstream_url = "http://stable.internal:8080"
    weight       = %d
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v[1].version
    upstream_url = "http://canary.internal:8080"
    weight       = %d
  }
}
`, address, token, lossyModels, desc, 3*lossyModels, desc, lossyModels, stageVersion-1, stable, 100-stable)
}

// TestAccLossyNetwork_applyConverges: Terraform applies 201 resources
// (models, versions, stage assignments, an endpoint) through a proxy
// that loses the answer on about half of the connections after the
// request reached the registry, then updates every one of them in place
// (each update carries If-Match), re-plans empty and destroys, all
// through the proxy. Every create and every conditional write is applied
// exactly once: a retry after a lost answer gets the first answer
// (Idempotency-Key on every write) instead of a duplicate, or a 412 from
// the revision its own first attempt moved.
func TestAccLossyNetwork_applyConverges(t *testing.T) {
	r := testRegistry(t)
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(u.Host, 0.5, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	lossy := func(o *client.Options) {
		// One request per connection, so about half of all answers are
		// lost; many quick retries keep the run short.
		o.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		o.MaxRetries, o.RetryWaitMin, o.RetryWaitMax = 30, time.Millisecond, 5*time.Millisecond
	}
	providers := map[string]func() (tfprotov6.ProviderServer, error){
		"mlregistry": providerserver.NewProtocol6WithError(func() fwprovider.Provider {
			return &mlregistryProvider{version: "test", clientOptions: lossy}
		}()),
	}
	c := apiClient(t, r)
	ctx := context.Background()

	start := time.Now()
	tfresource.Test(t, tfresource.TestCase{
		ProtoV6ProviderFactories: providers,
		CheckDestroy: func(s *terraformState) error {
			if err := checkDestroyed(t, r)(s); err != nil {
				return err
			}
			ms, err := c.AllModels(ctx)
			if err != nil {
				return err
			}
			if len(ms) != 0 {
				return fmt.Errorf("%d models left after destroy", len(ms))
			}
			return nil
		},
		Steps: []tfresource.TestStep{
			{
				Config: lossyConfig(p.URL(), r.AdminToken, 1, "first", 90),
				Check: func(*terraformState) error {
					return checkLossyRegistry(ctx, c, 1, "first", 90)
				},
			},
			{
				// Every resource changes in place: PATCH or PUT with If-Match.
				Config: lossyConfig(p.URL(), r.AdminToken, 2, "second", 70),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("mlregistry_model.m[7]", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("mlregistry_model_version.v[23]", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("mlregistry_stage_assignment.s[7]", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("mlregistry_endpoint.e", plancheck.ResourceActionUpdate),
					},
				},
				Check: func(*terraformState) error {
					if err := checkLossyRegistry(ctx, c, 2, "second", 70); err != nil {
						return err
					}
					return checkAppliedOnce(ctx, c)
				},
			},
			{
				// A plan through the lossy network (refreshing every resource)
				// finds nothing to do: PlanOnly fails on a non-empty plan.
				Config:   lossyConfig(p.URL(), r.AdminToken, 2, "second", 70),
				PlanOnly: true,
			},
		},
	})
	if t.Failed() {
		return
	}
	if d := p.Dropped.Load(); d < 500 {
		t.Errorf("the proxy lost only %d answers; the test did not exercise retries", d)
	}
	t.Logf("apply, update, re-plan and destroy of 201 resources in %s: %d connections, %d answers lost",
		time.Since(start).Round(time.Millisecond), p.Connections.Load(), p.Dropped.Load())
}

// checkLossyRegistry reads the registry directly: exactly the declared
// models, versions 1 to 3 of each (a duplicated create would have taken
// number 4), staging on the version declared stageVersion-th, the
// endpoint's weights.
func checkLossyRegistry(ctx context.Context, c *client.Client, stageVersion int, desc string, stable int) error {
	ms, err := c.AllModels(ctx)
	if err != nil {
		return err
	}
	if len(ms) != lossyModels {
		return fmt.Errorf("%d models in the registry, want %d", len(ms), lossyModels)
	}
	for i, m := range ms {
		if want := fmt.Sprintf("lossy-%02d", i); m.Name != want || m.Description != desc {
			return fmt.Errorf("model %d: %s %q, want %s %q", i, m.Name, m.Description, want, desc)
		}
		vs, err := c.AllVersions(ctx, m.Name, registry.VersionFilter{})
		if err != nil {
			return err
		}
		var nums []string
		bySource := map[string]int64{}
		for _, v := range vs {
			nums = append(nums, fmt.Sprint(v.Version))
			bySource[v.Source] = v.Version
			if v.Description != desc {
				return fmt.Errorf("version %s/%d: description %q, want %q", m.Name, v.Version, v.Description, desc)
			}
		}
		if got := strings.Join(nums, ","); got != "1,2,3" {
			return fmt.Errorf("model %s has versions %s, want 1,2,3 (no create applied twice)", m.Name, got)
		}
		a, err := c.GetStage(ctx, m.Name, "staging")
		if err != nil {
			return err
		}
		if want := bySource[fmt.Sprintf("s3://models/%d.onnx", 3*i+stageVersion-1)]; a.Version != want || want == 0 {
			return fmt.Errorf("model %s: staging holds %d, want %d", m.Name, a.Version, want)
		}
	}
	e, err := c.GetEndpoint(ctx, "lossy")
	if err != nil {
		return err
	}
	if len(e.Routes) != 2 || e.Routes[0].Weight != stable || e.Routes[1].Weight != 100-stable {
		return fmt.Errorf("endpoint routes %+v, want weights %d/%d", e.Routes, stable, 100-stable)
	}
	return nil
}

// checkAppliedOnce counts the audit log: each declared create and each
// in-place update happened exactly once.
func checkAppliedOnce(ctx context.Context, c *client.Client) error {
	counts := map[string]int{}
	f := registry.EventFilter{ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}}
	for {
		page, err := c.ListEvents(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range page.Items {
			counts[e.Action]++
		}
		if page.NextPageToken == "" {
			break
		}
		f.PageToken = page.NextPageToken
	}
	for action, want := range map[string]int{
		registry.ActionModelCreate:    lossyModels,
		registry.ActionModelUpdate:    lossyModels,
		registry.ActionVersionCreate:  3 * lossyModels,
		registry.ActionVersionUpdate:  3 * lossyModels,
		registry.ActionStageAssign:    2 * lossyModels,
		registry.ActionEndpointCreate: 1,
		registry.ActionEndpointUpdate: 1,
	} {
		if counts[action] != want {
			return fmt.Errorf("%d %s events, want %d (each write applied once)", counts[action], action, want)
		}
	}
	return nil
}
