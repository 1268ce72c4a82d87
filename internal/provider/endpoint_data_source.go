package provider

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/attr"
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
	// LiveMetrics is keyed by version number.
	LiveMetrics types.Map `tfsdk:"live_metrics"`
	endpointFields
	endpointRolloutFields
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
						"shadow": schema.BoolAttribute{MarkdownDescription: "Whether the route is a shadow (gets a copy of `share` of the requests, its answers discarded); null when false.", Computed: true},
						"share":  schema.NumberAttribute{MarkdownDescription: "The share of requests a shadow route gets a copy of; null for other routes.", Computed: true},
					},
				},
			},
			"sticky_header": schema.StringAttribute{MarkdownDescription: "Header whose value pins a caller to a route; null when not sticky.", Computed: true},
			"timeout":       schema.StringAttribute{MarkdownDescription: "How long the gateway waits for an upstream's answer to start; null means the default, 30s.", Computed: true},
			"live_metrics": schema.MapAttribute{
				MarkdownDescription: fmt.Sprintf("Live metrics of the last %s on this endpoint, keyed by version number (as a string), then by metric: "+
					"`count` and `mean` of every feedback value, `trusted_count` and `trusted_mean` of those sent by write and admin tokens (what guards and rollout gates judge). "+
					"Versions without feedback are absent.", registry.FormatWindow(registry.PolicyLiveWindow)),
				ElementType: types.MapType{ElemType: types.ObjectType{AttrTypes: liveMetricAttrTypes}},
				Computed:    true,
			},
			"guard": schema.SingleNestedAttribute{
				MarkdownDescription: "Automatic rollback settings; null when there is no guard.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"max_error_rate": schema.NumberAttribute{MarkdownDescription: "Error rate that trips the guard.", Computed: true},
					"min_requests":   schema.Int64Attribute{MarkdownDescription: "Requests needed in the window before the guard judges a route.", Computed: true},
					"window":         schema.StringAttribute{MarkdownDescription: "Sliding window of the error rate.", Computed: true},
					"live_metric": schema.SingleNestedAttribute{
						MarkdownDescription: "The rule on a live metric (trusted feedback only); null when the guard has none.",
						Computed:            true,
						Attributes: map[string]schema.Attribute{
							"metric":    schema.StringAttribute{MarkdownDescription: "The live metric judged.", Computed: true},
							"floor":     schema.NumberAttribute{MarkdownDescription: "The lowest mean a route may keep.", Computed: true},
							"min_count": schema.Int64Attribute{MarkdownDescription: "Feedback values needed in the window before a route is judged.", Computed: true},
							"window":    schema.StringAttribute{MarkdownDescription: "The span of feedback judged.", Computed: true},
						},
					},
				},
			},
			"rollout": schema.SingleNestedAttribute{
				MarkdownDescription: "How a change of the routes' weights or versions is rolled out; null when the endpoint has no rollout configuration.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"steps":            schema.ListAttribute{MarkdownDescription: "Percent of the way to the configured weights at each step.", ElementType: types.Int64Type, Computed: true},
					"bake":             schema.StringAttribute{MarkdownDescription: "How long each step holds.", Computed: true},
					"max_error_rate":   schema.NumberAttribute{MarkdownDescription: "Gate: error rate of a gaining route that rolls the rollout back; null when not set.", Computed: true},
					"max_latency_p99":  schema.StringAttribute{MarkdownDescription: "Gate: p99 upstream latency of a gaining route that rolls the rollout back; null when not set.", Computed: true},
					"min_requests":     schema.Int64Attribute{MarkdownDescription: "Requests a gaining route needs in a step before the gates judge it; null when not set.", Computed: true},
					"min_live_metrics": schema.MapAttribute{MarkdownDescription: "Gate: floor of the mean of each live metric over a gaining version's trusted feedback in the step; null when not set.", ElementType: types.NumberType, Computed: true},
					"min_live_count":   schema.Int64Attribute{MarkdownDescription: "Trusted feedback values per metric `min_live_metrics` needs; null when not set (100).", Computed: true},
					"prometheus": schema.ListNestedAttribute{
						MarkdownDescription: "Prometheus gates, checked when a step's bake ends.",
						Computed:            true,
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"query":      schema.StringAttribute{MarkdownDescription: "The PromQL query.", Computed: true},
							"threshold":  schema.NumberAttribute{MarkdownDescription: "The value the query's sample is compared to.", Computed: true},
							"comparison": schema.StringAttribute{MarkdownDescription: "`<`, `<=`, `>` or `>=`.", Computed: true},
						}},
					},
				},
			},
			"rollout_status": schema.SingleNestedAttribute{
				MarkdownDescription: "Where the endpoint's latest rollout stands; null before its first.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"state":        schema.StringAttribute{MarkdownDescription: "`progressing`, `paused`, `completed`, `rolled_back` or `aborted`.", Computed: true},
					"step":         schema.Int64Attribute{MarkdownDescription: "The step in force, from 1.", Computed: true},
					"percent":      schema.Int64Attribute{MarkdownDescription: "That step's percent of the way to the configured weights.", Computed: true},
					"weights":      schema.MapAttribute{MarkdownDescription: "The weights in force, by in-force route name.", ElementType: types.Int64Type, Computed: true},
					"started_at":   schema.StringAttribute{MarkdownDescription: "When the rollout started (RFC 3339).", Computed: true},
					"next_step_at": schema.StringAttribute{MarkdownDescription: "When the step in force is due to end (RFC 3339); null when paused or ended.", Computed: true},
					"last_gate":    schema.StringAttribute{MarkdownDescription: "The latest gate result.", Computed: true},
					"message":      schema.StringAttribute{MarkdownDescription: "The rollout's latest message: how it started, or why it ended (the failing gate, or who aborted it).", Computed: true},
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
	resp.Diagnostics.Append(cfg.endpointFields.fromAPI(ctx, e, endpointFields{})...)
	resp.Diagnostics.Append(cfg.endpointRolloutFields.fromAPI(ctx, e, endpointRolloutFields{})...)
	lm, err := d.client.EndpointLiveMetrics(ctx, name, registry.FormatWindow(registry.PolicyLiveWindow))
	if err != nil {
		addAPIError(&resp.Diagnostics, "read the live metrics of", fmt.Sprintf("endpoint %q", name), err)
		return
	}
	perVersion := make(map[string]attr.Value, len(lm.Versions))
	for _, v := range lm.Versions {
		m, d := liveMetricsValue(v.Metrics, v.Trusted)
		resp.Diagnostics.Append(d...)
		perVersion[strconv.FormatInt(v.Version, 10)] = m
	}
	cfg.LiveMetrics, diags = types.MapValue(types.MapType{ElemType: types.ObjectType{AttrTypes: liveMetricAttrTypes}}, perVersion)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}
