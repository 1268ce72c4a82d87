package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var (
	_ resource.Resource                   = (*endpointResource)(nil)
	_ resource.ResourceWithConfigure      = (*endpointResource)(nil)
	_ resource.ResourceWithImportState    = (*endpointResource)(nil)
	_ resource.ResourceWithValidateConfig = (*endpointResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*endpointResource)(nil)
	_ resource.ResourceWithUpgradeState   = (*endpointResource)(nil)
)

// NewEndpointResource is the mlregistry_endpoint resource.
func NewEndpointResource() resource.Resource { return &endpointResource{} }

type endpointResource struct {
	client *client.Client
}

type endpointResourceModel struct {
	ID    types.String `tfsdk:"id"`
	Name  types.String `tfsdk:"name"`
	Model types.String `tfsdk:"model"`
	// Route is the route blocks; the data source has the same list as
	// its computed routes attribute.
	Route types.List `tfsdk:"route"`
	endpointFields
	endpointRolloutFields
	// WaitForRollout lives only in Terraform: whether apply waits.
	WaitForRollout types.Bool `tfsdk:"wait_for_rollout"`
}

// endpointFields are the attributes of an endpoint besides its identity
// and routes, shared with the data source.
type endpointFields struct {
	Stage         types.String `tfsdk:"stage"`
	StickyHeader  types.String `tfsdk:"sticky_header"`
	Guard         types.Object `tfsdk:"guard"`
	Timeout       types.String `tfsdk:"timeout"`
	URL           types.String `tfsdk:"url"`
	Status        types.String `tfsdk:"status"`
	StatusMessage types.String `tfsdk:"status_message"`
	CreatedAt     types.String `tfsdk:"created_at"`
	UpdatedAt     types.String `tfsdk:"updated_at"`
	Revision      types.Int64  `tfsdk:"revision"`
}

type routeModel struct {
	Name        types.String `tfsdk:"name"`
	Version     types.Int64  `tfsdk:"version"`
	UpstreamURL types.String `tfsdk:"upstream_url"`
	Weight      types.Int64  `tfsdk:"weight"`
	Match       types.Object `tfsdk:"match"`
	Shadow      types.Bool   `tfsdk:"shadow"`
	Share       types.Number `tfsdk:"share"`
}

type matchModel struct {
	Header types.String `tfsdk:"header"`
	Value  types.String `tfsdk:"value"`
	Prefix types.Bool   `tfsdk:"prefix"`
}

type guardModel struct {
	MaxErrorRate types.Number `tfsdk:"max_error_rate"`
	MinRequests  types.Int64  `tfsdk:"min_requests"`
	Window       types.String `tfsdk:"window"`
	LiveMetric   types.Object `tfsdk:"live_metric"`
}

type guardLiveMetricModel struct {
	Metric   types.String `tfsdk:"metric"`
	Floor    types.Number `tfsdk:"floor"`
	MinCount types.Int64  `tfsdk:"min_count"`
	Window   types.String `tfsdk:"window"`
}

var (
	matchAttrTypes = map[string]attr.Type{
		"header": types.StringType, "value": types.StringType, "prefix": types.BoolType,
	}
	routeAttrTypes = map[string]attr.Type{
		"name": types.StringType, "version": types.Int64Type, "upstream_url": types.StringType, "weight": types.Int64Type,
		"match": types.ObjectType{AttrTypes: matchAttrTypes}, "shadow": types.BoolType, "share": types.NumberType,
	}
	routeObjectType          = types.ObjectType{AttrTypes: routeAttrTypes}
	guardLiveMetricAttrTypes = map[string]attr.Type{
		"metric": types.StringType, "floor": types.NumberType, "min_count": types.Int64Type, "window": types.StringType,
	}
	guardAttrTypes = map[string]attr.Type{
		"max_error_rate": types.NumberType, "min_requests": types.Int64Type, "window": types.StringType,
		"live_metric": types.ObjectType{AttrTypes: guardLiveMetricAttrTypes},
	}
)

func (r *endpointResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_endpoint"
}

func (r *endpointResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		// Version 1: the routes and guard attributes (in which Terraform
		// drops misspelt keys) became route and guard blocks.
		Version: 1,
		MarkdownDescription: "A serving endpoint: the registry's gateway answers `/serve/<name>/...` by proxying each request to one of the routes, " +
			"picked by weight (or by `sticky_header`, so one caller keeps one route). A canary is a second route with a small weight. " +
			"With a `guard`, the gateway moves a failing route's weight to the healthiest other route and marks the endpoint `rolled_back`; " +
			"the moved weights are what the registry reports, so the next plan shows them as drift and applying restores the configured weights. " +
			"With a `rollout`, a change of the routes' weights or versions is moved into force in steps, each baked and checked by gates; " +
			"`rollout_status` shows where it stands, and a rolled-back rollout shows as drift too. A `shadow` route gets a copy of a share of the requests.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The endpoint's name.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: describe("Name of the endpoint, the path segment after `/serve/`. Changing it replaces the endpoint.", registry.NameRule),
				Required:            true,
				Validators:          []validator.String{nameValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"model": schema.StringAttribute{
				MarkdownDescription: "The registered model whose versions the routes serve. Changing it replaces the endpoint.",
				Required:            true,
				Validators:          []validator.String{nameValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"stage": schema.StringAttribute{
				MarkdownDescription: "The stage the endpoint serves, e.g. `production`. The registry then refuses routes to versions that neither hold that stage " +
					"nor satisfy the model's stage policy for it, on every write; the plan fails early, because the provider asks the registry for a dry run " +
					"of the endpoint's change. Changes in place; removing it, or naming another stage, is a plan warning, since the routes are then no longer checked against this stage's policy.",
				Optional:   true,
				Validators: []validator.String{stageValidator()},
			},
			"sticky_header": schema.StringAttribute{
				MarkdownDescription: "An HTTP request header (e.g. `X-User-Id`): requests with the same value always take the same route.",
				Optional:            true,
				Validators:          []validator.String{headerNameValidator()},
			},
			"timeout": schema.StringAttribute{
				MarkdownDescription: "How long the gateway waits for an upstream's answer to start before it answers `504`, as a duration from `100ms` to `10m` (e.g. `2s` for a latency-bound model, `2m` for a slow batch one). Unset: `30s`. Streaming answers are not cut once they started.",
				Optional:            true,
				Validators:          []validator.String{durationValidator{}},
			},
			"url": schema.StringAttribute{
				MarkdownDescription: "Where clients call the endpoint: `<registry>/serve/<name>/`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "`healthy`; `rolled_back` after the guard moved a failing route's weight; `degraded` when every route failed the guard (nothing moved); " +
					"`drained` after a version the routes served was flagged: its routes lost their weight, moved to the largest route to an unflagged version " +
					"(with none left every weight is 0 and the endpoint answers 503). Setting the routes resets it to `healthy`.",
				Computed: true,
			},
			"status_message": schema.StringAttribute{
				MarkdownDescription: "What happened, when `status` is not `healthy`: the route and its error rate, or the flagged version and its flag reason, and where the weight went.",
				Computed:            true,
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the endpoint was created (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"updated_at": schema.StringAttribute{
				MarkdownDescription: "When the endpoint was last changed (RFC 3339).",
				Computed:            true,
			},
			"revision": schema.Int64Attribute{
				MarkdownDescription: "The endpoint's revision (its ETag), sent as `If-Match` on updates.",
				Computed:            true,
			},
			"wait_for_rollout": waitForRolloutAttribute(),
			"rollout_status":   rolloutStatusAttribute(),
		},
		Blocks: map[string]schema.Block{
			"route": schema.ListNestedBlock{
				MarkdownDescription: fmt.Sprintf("Where traffic goes: 1 to %d `route` blocks, in order, with unique names whose weights sum to 100. Changes in place (and reset a `rolled_back` status).", registry.MaxRoutes),
				Validators:          []validator.List{listvalidator.IsRequired(), listvalidator.SizeBetween(1, registry.MaxRoutes)},
				NestedObject: schema.NestedBlockObject{
					Attributes: map[string]schema.Attribute{
						"name": schema.StringAttribute{
							MarkdownDescription: describe("Route name, e.g. `stable` or `canary`; sent back in the `X-Route` response header.", registry.StageRule),
							Required:            true,
							Validators:          []validator.String{stageValidator()},
						},
						"version": schema.Int64Attribute{
							MarkdownDescription: "The model version this route serves; sent back in the `X-Model-Version` response header. A flagged version is refused unless the route's weight is 0 and it has no `match`.",
							Required:            true,
							Validators:          []validator.Int64{int64validator.AtLeast(1)},
						},
						"upstream_url": schema.StringAttribute{
							MarkdownDescription: "The http:// or https:// server that runs this version.",
							Required:            true,
							Validators:          []validator.String{upstreamURLValidator()},
						},
						"weight": schema.Int64Attribute{
							MarkdownDescription: "Share of the traffic in percent, 0 to 100. The weights of all routes but shadows sum to 100. A route with a `match` may have weight 0: it then gets only the matched requests. A `shadow` route has weight 0.",
							Required:            true,
							Validators:          []validator.Int64{int64validator.Between(0, 100)},
						},
						"shadow": shadowAttribute(),
						"share":  shareAttribute(),
					},
					Blocks: map[string]schema.Block{
						"match": schema.SingleNestedBlock{
							MarkdownDescription: "Routing by header: requests whose `header` equals `value` (starts with it when `prefix = true`) go to this route whatever the weights, " +
								"e.g. testers and internal traffic to a canary at weight 0; the other requests are split by weight. " +
								"A match comes first, then `sticky_header`, then the weights; when several routes match, the first in route order wins. " +
								"When the route's version is flagged (flag drain) or the guard rolls the route back, the route loses its match with its weight, " +
								"so matched requests go by weight; the next plan shows it as drift. A route with a match may not serve a flagged version, even at weight 0.",
							Attributes: map[string]schema.Attribute{
								"header": schema.StringAttribute{
									MarkdownDescription: describe("Required. The request header to match, any case (e.g. `X-Canary`).", "must be an HTTP header name and "+registry.MatchHeaderRule),
									// Optional only because Terraform checks a
									// Required attribute of a single block even when
									// the block is left out; ValidateConfig requires it.
									Optional:   true,
									Validators: []validator.String{matchHeaderValidator()},
								},
								"value": schema.StringAttribute{
									MarkdownDescription: fmt.Sprintf("Required. The value to compare, 1 to %d printable characters, no leading or trailing space; compared case-sensitively.", registry.MaxMatchValueLen),
									Optional:            true,
									Validators:          []validator.String{matchValueValidator()},
								},
								"prefix": schema.BoolAttribute{
									MarkdownDescription: "Match every value that starts with `value` instead of only `value` itself. Defaults to false.",
									Optional:            true,
								},
							},
						},
					},
				},
			},
			"rollout": rolloutBlock(),
			"guard": schema.SingleNestedBlock{
				MarkdownDescription: "Automatic rollback. Each gateway replica judges every route on the 5xx answers and transport errors of the traffic it serves, two ways: " +
					"(1) over the sliding `window`: once the route has served at least `min_requests` requests in it, an error rate above `max_error_rate` trips it; " +
					"(2) over runs of `min_requests` consecutive requests (a run older than `window` starts over): a run in which more than " +
					"max(`max_error_rate`, 0.5) of the requests failed trips the route when the run completes, so a route that starts failing every request " +
					"trips after at most 2 × `min_requests` failures, however much healthy traffic its window holds. " +
					"A route's window and run start afresh whenever its `version`, `upstream_url` or `weight` (or the guard) changes. " +
					"A tripped route's whole weight moves to the healthiest other route (lowest error rate among routes within the limit, then routes without " +
					"traffic in the window; ties to the larger weight, then the earlier route); the endpoint becomes `rolled_back` and an `endpoint.guard_rollback` event is recorded. " +
					"When no other route is healthy or untried (each is over the limit in its window or current run, or was already tripped, or there is no other route), " +
					"the guard moves nothing: the endpoint becomes `degraded` (recorded once, event `endpoint.guard_degraded`) and keeps its weights, " +
					"so traffic is not piled onto one failing route. The guard acts on a route once, until the endpoint is next changed. " +
					"The moved weights and the status are what the registry reports, so the next plan shows them as drift.",
				Attributes: map[string]schema.Attribute{
					"max_error_rate": schema.NumberAttribute{
						MarkdownDescription: "Required. Error rate that trips the guard, greater than 0 and at most 1 (e.g. `0.05` or `1 / 20`).",
						Optional:            true,
						// The range is checked once, by ValidateConfig with
						// the registry's own rule and words.
						PlanModifiers: []planmodifier.Number{keepEquivalentNumbers{}},
					},
					"min_requests": schema.Int64Attribute{
						MarkdownDescription: "Required. Requests a route must have served in the window before the guard judges it.",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.AtLeast(1)},
					},
					"window": schema.StringAttribute{
						MarkdownDescription: "Required. Sliding window of the error rate, a duration between `1s` and `24h` (e.g. `5m`).",
						Optional:            true,
						Validators:          []validator.String{durationValidator{}},
					},
				},
				Blocks: map[string]schema.Block{
					"live_metric": schema.SingleNestedBlock{
						MarkdownDescription: "Also roll back a route whose live metric falls: once the route's version has at least `min_count` values of `metric` in the " +
							"**trusted** feedback sent for this endpoint (by write or admin tokens, an operator's ground-truth pipeline; never by serve tokens, whose holders make the requests) " +
							"over `window`, counted from the minute the endpoint last changed, a mean below `floor` moves the route's weight to the best other route " +
							"(not failing; highest mean among those with `min_count` values, else the larger weight). One process judges it (the rollout driver's leader, every few seconds); " +
							"the endpoint becomes `rolled_back` and an `endpoint.guard_rollback` event names the metric, mean, count and floor. When every other route fails too, nothing moves.",
						Attributes: map[string]schema.Attribute{
							"metric": schema.StringAttribute{
								MarkdownDescription: "Required. The live metric, e.g. `correct`, as the feedback names it.",
								Optional:            true,
							},
							"floor": schema.NumberAttribute{
								MarkdownDescription: "Required. The lowest mean the route may keep, e.g. `0.9`.",
								Optional:            true,
								PlanModifiers:       []planmodifier.Number{keepEquivalentNumbers{}},
							},
							"min_count": schema.Int64Attribute{
								MarkdownDescription: "Required. Feedback values the route's version needs in the window before it is judged.",
								Optional:            true,
								Validators:          []validator.Int64{int64validator.Between(1, registry.MaxMinLiveCount)},
							},
							"window": schema.StringAttribute{
								MarkdownDescription: "Required. The span of feedback judged, whole minutes (e.g. `15m`).",
								Optional:            true,
								Validators:          []validator.String{durationValidator{}},
							},
						},
					},
				},
			},
		},
	}
}

func (r *endpointResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = providerClient(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig checks what one attribute's validator cannot: the
// weights sum to 100 and route names are unique, the rules of shadow
// routes and of the rollout block.
func (r *endpointResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	validateRolloutConfig(ctx, req, resp)
	var routes types.List
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("route"), &routes)...)
	if !isKnown(routes) {
		return
	}
	var rs []routeModel
	resp.Diagnostics.Append(routes.ElementsAs(ctx, &rs, false)...)
	if resp.Diagnostics.HasError() {
		return
	}
	sum, allKnown := int64(0), true
	seen := map[string]bool{}
	for i, rt := range rs {
		if isKnown(rt.Name) {
			if seen[rt.Name.ValueString()] {
				resp.Diagnostics.AddAttributeError(path.Root("route").AtListIndex(i).AtName("name"), "Duplicate route name",
					fmt.Sprintf("%q is used by another route.", rt.Name.ValueString()))
			}
			seen[rt.Name.ValueString()] = true
		}
		if isKnown(rt.Match) {
			var m matchModel
			resp.Diagnostics.Append(rt.Match.As(ctx, &m, objectAsOptions)...)
			for _, f := range []struct {
				name string
				v    attr.Value
			}{{"header", m.Header}, {"value", m.Value}} {
				if f.v.IsNull() {
					resp.Diagnostics.AddAttributeError(path.Root("route").AtListIndex(i).AtName("match").AtName(f.name), "Missing required argument",
						fmt.Sprintf("route[%d].match.%s is required in a match block: a match needs header and value.", i, f.name))
				}
			}
		}
		if !isKnown(rt.Weight) {
			allKnown = false
			continue
		}
		sum += rt.Weight.ValueInt64()
	}
	if allKnown && sum != 100 {
		resp.Diagnostics.AddAttributeError(path.Root("route"), "Route weights must sum to 100",
			fmt.Sprintf("weights must sum to 100, they sum to %d", sum))
	}

	var guard types.Object
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("guard"), &guard)...)
	if !isKnown(guard) {
		return
	}
	var g guardModel
	resp.Diagnostics.Append(guard.As(ctx, &g, objectAsOptions)...)
	// The three are Optional in the schema only because Terraform checks a
	// Required attribute of a single block even when the block is left
	// out; a guard block needs each of them.
	for _, f := range []struct {
		name string
		v    attr.Value
	}{{"max_error_rate", g.MaxErrorRate}, {"min_requests", g.MinRequests}, {"window", g.Window}} {
		if f.v.IsNull() {
			resp.Diagnostics.AddAttributeError(path.Root("guard").AtName(f.name), "Missing required argument",
				fmt.Sprintf("guard.%s is required in a guard block: a guard needs max_error_rate, min_requests and window.", f.name))
		}
	}
	var lm *registry.GuardLiveMetric
	if isKnown(g.LiveMetric) {
		var m guardLiveMetricModel
		resp.Diagnostics.Append(g.LiveMetric.As(ctx, &m, objectAsOptions)...)
		for _, f := range []struct {
			name string
			v    attr.Value
		}{{"metric", m.Metric}, {"floor", m.Floor}, {"min_count", m.MinCount}, {"window", m.Window}} {
			if f.v.IsNull() {
				resp.Diagnostics.AddAttributeError(path.Root("guard").AtName("live_metric").AtName(f.name), "Missing required argument",
					fmt.Sprintf("guard.live_metric.%s is required in a live_metric block: it needs metric, floor, min_count and window.", f.name))
			}
		}
		if fullyKnown(ctx, g.LiveMetric) {
			lm = guardLiveMetricFrom(m)
		}
	} else if g.LiveMetric.IsUnknown() {
		return
	}
	if isKnown(g.MaxErrorRate) && isKnown(g.MinRequests) && isKnown(g.Window) {
		rg := registry.Guard{MaxErrorRate: numberFloat64Of(g.MaxErrorRate), MinRequests: g.MinRequests.ValueInt64(), Window: g.Window.ValueString(), LiveMetric: lm}
		var e *registry.Error
		if err := rg.Validate("guard"); err != nil && asRegistryError(err, &e) {
			p := path.Root("guard")
			if _, field, ok := strings.Cut(e.Field, "."); ok {
				for _, part := range strings.Split(field, ".") {
					p = p.AtName(part)
				}
			}
			// The message names the attribute ("guard.max_error_rate: must
			// be ..."): Terraform shows only the resource for a nested path.
			resp.Diagnostics.AddAttributeError(p, "Invalid guard", err.Error())
		}
	}
}

// ModifyPlan asks the registry for a dry run of the endpoint's create or
// update once its routes are known, so a route the stage's policy refuses
// (or a token that may not change endpoints) fails the plan, not the
// apply.
func (r *endpointResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	planStateWhenUnchanged(ctx, req, resp)
	if req.Plan.Raw.IsNull() || r.client == nil {
		return // destroy, or no registry connection yet
	}
	var plan endpointResourceModel
	resp.Diagnostics.Append(resp.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var state *endpointResourceModel
	if !req.State.Raw.IsNull() {
		state = &endpointResourceModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		if !plan.Name.Equal(state.Name) || !plan.Model.Equal(state.Model) {
			state = nil // replaced: the new endpoint is a create
		} else {
			warnGuardLoosenings(ctx, state.Guard, plan.Guard, &resp.Diagnostics)
			warnStageUnbinding(state, &plan, &resp.Diagnostics)
			resp.Diagnostics.Append(planRolloutStatus(ctx, req, state, &plan, resp)...)
			if plan.onlyTerraformChanges(ctx, *state) {
				return // nothing the registry would check changes
			}
		}
	}
	for _, v := range []attr.Value{plan.Name, plan.Model, plan.Stage, plan.StickyHeader, plan.Timeout, plan.Route, plan.Guard, plan.Rollout} {
		if fullyKnown(ctx, v) {
			continue
		}
		// A version created in this same apply has no number yet; the
		// registry checks the routes when the apply writes them.
		return
	}
	routes, guard, rollout, diags := plan.request(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := plan.Name.ValueString()
	var err error
	if state == nil {
		_, err = r.client.DryRunCreateEndpoint(ctx, plan.create(routes, guard, rollout))
	} else {
		_, err = r.client.DryRunUpdateEndpoint(ctx, state.ID.ValueString(), plan.patch(routes, guard, rollout))
	}
	what := fmt.Sprintf("endpoint %q", name)
	switch {
	case err == nil:
		tflog.Debug(ctx, "endpoint dry run allowed", map[string]any{"name": name})
	case errors.Is(err, registry.ErrPolicyViolation):
		resp.Diagnostics.AddAttributeError(path.Root("route"), "Stage policy violation",
			fmt.Sprintf("The registry refuses these routes for %s, which serves stage %q:\n\n%s\n\n"+
				"Route only versions that hold stage %q or meet every rule listed above. "+
				"(The registry checked this in a dry run at plan time; nothing was written.)",
				what, plan.Stage.ValueString(), problemMessage(err), plan.Stage.ValueString()))
	case errors.Is(err, registry.ErrPermissionDenied):
		change := "create " + what
		if state != nil {
			change = "change " + what
		}
		var re *registry.Error
		readOnly := errors.As(err, &re) && re.Rule == "scope"
		addNotPermitted(&resp.Diagnostics, path.Root("route"), change, problemMessage(err),
			"a write token without a stage restriction (endpoints decide what every stage serves)", readOnly)
	case errors.Is(err, registry.ErrNotFound):
		// The model or a routed version may be created by this same apply.
		tflog.Debug(ctx, "endpoint dry run skipped: model or version not found yet", map[string]any{"name": name, "error": err.Error()})
	case errors.Is(err, registry.ErrInvalidArgument) && isNotFoundField(err):
		tflog.Debug(ctx, "endpoint dry run skipped: model or version not found yet", map[string]any{"name": name, "error": err.Error()})
	case errors.Is(err, registry.ErrInvalidArgument):
		// The registry's field names the attribute (route[1].share,
		// rollout.prometheus); its rules the provider cannot check alone
		// (a prometheus gate on a registry without Prometheus) end here.
		resp.Diagnostics.AddAttributeError(registryFieldPath(err, path.Root("route")), "Invalid endpoint", registryRuleMessage(err))
	case errors.Is(err, registry.ErrAlreadyExists):
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Endpoint already exists",
			fmt.Sprintf("%s\n\nTo manage the existing endpoint with Terraform, import it: terraform import <address> %s", err, name))
	default:
		resp.Diagnostics.AddAttributeWarning(path.Root("route"), "Endpoint not checked at plan time",
			fmt.Sprintf("The registry's dry run of this change to %s did not answer: %s\n\n"+
				"The registry still checks the routes when the plan is applied; plan again once the registry answers to check them now.", what, err))
	}
}

func (r *endpointResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan endpointResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	routes, guard, rollout, diags := plan.request(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := plan.Name.ValueString()
	// A create puts its weights in force at once: nothing to wait for.
	e, err := r.client.CreateEndpoint(ctx, plan.create(routes, guard, rollout))
	if err != nil {
		if errors.Is(err, registry.ErrAlreadyExists) {
			resp.Diagnostics.AddAttributeError(path.Root("name"), "Endpoint already exists",
				fmt.Sprintf("%s\n\nTo manage the existing endpoint with Terraform, import it: terraform import <address> %s", err, name))
			return
		}
		addAPIError(&resp.Diagnostics, "create", fmt.Sprintf("endpoint %q", name), err)
		return
	}
	tflog.Debug(ctx, "created endpoint", map[string]any{"name": e.Name, "url": e.URL})
	resp.Diagnostics.Append(plan.fromAPI(ctx, e, plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *endpointResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state endpointResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.ID.ValueString()
	e, err := r.client.GetEndpoint(ctx, name)
	if errors.Is(err, registry.ErrNotFound) {
		tflog.Info(ctx, "endpoint not found in the registry, removing it from state", map[string]any{"name": name})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "read", fmt.Sprintf("endpoint %q", name), err)
		return
	}
	if e.Status == registry.EndpointStatusRolledBack {
		tflog.Warn(ctx, "the endpoint's guard rolled traffic back", map[string]any{"name": name, "message": e.StatusMessage})
	}
	resp.Diagnostics.Append(state.fromAPI(ctx, e, state)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *endpointResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan, state endpointResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	routes, guard, rollout, diags := plan.request(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.ID.ValueString()
	var e *registry.Endpoint
	var err error
	if plan.onlyTerraformChanges(ctx, state) {
		// wait_for_rollout lives only in Terraform: nothing to write.
		e, err = r.client.GetEndpoint(ctx, name)
	} else {
		e, err = r.client.UpdateEndpoint(ctx, name, plan.patch(routes, guard, rollout), state.Revision.ValueInt64())
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "update", fmt.Sprintf("endpoint %q", name), err)
		return
	}
	// Only a rollout this apply starts is waited for: one an operator
	// paused earlier is not this apply's to finish.
	if plan.WaitForRollout.ValueBool() && rolloutStarts(ctx, &state, &plan) {
		var werr error
		e, werr = waitForRollout(ctx, r.client, name, e)
		switch {
		case errors.Is(werr, errRolloutFailed):
			// The state written below holds the routes the registry put
			// back, so the next plan shows the rollback as drift.
			resp.Diagnostics.AddAttributeError(path.Root("rollout"), fmt.Sprintf("Rollout of endpoint %q did not complete", name),
				fmt.Sprintf("%s\n\nThe registry put the weights in force before the rollout back. Fix what the gate found and apply again: that starts a new rollout.", strings.TrimPrefix(werr.Error(), errRolloutFailed.Error()+": ")))
		case werr != nil:
			resp.Diagnostics.AddAttributeError(path.Root("rollout"), fmt.Sprintf("Rollout of endpoint %q not finished", name), werr.Error())
		}
	}
	resp.Diagnostics.Append(plan.fromAPI(ctx, e, plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// onlyTerraformChanges: m differs from state only in what the registry
// does not store.
func (m *endpointResourceModel) onlyTerraformChanges(ctx context.Context, state endpointResourceModel) bool {
	return m.Stage.Equal(state.Stage) && m.Route.Equal(state.Route) && m.StickyHeader.Equal(state.StickyHeader) &&
		m.Timeout.Equal(state.Timeout) && attrEquivalent(ctx, m.Guard, state.Guard) && attrEquivalent(ctx, m.Rollout, state.Rollout)
}

func (r *endpointResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state endpointResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.ID.ValueString()
	if err := r.client.DeleteEndpoint(ctx, name, 0); err != nil && !errors.Is(err, registry.ErrNotFound) {
		addAPIError(&resp.Diagnostics, "delete", fmt.Sprintf("endpoint %q", name), err)
	}
}

func (r *endpointResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !registry.NamePattern.MatchString(req.ID) {
		resp.Diagnostics.AddError("Invalid import ID",
			fmt.Sprintf("The import ID of mlregistry_endpoint is the endpoint name, which %s; got %q.", registry.NameRule, req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), req.ID)...)
}

func (m *endpointResourceModel) fromAPI(ctx context.Context, e *registry.Endpoint, prior endpointResourceModel) diag.Diagnostics {
	m.ID = types.StringValue(e.Name)
	m.Name = types.StringValue(e.Name)
	m.Model = types.StringValue(e.Model)
	var diags diag.Diagnostics
	m.Route, diags = routesValue(ctx, e.Routes, prior.Route)
	diags.Append(m.endpointFields.fromAPI(ctx, e, prior.endpointFields)...)
	diags.Append(m.endpointRolloutFields.fromAPI(ctx, e, prior.endpointRolloutFields)...)
	m.WaitForRollout = prior.WaitForRollout
	if m.WaitForRollout.IsNull() || m.WaitForRollout.IsUnknown() {
		m.WaitForRollout = types.BoolValue(false) // after import
	}
	return diags
}

// routesValue is the registry's routes in the registry's order, which is
// the order they were written in. prior (the state or plan, null for a
// data source or an import) keeps a match's prefix = false and a route's
// shadow = false as written, so leaving them out and writing them both
// read back unchanged, and a share as written.
func routesValue(ctx context.Context, routes []registry.Route, prior types.List) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	priorPrefix := map[string]types.Bool{}
	priorRoute := map[string]routeModel{}
	if isKnown(prior) {
		var ps []routeModel
		diags.Append(prior.ElementsAs(ctx, &ps, false)...)
		for _, p := range ps {
			priorRoute[p.Name.ValueString()] = p
			if isKnown(p.Match) {
				var m matchModel
				diags.Append(p.Match.As(ctx, &m, objectAsOptions)...)
				priorPrefix[p.Name.ValueString()] = m.Prefix
			}
		}
	}
	elems := make([]attr.Value, 0, len(routes))
	for _, rt := range routes {
		match := types.ObjectNull(matchAttrTypes)
		if m := rt.Match; m != nil {
			var d diag.Diagnostics
			match, d = types.ObjectValueFrom(ctx, matchAttrTypes, matchModel{
				Header: types.StringValue(m.Header), Value: types.StringValue(m.Value),
				Prefix: boolValue(m.Prefix, priorPrefix[rt.Name]),
			})
			diags.Append(d...)
		}
		p := priorRoute[rt.Name]
		share := types.NumberNull()
		if rt.Share != 0 {
			share = numberValueLike(rt.Share, p.Share)
		}
		obj, d := types.ObjectValueFrom(ctx, routeAttrTypes, routeModel{
			Name: types.StringValue(rt.Name), Version: types.Int64Value(rt.Version),
			UpstreamURL: types.StringValue(rt.UpstreamURL), Weight: types.Int64Value(int64(rt.Weight)),
			Match: match, Shadow: boolValue(rt.Shadow, p.Shadow), Share: share,
		})
		diags.Append(d...)
		elems = append(elems, obj)
	}
	v, d := types.ListValue(routeObjectType, elems)
	diags.Append(d...)
	return v, diags
}

func (f *endpointFields) fromAPI(ctx context.Context, e *registry.Endpoint, prior endpointFields) diag.Diagnostics {
	var diags, d diag.Diagnostics
	f.Stage = stringValue(e.Stage, prior.Stage)
	f.StickyHeader = stringValue(e.StickyHeader, prior.StickyHeader)
	f.Timeout = stringValue(e.Timeout, prior.Timeout)
	f.Guard, d = guardValue(ctx, e.Guard, prior.Guard)
	diags.Append(d...)
	f.URL = types.StringValue(e.URL)
	f.Status = types.StringValue(e.Status)
	f.StatusMessage = types.StringValue(e.StatusMessage)
	f.CreatedAt = timeValue(e.CreatedAt)
	f.UpdatedAt = timeValue(e.UpdatedAt)
	f.Revision = types.Int64Value(e.Revision)
	return diags
}

// warnGuardLoosenings warns about each way the planned guard acts later
// than the current one, or not at all: the diff of a removed guard block
// does not say that the automatic rollback stops.
func warnGuardLoosenings(ctx context.Context, before, after types.Object, diags *diag.Diagnostics) {
	if !fullyKnown(ctx, after) || !fullyKnown(ctx, before) {
		return
	}
	b, d := guardFrom(ctx, before)
	if d.HasError() {
		return
	}
	a, d := guardFrom(ctx, after)
	if d.HasError() {
		return
	}
	for _, l := range registry.GuardLoosenings(b, a) {
		detail := "The gateway then rolls a failing route back later than it does today."
		if l.After == registry.Removed && l.Rule == "guard" {
			detail = "Without a guard the gateway no longer moves traffic away from a failing route."
		}
		diags.AddAttributeWarning(path.Root("guard"), l.String(), detail+" If that is intended, apply it; if not, restore the guard block.")
	}
}

// warnStageUnbinding warns when the plan removes or changes the stage the
// endpoint is bound to: the diff shows one attribute going away, not that
// the registry stops checking the routes against that stage's policy.
func warnStageUnbinding(state, plan *endpointResourceModel, diags *diag.Diagnostics) {
	if state.Stage.IsUnknown() || plan.Stage.IsUnknown() {
		return
	}
	for _, l := range registry.StageBindingLoosenings(state.Stage.ValueString(), plan.Stage.ValueString()) {
		diags.AddAttributeWarning(path.Root("stage"), l.String(),
			fmt.Sprintf("Endpoint %q then serves whatever versions its routes name, including ones the %s stage policy refuses. If that is intended, apply it; if not, restore stage = %q.",
				plan.Name.ValueString(), l.Stage, l.Stage))
	}
}

// create is the create request for m.
func (m *endpointResourceModel) create(routes []registry.Route, guard *registry.Guard, rollout *registry.RolloutSpec) registry.EndpointCreate {
	return registry.EndpointCreate{
		Name: m.Name.ValueString(), Model: m.Model.ValueString(), Stage: m.Stage.ValueString(), Routes: routes,
		StickyHeader: m.StickyHeader.ValueString(), Guard: guard, Timeout: m.Timeout.ValueString(), Rollout: rollout,
	}
}

// patch is the update that makes the endpoint look like m.
func (m *endpointResourceModel) patch(routes []registry.Route, guard *registry.Guard, rollout *registry.RolloutSpec) registry.EndpointPatch {
	stage, sticky, timeout := m.Stage.ValueString(), m.StickyHeader.ValueString(), m.Timeout.ValueString()
	return registry.EndpointPatch{
		Stage: &stage, Routes: &routes, StickyHeader: &sticky, Guard: guard, ClearGuard: guard == nil, Timeout: &timeout,
		Rollout: rollout, ClearRollout: rollout == nil,
	}
}

// request converts m's routes, guard and rollout to the registry's types.
func (m *endpointResourceModel) request(ctx context.Context) ([]registry.Route, *registry.Guard, *registry.RolloutSpec, diag.Diagnostics) {
	routes, diags := routesFrom(ctx, m.Route)
	guard, d := guardFrom(ctx, m.Guard)
	diags.Append(d...)
	rollout, d := rolloutSpecFrom(ctx, m.Rollout)
	diags.Append(d...)
	return routes, guard, rollout, diags
}

// fullyKnown: v and everything inside it is known.
func fullyKnown(ctx context.Context, v attr.Value) bool {
	tv, err := v.ToTerraformValue(ctx)
	return err == nil && tv.IsFullyKnown()
}

// isNotFoundField: the registry's invalid_argument for a model or version
// that does not exist (yet), rule "exists".
func isNotFoundField(err error) bool {
	var e *registry.Error
	return asRegistryError(err, &e) && e.Rule == "exists"
}

func guardValue(ctx context.Context, g *registry.Guard, prior types.Object) (types.Object, diag.Diagnostics) {
	if g == nil {
		return types.ObjectNull(guardAttrTypes), nil
	}
	var p guardModel
	var diags diag.Diagnostics
	if isKnown(prior) {
		diags.Append(prior.As(ctx, &p, objectAsOptions)...)
	}
	live := types.ObjectNull(guardLiveMetricAttrTypes)
	if lm := g.LiveMetric; lm != nil {
		var pl guardLiveMetricModel
		if isKnown(p.LiveMetric) {
			diags.Append(p.LiveMetric.As(ctx, &pl, objectAsOptions)...)
		}
		var d diag.Diagnostics
		live, d = types.ObjectValueFrom(ctx, guardLiveMetricAttrTypes, guardLiveMetricModel{
			Metric:   types.StringValue(lm.Metric),
			Floor:    numberValueLike(lm.Floor, pl.Floor),
			MinCount: types.Int64Value(lm.MinCount),
			Window:   durationValue(lm.Window, pl.Window),
		})
		diags.Append(d...)
	}
	v, d := types.ObjectValueFrom(ctx, guardAttrTypes, guardModel{
		MaxErrorRate: numberValueLike(g.MaxErrorRate, p.MaxErrorRate),
		MinRequests:  types.Int64Value(g.MinRequests),
		Window:       durationValue(g.Window, p.Window),
		LiveMetric:   live,
	})
	diags.Append(d...)
	return v, diags
}

func routesFrom(ctx context.Context, l types.List) ([]registry.Route, diag.Diagnostics) {
	var rs []routeModel
	diags := l.ElementsAs(ctx, &rs, false)
	out := make([]registry.Route, 0, len(rs))
	for _, rt := range rs {
		r := registry.Route{
			Name: rt.Name.ValueString(), Version: rt.Version.ValueInt64(),
			UpstreamURL: rt.UpstreamURL.ValueString(), Weight: int(rt.Weight.ValueInt64()),
		}
		if isKnown(rt.Match) {
			var m matchModel
			diags.Append(rt.Match.As(ctx, &m, objectAsOptions)...)
			r.Match = &registry.RouteMatch{Header: m.Header.ValueString(), Value: m.Value.ValueString(), Prefix: m.Prefix.ValueBool()}
		}
		r.Shadow = rt.Shadow.ValueBool()
		if isKnown(rt.Share) {
			r.Share = numberFloat64Of(rt.Share)
		}
		out = append(out, r)
	}
	return out, diags
}

func guardFrom(ctx context.Context, o types.Object) (*registry.Guard, diag.Diagnostics) {
	if !isKnown(o) {
		return nil, nil
	}
	var g guardModel
	diags := o.As(ctx, &g, objectAsOptions)
	out := &registry.Guard{
		MaxErrorRate: numberFloat64Of(g.MaxErrorRate),
		MinRequests:  g.MinRequests.ValueInt64(),
		Window:       g.Window.ValueString(),
	}
	if isKnown(g.LiveMetric) {
		var m guardLiveMetricModel
		diags.Append(g.LiveMetric.As(ctx, &m, objectAsOptions)...)
		out.LiveMetric = guardLiveMetricFrom(m)
	}
	return out, diags
}

func guardLiveMetricFrom(m guardLiveMetricModel) *registry.GuardLiveMetric {
	out := &registry.GuardLiveMetric{Metric: m.Metric.ValueString(), MinCount: m.MinCount.ValueInt64(), Window: m.Window.ValueString()}
	if isKnown(m.Floor) {
		out.Floor = numberFloat64Of(m.Floor)
	}
	return out
}
