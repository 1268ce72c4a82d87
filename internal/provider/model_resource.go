package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var (
	_ resource.Resource                   = (*modelResource)(nil)
	_ resource.ResourceWithConfigure      = (*modelResource)(nil)
	_ resource.ResourceWithImportState    = (*modelResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*modelResource)(nil)
	_ resource.ResourceWithValidateConfig = (*modelResource)(nil)
	_ resource.ResourceWithUpgradeState   = (*modelResource)(nil)
)

// NewModelResource is the mlregistry_model resource.
func NewModelResource() resource.Resource { return &modelResource{} }

type modelResource struct {
	client *client.Client
}

type modelResourceModel struct {
	ID           types.String `tfsdk:"id"`
	Name         types.String `tfsdk:"name"`
	Description  types.String `tfsdk:"description"`
	Owner        types.String `tfsdk:"owner"`
	Tags         types.Map    `tfsdk:"tags"`
	StagePolicy  types.Set    `tfsdk:"stage_policy"`
	ForceDestroy types.Bool   `tfsdk:"force_destroy"`
	CreatedAt    types.String `tfsdk:"created_at"`
	UpdatedAt    types.String `tfsdk:"updated_at"`
	Revision     types.Int64  `tfsdk:"revision"`
}

// stagePolicyModel is one stage_policy block.
type stagePolicyModel struct {
	Stage                 types.String `tfsdk:"stage"`
	RequireStage          types.String `tfsdk:"require_stage"`
	MinSoak               types.String `tfsdk:"min_soak"`
	MinMetrics            types.Map    `tfsdk:"min_metrics"`
	MaxMetrics            types.Map    `tfsdk:"max_metrics"`
	RequireSignatureMatch types.Bool   `tfsdk:"require_signature_match"`
	MinLiveMetrics        types.Map    `tfsdk:"min_live_metrics"`
	MinLiveCount          types.Int64  `tfsdk:"min_live_count"`
}

var stagePolicyAttrTypes = map[string]attr.Type{
	"stage":                   types.StringType,
	"require_stage":           types.StringType,
	"min_soak":                types.StringType,
	"min_metrics":             types.MapType{ElemType: types.NumberType},
	"max_metrics":             types.MapType{ElemType: types.NumberType},
	"require_signature_match": types.BoolType,
	"min_live_metrics":        types.MapType{ElemType: types.NumberType},
	"min_live_count":          types.Int64Type,
}

var stagePolicyObjectType = types.ObjectType{AttrTypes: stagePolicyAttrTypes}

func (r *modelResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_model"
}

func (r *modelResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		// Version 1: stage_policies (a map attribute, in which Terraform
		// drops misspelt keys) became stage_policy blocks.
		Version: 1,
		MarkdownDescription: "A registered model: the named container of model versions, with an owner, tags and the stage policies " +
			"(rules a version must satisfy before it may be assigned to a stage) that the registry enforces on every promotion.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The model's name.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: describe("Name of the model, unique in the registry. Changing it replaces the model.", registry.NameRule),
				Required:            true,
				Validators:          []validator.String{nameValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Free-form description (at most %d bytes).", registry.MaxDescriptionLen),
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthAtMost(registry.MaxDescriptionLen)},
			},
			"owner": schema.StringAttribute{
				MarkdownDescription: "Team or person that owns the model (at most 256 bytes).",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthAtMost(256)},
			},
			"tags": schema.MapAttribute{
				MarkdownDescription: fmt.Sprintf("Key/value tags (at most %d).", registry.MaxTags),
				ElementType:         types.StringType,
				Optional:            true,
				Validators:          []validator.Map{mapvalidator.SizeAtMost(registry.MaxTags)},
			},
			"force_destroy": schema.BoolAttribute{
				MarkdownDescription: "Destroy the model even when it still has versions, deleting them and their stage assignments too (needs an `admin` token). " +
					"Only Terraform reads this; it is not stored in the registry. Defaults to `false`.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the model was registered (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"updated_at": schema.StringAttribute{
				MarkdownDescription: "When the model was last changed (RFC 3339).",
				Computed:            true,
			},
			"revision": schema.Int64Attribute{
				MarkdownDescription: "The model's revision (its ETag). Updates send it as `If-Match`, so a change made outside Terraform after the plan makes the apply fail instead of being overwritten.",
				Computed:            true,
			},
		},
		Blocks: map[string]schema.Block{
			"stage_policy": schema.SetNestedBlock{
				MarkdownDescription: "Rules a version must satisfy before it may be assigned to `stage`; one block per stage. " +
					"The registry checks them on every assignment, and `mlregistry_stage_assignment` checks them at plan time. A flagged version can never be assigned. " +
					"A plan that loosens a policy (a rule removed, a floor lowered, a ceiling raised, a soak shortened, `require_signature_match` dropped, `min_live_count` lowered, a whole block removed) " +
					"shows a warning naming the stage and the rule.",
				PlanModifiers: []planmodifier.Set{keepEquivalentPolicies{}},
				NestedObject: schema.NestedBlockObject{
					Attributes: map[string]schema.Attribute{
						"stage": schema.StringAttribute{
							MarkdownDescription: describe("The stage the rules guard, e.g. `production`; one block per stage.", registry.StageRule),
							Required:            true,
							Validators:          []validator.String{stageValidator()},
						},
						"require_stage": schema.StringAttribute{
							MarkdownDescription: "A stage the version must hold now or have held before, e.g. `staging` for `production`.",
							Optional:            true,
							Validators:          []validator.String{stageValidator()},
						},
						"min_soak": schema.StringAttribute{
							MarkdownDescription: "How long the version must have held `require_stage` (its longest uninterrupted hold), as a duration such as `24h`. Needs `require_stage`.",
							Optional:            true,
							Validators: []validator.String{
								durationValidator{},
								stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("require_stage")),
							},
						},
						"min_metrics": schema.MapAttribute{
							MarkdownDescription: "Each named metric must be present on the version and at least this value, e.g. `{ auc = 0.85 }`. " + numbersNote,
							ElementType:         types.NumberType,
							Optional:            true,
							Validators:          []validator.Map{numberRange{}},
						},
						"max_metrics": schema.MapAttribute{
							MarkdownDescription: "Each named metric must be present on the version and at most this value, e.g. `{ latency_p99_ms = 50 }`. " + numbersNote,
							ElementType:         types.NumberType,
							Optional:            true,
							Validators:          []validator.Map{numberRange{}},
						},
						"require_signature_match": schema.BoolAttribute{
							MarkdownDescription: "The version's signature must equal the signature of the version holding the stage now (if any).",
							Optional:            true,
						},
						"min_live_metrics": schema.MapAttribute{
							MarkdownDescription: fmt.Sprintf("Floor of the mean of each named live metric, e.g. `{ correct = 0.9 }`: judged over the **trusted** feedback "+
								"(sent by write or admin tokens, never serve tokens) of the last %s, from every endpoint serving the version. "+
								"Names match `%s`, the names feedback carries. ", registry.FormatWindow(registry.PolicyLiveWindow), registry.LiveMetricNamePattern) + numbersNote,
							ElementType: types.NumberType,
							Optional:    true,
							Validators: []validator.Map{
								numberRange{},
								mapvalidator.KeysAre(stringvalidator.RegexMatches(regexp.MustCompile(registry.LiveMetricNamePattern), "must be a live metric name")),
								mapvalidator.SizeAtMost(registry.MaxLiveMetricNames),
							},
						},
						"min_live_count": schema.Int64Attribute{
							MarkdownDescription: fmt.Sprintf("Fewest trusted feedback values per metric that `min_live_metrics` judges; below it the version is refused. "+
								"Unset means %d. Needs `min_live_metrics`.", registry.DefaultMinLiveCount),
							Optional: true,
							Validators: []validator.Int64{
								int64validator.Between(1, registry.MaxMinLiveCount),
								int64validator.AlsoRequires(path.MatchRelative().AtParent().AtName("min_live_metrics")),
							},
						},
					},
				},
			},
		},
	}
}

func (r *modelResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = providerClient(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig refuses two stage_policy blocks for one stage: the
// registry keeps one policy per stage, so one of them would be dropped.
func (r *modelResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var set types.Set
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("stage_policy"), &set)...)
	if !isKnown(set) {
		return
	}
	var blocks []stagePolicyModel
	resp.Diagnostics.Append(set.ElementsAs(ctx, &blocks, false)...)
	seen := map[string]bool{}
	for _, b := range blocks {
		if !isKnown(b.Stage) {
			continue
		}
		stage := b.Stage.ValueString()
		if seen[stage] {
			resp.Diagnostics.AddAttributeError(path.Root("stage_policy"), "Duplicate stage policy",
				fmt.Sprintf("stage_policy: two blocks have stage = %q. Write one stage_policy block per stage, with every rule for that stage in it.", stage))
		}
		seen[stage] = true
	}
}

// ModifyPlan plans no update when nothing changes but the spelling of a
// number, and warns about every change that loosens a stage policy: in a
// diff, a removed floor looks like any other edit.
func (r *modelResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	planStateWhenUnchanged(ctx, req, resp)
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() {
		return
	}
	var plan, state modelResourceModel
	resp.Diagnostics.Append(resp.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || !plan.Name.Equal(state.Name) || !fullyKnown(ctx, plan.StagePolicy) {
		return
	}
	before, d := stagePoliciesFrom(ctx, state.StagePolicy)
	if d.HasError() {
		return
	}
	after, d := stagePoliciesFrom(ctx, plan.StagePolicy)
	if d.HasError() {
		return
	}
	for _, l := range registry.PolicyLoosenings(before, after) {
		resp.Diagnostics.AddAttributeWarning(path.Root("stage_policy"), l.String(),
			fmt.Sprintf("This plan lets versions into stage %q that its policy refuses today (%s: %s -> %s). "+
				"If that is intended, apply it; if not, restore the rule in the stage_policy block for %q.", l.Stage, l.Rule, l.Before, l.After, l.Stage))
	}
}

func (r *modelResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan modelResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in := registry.ModelCreate{
		Name:        plan.Name.ValueString(),
		Description: plan.Description.ValueString(),
		Owner:       plan.Owner.ValueString(),
	}
	var diags diag.Diagnostics
	in.Tags, diags = stringMapFrom(ctx, plan.Tags)
	resp.Diagnostics.Append(diags...)
	in.StagePolicies, diags = stagePoliciesFrom(ctx, plan.StagePolicy)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	m, err := r.client.CreateModel(ctx, in)
	if err != nil {
		what := fmt.Sprintf("model %q", in.Name)
		if errors.Is(err, registry.ErrAlreadyExists) {
			resp.Diagnostics.AddAttributeError(path.Root("name"), "Model already exists",
				fmt.Sprintf("%s\n\nTo manage the existing model with Terraform, import it: terraform import <address> %s", err, in.Name))
			return
		}
		addAPIError(&resp.Diagnostics, "create", what, err)
		return
	}
	tflog.Debug(ctx, "created model", map[string]any{"name": m.Name, "revision": m.Revision})
	resp.Diagnostics.Append(plan.fromAPI(ctx, m, plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *modelResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state modelResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.ID.ValueString()
	m, err := r.client.GetModel(ctx, name)
	if errors.Is(err, registry.ErrNotFound) {
		tflog.Info(ctx, "model not found in the registry, removing it from state", map[string]any{"name": name})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "read", fmt.Sprintf("model %q", name), err)
		return
	}
	resp.Diagnostics.Append(state.fromAPI(ctx, m, state)...)
	if state.ForceDestroy.IsNull() {
		state.ForceDestroy = types.BoolValue(false) // after import
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *modelResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan, state modelResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.ID.ValueString()

	// force_destroy lives only in Terraform: a change of it alone needs no
	// call, and the server's fields stay as they are.
	if plan.Description.Equal(state.Description) && plan.Owner.Equal(state.Owner) &&
		plan.Tags.Equal(state.Tags) && plan.StagePolicy.Equal(state.StagePolicy) {
		state.ForceDestroy = plan.ForceDestroy
		resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
		return
	}

	desc, owner := plan.Description.ValueString(), plan.Owner.ValueString()
	tags, diags := stringMapFrom(ctx, plan.Tags)
	resp.Diagnostics.Append(diags...)
	policies, diags := stagePoliciesFrom(ctx, plan.StagePolicy)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if policies == nil {
		policies = map[string]registry.StagePolicy{}
	}
	patch := registry.ModelPatch{Description: &desc, Owner: &owner, Tags: &tags, StagePolicies: &policies}
	m, err := r.client.UpdateModel(ctx, name, patch, state.Revision.ValueInt64())
	if err != nil {
		addAPIError(&resp.Diagnostics, "update", fmt.Sprintf("model %q", name), err)
		return
	}
	resp.Diagnostics.Append(plan.fromAPI(ctx, m, plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *modelResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state modelResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.ID.ValueString()
	err := r.client.DeleteModel(ctx, name, state.ForceDestroy.ValueBool(), 0)
	switch {
	case err == nil, errors.Is(err, registry.ErrNotFound):
		return
	case errors.Is(err, registry.ErrConflict) && !state.ForceDestroy.ValueBool():
		resp.Diagnostics.AddError(fmt.Sprintf("Model %q is still in use", name),
			fmt.Sprintf("%s\n\nDestroy its versions (and endpoints) first, or set force_destroy = true (and apply) to delete its versions with the model.", err))
	default:
		addAPIError(&resp.Diagnostics, "delete", fmt.Sprintf("model %q", name), err)
	}
}

func (r *modelResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !registry.NamePattern.MatchString(req.ID) {
		resp.Diagnostics.AddError("Invalid import ID",
			fmt.Sprintf("The import ID of mlregistry_model is the model name, which %s; got %q.", registry.NameRule, req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("force_destroy"), false)...)
}

// fromAPI writes the registry's answer into m; prior is what Terraform
// had (plan or state) and decides null versus empty.
func (m *modelResourceModel) fromAPI(ctx context.Context, in *registry.Model, prior modelResourceModel) diag.Diagnostics {
	var diags, d diag.Diagnostics
	m.ID = types.StringValue(in.Name)
	m.Name = types.StringValue(in.Name)
	m.Description = stringValue(in.Description, prior.Description)
	m.Owner = stringValue(in.Owner, prior.Owner)
	m.Tags, d = stringMapValue(ctx, in.Tags, prior.Tags)
	diags.Append(d...)
	m.StagePolicy, d = stagePoliciesValue(ctx, in.StagePolicies, prior.StagePolicy)
	diags.Append(d...)
	m.CreatedAt = timeValue(in.CreatedAt)
	m.UpdatedAt = timeValue(in.UpdatedAt)
	m.Revision = types.Int64Value(in.Revision)
	return diags
}

// stagePoliciesFrom converts the stage_policy blocks to the API's map;
// no blocks (or a null set) is an empty map.
func stagePoliciesFrom(ctx context.Context, v types.Set) (map[string]registry.StagePolicy, diag.Diagnostics) {
	if !isKnown(v) {
		return nil, nil
	}
	var models []stagePolicyModel
	diags := v.ElementsAs(ctx, &models, false)
	if diags.HasError() {
		return nil, diags
	}
	out := make(map[string]registry.StagePolicy, len(models))
	for _, pm := range models {
		p := registry.StagePolicy{
			RequireStage:          pm.RequireStage.ValueString(),
			MinSoak:               pm.MinSoak.ValueString(),
			RequireSignatureMatch: pm.RequireSignatureMatch.ValueBool(),
		}
		var d diag.Diagnostics
		if isKnown(pm.MinMetrics) {
			p.MinMetrics, d = float64MapFrom(ctx, pm.MinMetrics)
			diags.Append(d...)
		}
		if isKnown(pm.MaxMetrics) {
			p.MaxMetrics, d = float64MapFrom(ctx, pm.MaxMetrics)
			diags.Append(d...)
		}
		if isKnown(pm.MinLiveMetrics) {
			p.MinLiveMetrics, d = float64MapFrom(ctx, pm.MinLiveMetrics)
			diags.Append(d...)
		}
		p.MinLiveCount = pm.MinLiveCount.ValueInt64()
		out[pm.Stage.ValueString()] = p
	}
	return out, diags
}

// stagePoliciesValue converts the API's policies to stage_policy blocks,
// always a known set (no blocks is an empty set, which is what Terraform
// reads from a configuration without them). Each block keeps null versus
// empty per field, the numbers and the min_soak spelling of the prior
// block for the same stage.
func stagePoliciesValue(ctx context.Context, in map[string]registry.StagePolicy, prior types.Set) (types.Set, diag.Diagnostics) {
	priorModels := map[string]stagePolicyModel{}
	var diags diag.Diagnostics
	if isKnown(prior) {
		var pms []stagePolicyModel
		diags.Append(prior.ElementsAs(ctx, &pms, false)...)
		for _, pm := range pms {
			priorModels[pm.Stage.ValueString()] = pm
		}
	}
	out := make([]attr.Value, 0, len(in))
	for _, stage := range sortedKeys(in) {
		p, pp := in[stage], priorModels[stage]
		var d diag.Diagnostics
		pm := stagePolicyModel{
			Stage:                 types.StringValue(stage),
			RequireStage:          stringValue(p.RequireStage, pp.RequireStage),
			MinSoak:               durationValue(p.MinSoak, pp.MinSoak),
			RequireSignatureMatch: boolValue(p.RequireSignatureMatch, pp.RequireSignatureMatch),
		}
		pm.MinMetrics, d = float64MapValue(ctx, p.MinMetrics, pp.MinMetrics)
		diags.Append(d...)
		pm.MaxMetrics, d = float64MapValue(ctx, p.MaxMetrics, pp.MaxMetrics)
		diags.Append(d...)
		pm.MinLiveMetrics, d = float64MapValue(ctx, p.MinLiveMetrics, pp.MinLiveMetrics)
		diags.Append(d...)
		pm.MinLiveCount = types.Int64Null()
		if p.MinLiveCount > 0 {
			pm.MinLiveCount = types.Int64Value(p.MinLiveCount)
		}
		obj, d := types.ObjectValueFrom(ctx, stagePolicyAttrTypes, pm)
		diags.Append(d...)
		out = append(out, obj)
	}
	v, d := types.SetValue(stagePolicyObjectType, out)
	diags.Append(d...)
	return v, diags
}

// keepEquivalentPolicies plans the prior stage_policy blocks when the
// configuration means the same policies: numbers with the same 64-bit
// float, the same min_soak in another spelling, null and empty alike. In
// a set, a block whose number is spelt differently is another element,
// so without this such a block would show as removed and added.
type keepEquivalentPolicies struct{}

var _ planmodifier.Set = keepEquivalentPolicies{}

func (keepEquivalentPolicies) Description(context.Context) string {
	return "Policies that mean the same (numbers with the same 64-bit float, durations of the same length, null and empty alike) are not a change."
}

func (m keepEquivalentPolicies) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (keepEquivalentPolicies) PlanModifySet(ctx context.Context, req planmodifier.SetRequest, resp *planmodifier.SetResponse) {
	if req.State.Raw.IsNull() || !isKnown(req.StateValue) || !fullyKnown(ctx, req.ConfigValue) {
		return
	}
	cfg, d := stagePoliciesFrom(ctx, req.ConfigValue)
	if d.HasError() || len(cfg) != len(req.ConfigValue.Elements()) {
		return
	}
	st, d := stagePoliciesFrom(ctx, req.StateValue)
	if d.HasError() || !policiesEquivalent(cfg, st) {
		return
	}
	resp.PlanValue = req.StateValue
}

func policiesEquivalent(a, b map[string]registry.StagePolicy) bool {
	if len(a) != len(b) {
		return false
	}
	for stage, pa := range a {
		pb, ok := b[stage]
		if !ok || pa.RequireStage != pb.RequireStage || pa.RequireSignatureMatch != pb.RequireSignatureMatch ||
			!maps.Equal(pa.MinMetrics, pb.MinMetrics) || !maps.Equal(pa.MaxMetrics, pb.MaxMetrics) || !sameDuration(pa.MinSoak, pb.MinSoak) ||
			!maps.Equal(pa.MinLiveMetrics, pb.MinLiveMetrics) || pa.MinLiveCount != pb.MinLiveCount {
			return false
		}
	}
	return true
}

// sameDuration: equal text, or two durations of the same length.
func sameDuration(a, b string) bool {
	if a == b {
		return true
	}
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}

// durationValue keeps the duration as the configuration wrote it ("1440m")
// when the registry answers the same duration in another spelling.
func durationValue(s string, prior types.String) types.String {
	if isKnown(prior) && s != "" {
		a, errA := time.ParseDuration(s)
		b, errB := time.ParseDuration(prior.ValueString())
		if errA == nil && errB == nil && a == b {
			return prior
		}
	}
	return stringValue(s, prior)
}
