package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var (
	_ datasource.DataSource              = (*endpointDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*endpointDataSource)(nil)
)

// NewEndpointDataSource is the mlregistry_endpoint data source.
func NewEndpointDataSource() datasource.DataSource { return &endpointDataSource{} }

type endpointDataSource struct {
	client *client.Client
}

type endpointDataSourceModel struct {
	ID     types.String `tfsdk:"id"`
	Name   types.String `tfsdk:"name"`
	Model  types.String `tfsdk:"model"`
	Routes types.List   `tfsdk:"routes"`
	endpointFields
}

func (d *endpointDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_endpoint"
}

func (d *endpointDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a serving endpoint, including the weights the registry observes now (after a guard rollback, the moved weights) and its status.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{MarkdownDescription: "The endpoint's name.", Computed: true},
			"name": schema.StringAttribute{
				MarkdownDescription: describe("Name of the endpoint.", registry.NameRule),
				Required:            true,
				Validators:          []validator.String{nameValidator()},
			},
			"model": schema.StringAttribute{MarkdownDescription: "The registered model whose versions the routes serve.", Computed: true},
			"stage": schema.StringAttribute{MarkdownDescription: "The stage the endpoint serves (its routes hold or satisfy it); null when it serves none.", Computed: true},
			"routes": schema.ListNestedAttribute{
				MarkdownDescription: "Where traffic goes now.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"name":         schema.StringAttribute{MarkdownDescription: "Route name.", Computed: true},
						"version":      schema.Int64Attribute{MarkdownDescription: "The model version this route serves.", Computed: true},
						"upstream_url": schema.StringAttribute{MarkdownDescription: "The server that runs this version.", Computed: true},
						"weight":       schema.Int64Attribute{MarkdownDescription: "Share of the traffic in percent.", Computed: true},
						"match": schema.SingleNestedAttribute{
							MarkdownDescription: "The route's header match; null when it has none. Matched requests go to the route whatever the weights.",
							Computed:            true,
							Attributes: map[string]schema.Attribute{
								"header": schema.StringAttribute{MarkdownDescription: "The request header matched.", Computed: true},
								"value":  schema.StringAttribute{MarkdownDescription: "The value compared.", Computed: true},
								"prefix": schema.BoolAttribute{MarkdownDescription: "Whether values starting with `value` match too; null when false.", Computed: true},
							},
						},
					},
				},
			},
			"sticky_header": schema.StringAttribute{MarkdownDescription: "Header whose value pins a caller to a route; null when not sticky.", Computed: true},
			"timeout":       schema.StringAttribute{MarkdownDescription: "How long the gateway waits for an upstream's answer to start; null means the default, 30s.", Computed: true},
			"guard": schema.SingleNestedAttribute{
				MarkdownDescription: "Automatic rollback settings; null when there is no guard.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"max_error_rate": schema.NumberAttribute{MarkdownDescription: "Error rate that trips the guard.", Computed: true},
					"min_requests":   schema.Int64Attribute{MarkdownDescription: "Requests needed in the window before the guard judges a route.", Computed: true},
					"window":         schema.StringAttribute{MarkdownDescription: "Sliding window of the error rate.", Computed: true},
				},
			},
			"url":            schema.StringAttribute{MarkdownDescription: "Where clients call the endpoint.", Computed: true},
			"status":         schema.StringAttribute{MarkdownDescription: "`healthy`, `rolled_back` (the guard moved a failing route's weight), `degraded` (every route failed the guard) or `drained` (a flagged version lost its weight).", Computed: true},
			"status_message": schema.StringAttribute{MarkdownDescription: "What happened, when `status` is not `healthy`.", Computed: true},
			"created_at":     schema.StringAttribute{MarkdownDescription: "When the endpoint was created (RFC 3339).", Computed: true},
			"updated_at":     schema.StringAttribute{MarkdownDescription: "When the endpoint was last changed (RFC 3339).", Computed: true},
			"revision":       schema.Int64Attribute{MarkdownDescription: "The endpoint's revision (its ETag).", Computed: true},
		},
	}
}

func (d *endpointDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = providerClient(req.ProviderData, &resp.Diagnostics)
}

func (d *endpointDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg endpointDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := cfg.Name.ValueString()
	e, err := d.client.GetEndpoint(ctx, name)
	if err != nil {
		addAPIError(&resp.Diagnostics, "read", fmt.Sprintf("endpoint %q", name), err)
		return
	}
	cfg.ID = types.StringValue(e.Name)
	cfg.Model = types.StringValue(e.Model)
	var diags diag.Diagnostics
	cfg.Routes, diags = routesValue(ctx, e.Routes, types.ListNull(routeObjectType))
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(cfg.fromAPI(ctx, e, endpointFields{})...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}
