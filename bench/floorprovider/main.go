// Command floorprovider is the floor of bench/tfplan.sh: a
// terraform-plugin-framework provider with exactly the mlregistry
// provider's schema, whose resources do no I/O. Its provider, resource and
// data source schemas are the real ones, taken at run time from
// internal/provider (the same constructors the real provider serves), so
// the two can never drift; only the CRUD differs:
//
//   - Create and Update store the plan, each unknown (computed) value made
//     known: id and version numbered in memory, strings "", numbers 0,
//     collections empty, objects null.
//   - Read keeps the prior state (no I/O, so no drift either).
//   - Delete forgets the resource.
//   - Data sources answer an error: the benchmark uses none.
//
// Validators, plan modifiers and defaults in the schemas run as they do
// for the real provider; the resources' own ValidateConfig and ModifyPlan
// methods are the real provider's work and are not run.
//
// Build it as bin/floor/terraform-provider-mlregistry and point a
// dev_overrides block for mlregistry/mlregistry at that directory (see
// bench/tfplan.sh): the configuration is then byte for byte the one the
// real provider runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/big"
	"strconv"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	mlprovider "github.com/mlregistry/terraform-provider-mlregistry/internal/provider"
)

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers such as delve")
	flag.Parse()
	err := providerserver.Serve(context.Background(), func() provider.Provider {
		return &floorProvider{real: mlprovider.New("floor")(), ids: &counter{next: map[string]int64{}}}
	}, providerserver.ServeOpts{
		Address:         "registry.terraform.io/mlregistry/mlregistry",
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err)
	}
}

// floorProvider serves the real provider's schemas with in-memory CRUD.
type floorProvider struct {
	real provider.Provider
	ids  *counter
}

func (p *floorProvider) Metadata(ctx context.Context, req provider.MetadataRequest, resp *provider.MetadataResponse) {
	p.real.Metadata(ctx, req, resp)
	resp.Version = "floor"
}

func (p *floorProvider) Schema(ctx context.Context, req provider.SchemaRequest, resp *provider.SchemaResponse) {
	p.real.Schema(ctx, req, resp)
}

// Configure reads nothing and contacts nothing.
func (p *floorProvider) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {
}

func (p *floorProvider) Resources(ctx context.Context) []func() resource.Resource {
	var out []func() resource.Resource
	for _, f := range p.real.Resources(ctx) {
		out = append(out, func() resource.Resource { return &floorResource{real: f(), ids: p.ids} })
	}
	return out
}

func (p *floorProvider) DataSources(ctx context.Context) []func() datasource.DataSource {
	var out []func() datasource.DataSource
	for _, f := range p.real.DataSources(ctx) {
		out = append(out, func() datasource.DataSource { return &floorDataSource{real: f()} })
	}
	return out
}

// counter numbers ids per key (a model's versions, or a resource type).
type counter struct {
	mu   sync.Mutex
	next map[string]int64
}

func (c *counter) take(key string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next[key]++
	return c.next[key]
}

type floorResource struct {
	real resource.Resource
	ids  *counter
}

func (r *floorResource) Metadata(ctx context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	r.real.Metadata(ctx, req, resp)
}

func (r *floorResource) Schema(ctx context.Context, req resource.SchemaRequest, resp *resource.SchemaResponse) {
	r.real.Schema(ctx, req, resp)
}

func (r *floorResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	resp.State.Raw = known(req.Plan.Raw)
	var typeName resource.MetadataResponse
	r.real.Metadata(ctx, resource.MetadataRequest{ProviderTypeName: "mlregistry"}, &typeName)
	switch typeName.TypeName {
	case "mlregistry_model_version":
		var model types.String
		resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("model"), &model)...)
		n := r.ids.take("version/" + model.ValueString())
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("version"), n)...)
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), model.ValueString()+"/"+strconv.FormatInt(n, 10))...)
	case "mlregistry_model", "mlregistry_endpoint":
		var name types.String
		resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("name"), &name)...)
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), name.ValueString())...)
	default:
		n := r.ids.take(typeName.TypeName)
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), fmt.Sprintf("floor-%d", n))...)
	}
}

// Read keeps the prior state, which the framework has already put in
// resp.State.
func (r *floorResource) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {}

func (r *floorResource) Update(_ context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	resp.State.Raw = known(req.Plan.Raw)
}

func (r *floorResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}

// known replaces every unknown value in v with a known one of its type.
func known(v tftypes.Value) tftypes.Value {
	out, err := tftypes.Transform(v, func(_ *tftypes.AttributePath, v tftypes.Value) (tftypes.Value, error) {
		if v.IsKnown() {
			return v, nil
		}
		t := v.Type()
		switch {
		case t.Is(tftypes.String):
			return tftypes.NewValue(t, ""), nil
		case t.Is(tftypes.Number):
			return tftypes.NewValue(t, big.NewFloat(0)), nil
		case t.Is(tftypes.Bool):
			return tftypes.NewValue(t, false), nil
		case t.Is(tftypes.List{}), t.Is(tftypes.Set{}):
			return tftypes.NewValue(t, []tftypes.Value{}), nil
		case t.Is(tftypes.Map{}):
			return tftypes.NewValue(t, map[string]tftypes.Value{}), nil
		default:
			return tftypes.NewValue(t, nil), nil
		}
	})
	if err != nil {
		// Transform fails only on a callback error, and ours returns none.
		panic(err)
	}
	return out
}

type floorDataSource struct {
	real datasource.DataSource
}

func (d *floorDataSource) Metadata(ctx context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	d.real.Metadata(ctx, req, resp)
}

func (d *floorDataSource) Schema(ctx context.Context, req datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	d.real.Schema(ctx, req, resp)
}

func (d *floorDataSource) Read(_ context.Context, _ datasource.ReadRequest, resp *datasource.ReadResponse) {
	resp.Diagnostics.AddError("Not in the floor provider", "bench/floorprovider serves the mlregistry schemas with no I/O; its data sources read nothing.")
}
