package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Acceptance tests run real Terraform (from PATH) against the provider
// served in-process, talking to a real registry (apptest: app.Main on
// 127.0.0.1:0 over SQLite in t.TempDir()). Nothing is mocked.

var testAccProviders = map[string]func() (tfprotov6.ProviderServer, error){
	"mlregistry": providerserver.NewProtocol6WithError(New("test")()),
}

// testRegistry starts a registry for one acceptance test, or skips the
// test when TF_ACC is not set (resource.Test would skip it anyway; this
// saves booting a registry for nothing).
func testRegistry(t *testing.T) *apptest.Registry {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	return startRegistry(t)
}

// startRegistry boots a registry. The in-process provider's HTTP
// transports keep connections open after each Terraform command; some
// were dialled but never used (the transport found an idle one first),
// and http.Server.Shutdown only closes those after 5 s, so the shutdown
// timeout must be longer than that.
func startRegistry(t *testing.T) *apptest.Registry {
	t.Helper()
	return apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.ShutdownTimeout = 15 * time.Second }))
}

// adminName matches the name of the admin token apptest creates; it is
// what created_by and assigned_by say.
var adminName = knownvalue.StringRegexp(regexp.MustCompile(`^admin(-\d+)?$`))

// providerBlock configures the provider for r with the given token (the
// admin token when empty).
func providerBlock(r *apptest.Registry, token string) string {
	if token == "" {
		token = r.AdminToken
	}
	return fmt.Sprintf(`
provider "mlregistry" {
  address = %q
  token   = %q
}
`, r.URL, token)
}

// apiClient is a client for out-of-band changes and checks.
func apiClient(t *testing.T, r *apptest.Registry) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Address: r.URL, Token: r.AdminToken, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// must fails the test on err; for PreConfig funcs.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// expectError matches each phrase in order, whatever the line wrapping
// Terraform applied to the diagnostic (any run of spaces in a phrase
// matches any whitespace, and the │ border Terraform draws).
func expectError(phrases ...string) *regexp.Regexp {
	parts := make([]string, len(phrases))
	for i, p := range phrases {
		words := strings.Fields(p)
		for j, w := range words {
			words[j] = regexp.QuoteMeta(w)
		}
		parts[i] = strings.Join(words, `[\s│]+`)
	}
	return regexp.MustCompile(`(?s)` + strings.Join(parts, ".*"))
}

// terraformState names the state type Check functions receive.
type terraformState = terraform.State

func checksum(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// inPlaceUpdate: the step's plan updates resource name in place, and the
// plan after the apply is empty.
func inPlaceUpdate(name string) tfresource.ConfigPlanChecks {
	return tfresource.ConfigPlanChecks{
		PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate)},
		PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
	}
}

// gatewayAnswer is what one request through the registry's gateway got.
type gatewayAnswer struct {
	status               int
	body, route, version string
}

// serveOnce sends one request with header through the gateway to endpoint,
// authorised by token.
func serveOnce(r *apptest.Registry, token, endpoint string, header http.Header) (gatewayAnswer, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, r.URL+"/serve/"+endpoint+"/predict", nil)
	if err != nil {
		return gatewayAnswer{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return gatewayAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return gatewayAnswer{}, err
	}
	return gatewayAnswer{status: resp.StatusCode, body: string(body), route: resp.Header.Get("X-Route"), version: resp.Header.Get("X-Model-Version")}, nil
}

// namedUpstream is an upstream that answers every request with route, so
// a test can see which route the gateway picked.
func namedUpstream(t *testing.T, route string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, route) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// checkDestroyed is a CheckDestroy: every mlregistry_* resource in state
// is gone from the registry.
func checkDestroyed(t *testing.T, r *apptest.Registry) tfresource.TestCheckFunc {
	return func(s *terraform.State) error {
		c := apiClient(t, r)
		ctx := context.Background()
		for name, rs := range s.RootModule().Resources {
			var err error
			switch rs.Type {
			case "mlregistry_model":
				_, err = c.GetModel(ctx, rs.Primary.ID)
			case "mlregistry_model_version":
				model, version, perr := parseVersionID(rs.Primary.ID)
				if perr != nil {
					return perr
				}
				_, err = c.GetVersion(ctx, model, version)
			case "mlregistry_stage_assignment":
				model, stage, perr := parseStageID(rs.Primary.ID)
				if perr != nil {
					return perr
				}
				_, err = c.GetStage(ctx, model, stage)
			case "mlregistry_endpoint":
				_, err = c.GetEndpoint(ctx, rs.Primary.ID)
			default:
				continue
			}
			if err == nil {
				return fmt.Errorf("%s (%s) still exists after destroy", name, rs.Primary.ID)
			}
			if !errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
}

func TestSchemasAreValid(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	var presp fwprovider.SchemaResponse
	p.Schema(ctx, fwprovider.SchemaRequest{}, &presp)
	if presp.Diagnostics.HasError() {
		t.Fatal(presp.Diagnostics)
	}
	for _, f := range p.Resources(ctx) {
		r := f()
		var resp resource.SchemaResponse
		r.Schema(ctx, resource.SchemaRequest{}, &resp)
		resp.Diagnostics.Append(resp.Schema.ValidateImplementation(ctx)...)
		var meta resource.MetadataResponse
		r.Metadata(ctx, resource.MetadataRequest{ProviderTypeName: "mlregistry"}, &meta)
		if resp.Diagnostics.HasError() {
			t.Fatalf("%s: %v", meta.TypeName, resp.Diagnostics)
		}
		checkDescriptions(t, meta.TypeName, resp.Schema.Attributes)
	}
	for _, f := range p.DataSources(ctx) {
		d := f()
		var resp datasource.SchemaResponse
		d.Schema(ctx, datasource.SchemaRequest{}, &resp)
		resp.Diagnostics.Append(resp.Schema.ValidateImplementation(ctx)...)
		var meta datasource.MetadataResponse
		d.Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: "mlregistry"}, &meta)
		if resp.Diagnostics.HasError() {
			t.Fatalf("data %s: %v", meta.TypeName, resp.Diagnostics)
		}
		checkDataDescriptions(t, "data "+meta.TypeName, resp.Schema.Attributes)
	}
}

// checkDescriptions: every attribute, nested ones included, has a
// MarkdownDescription (they become the docs).
func checkDescriptions(t *testing.T, where string, attrs map[string]rschema.Attribute) {
	t.Helper()
	for name, a := range attrs {
		if a.GetMarkdownDescription() == "" {
			t.Errorf("%s.%s has no MarkdownDescription", where, name)
		}
		switch n := a.(type) {
		case rschema.SingleNestedAttribute:
			checkDescriptions(t, where+"."+name, n.Attributes)
		case rschema.ListNestedAttribute:
			checkDescriptions(t, where+"."+name, n.NestedObject.Attributes)
		case rschema.MapNestedAttribute:
			checkDescriptions(t, where+"."+name, n.NestedObject.Attributes)
		}
	}
}

func checkDataDescriptions(t *testing.T, where string, attrs map[string]dschema.Attribute) {
	t.Helper()
	for name, a := range attrs {
		if a.GetMarkdownDescription() == "" {
			t.Errorf("%s.%s has no MarkdownDescription", where, name)
		}
		switch n := a.(type) {
		case dschema.SingleNestedAttribute:
			checkDataDescriptions(t, where+"."+name, n.Attributes)
		case dschema.ListNestedAttribute:
			checkDataDescriptions(t, where+"."+name, n.NestedObject.Attributes)
		case dschema.MapNestedAttribute:
			checkDataDescriptions(t, where+"."+name, n.NestedObject.Attributes)
		}
	}
}

func TestAccProvider_configurationErrors(t *testing.T) {
	r := testRegistry(t)
	t.Setenv(EnvAddress, "")
	t.Setenv(EnvToken, "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := "http://" + l.Addr().String()
	l.Close()
	const probe = `
data "mlregistry_model_versions" "probe" {
  model = "does-not-matter"
}
`
	tfresource.Test(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []tfresource.TestStep{
			{
				Config:      `provider "mlregistry" {}` + probe,
				ExpectError: regexp.MustCompile(`Missing registry address`),
			},
			{
				Config:      fmt.Sprintf(`provider "mlregistry" { address = %q }`, r.URL) + probe,
				ExpectError: regexp.MustCompile(`Missing registry token`),
			},
			{
				Config:      fmt.Sprintf("provider \"mlregistry\" {\n  address = %q\n  token = \"mlr_wrong\"\n}\n", r.URL) + probe,
				ExpectError: regexp.MustCompile(`Registry token rejected`),
			},
			{
				Config:      fmt.Sprintf("provider \"mlregistry\" {\n  address = %q\n  token = \"mlr_x\"\n  max_retries = 0\n}\n", closedAddr) + probe,
				ExpectError: expectError("Registry unreachable", "could not reach the registry"),
			},
			{
				Config:      "provider \"mlregistry\" {\n  address = \"localhost:8080\"\n  token = \"mlr_x\"\n}\n" + probe,
				ExpectError: regexp.MustCompile(`Invalid registry address`),
			},
			{
				Config:      fmt.Sprintf("provider \"mlregistry\" {\n  address = %q\n  token = \"mlr_x\"\n  timeout = \"soon\"\n}\n", r.URL) + probe,
				ExpectError: expectError(`must be a duration`),
			},
		},
	})
}

func TestAccProvider_environment(t *testing.T) {
	r := testRegistry(t)
	t.Setenv(EnvAddress, r.URL)
	t.Setenv(EnvToken, r.AdminToken)
	tfresource.Test(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []tfresource.TestStep{{
			Config: `
provider "mlregistry" {
  timeout     = "10s"
  max_retries = 2
}
resource "mlregistry_model" "m" {
  name = "env-configured"
}
`,
		}},
		CheckDestroy: checkDestroyed(t, r),
	})
}

func TestParseIDs(t *testing.T) {
	for _, tt := range []struct {
		id      string
		model   string
		version int64
		ok      bool
	}{
		{"churn/3", "churn", 3, true},
		{"a.b_c-d/12", "a.b_c-d", 12, true},
		{"churn", "", 0, false},
		{"churn/0", "", 0, false},
		{"churn/x", "", 0, false},
		{"Churn/1", "", 0, false},
		{"/1", "", 0, false},
		{"churn/1/2", "", 0, false},
	} {
		m, v, err := parseVersionID(tt.id)
		if (err == nil) != tt.ok || m != tt.model || v != tt.version {
			t.Errorf("parseVersionID(%q) = %q, %d, %v", tt.id, m, v, err)
		}
		if err != nil && !strings.Contains(err.Error(), `"<model>/<version>"`) {
			t.Errorf("error does not say the format: %v", err)
		}
	}
	for _, tt := range []struct {
		id, model, stage string
		ok               bool
	}{
		{"churn/production", "churn", "production", true},
		{"churn/Production", "", "", false},
		{"churn", "", "", false},
		{"churn/prod/x", "", "", false},
		{"/production", "", "", false},
	} {
		m, s, err := parseStageID(tt.id)
		if (err == nil) != tt.ok || m != tt.model || s != tt.stage {
			t.Errorf("parseStageID(%q) = %q, %q, %v", tt.id, m, s, err)
		}
	}
}
