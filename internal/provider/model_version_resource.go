package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var (
	_ resource.Resource                   = (*modelVersionResource)(nil)
	_ resource.ResourceWithConfigure      = (*modelVersionResource)(nil)
	_ resource.ResourceWithImportState    = (*modelVersionResource)(nil)
	_ resource.ResourceWithValidateConfig = (*modelVersionResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*modelVersionResource)(nil)
	_ resource.ResourceWithUpgradeState   = (*modelVersionResource)(nil)
)

// NewModelVersionResource is the mlregistry_model_version resource.
func NewModelVersionResource() resource.Resource { return &modelVersionResource{} }

type modelVersionResource struct {
	client  *client.Client
	adopted *adoptedVersions
}

type modelVersionResourceModel struct {
	ID    types.String `tfsdk:"id"`
	Model types.String `tfsdk:"model"`
	// Signature is the signature block (input and output blocks); the
	// data sources' signature attribute has inputs and outputs lists.
	Signature types.Object `tfsdk:"signature"`
	versionCommon
}

// versionFields are the attributes of a version the data sources read.
type versionFields struct {
	versionCommon
	Signature types.Object `tfsdk:"signature"`
}

// versionCommon are the attributes of a version, shared by the resource
// and the data sources.
type versionCommon struct {
	Version     types.Int64  `tfsdk:"version"`
	Source      types.String `tfsdk:"source"`
	Checksum    types.String `tfsdk:"checksum"`
	Format      types.String `tfsdk:"format"`
	Parameters  types.Map    `tfsdk:"parameters"`
	Metrics     types.Map    `tfsdk:"metrics"`
	Lineage     types.Object `tfsdk:"lineage"`
	Description types.String `tfsdk:"description"`
	Tags        types.Map    `tfsdk:"tags"`
	Flagged     types.Bool   `tfsdk:"flagged"`
	FlagReason  types.String `tfsdk:"flag_reason"`
	Stages      types.List   `tfsdk:"stages"`
	CreatedAt   types.String `tfsdk:"created_at"`
	CreatedBy   types.String `tfsdk:"created_by"`
	UpdatedAt   types.String `tfsdk:"updated_at"`
	Revision    types.Int64  `tfsdk:"revision"`
}

type lineageModel struct {
	RunID     types.String `tfsdk:"run_id"`
	GitCommit types.String `tfsdk:"git_commit"`
	Dataset   types.String `tfsdk:"dataset"`
	CodeURI   types.String `tfsdk:"code_uri"`
}

type signatureModel struct {
	Inputs  types.List `tfsdk:"inputs"`
	Outputs types.List `tfsdk:"outputs"`
}

// signatureBlockModel is the resource's signature block.
type signatureBlockModel struct {
	Input  types.List `tfsdk:"input"`
	Output types.List `tfsdk:"output"`
}

type tensorModel struct {
	Name  types.String `tfsdk:"name"`
	DType types.String `tfsdk:"dtype"`
	Shape types.List   `tfsdk:"shape"`
}

var (
	lineageAttrTypes = map[string]attr.Type{
		"run_id": types.StringType, "git_commit": types.StringType, "dataset": types.StringType, "code_uri": types.StringType,
	}
	tensorAttrTypes = map[string]attr.Type{
		"name": types.StringType, "dtype": types.StringType, "shape": types.ListType{ElemType: types.Int64Type},
	}
	tensorObjectType   = types.ObjectType{AttrTypes: tensorAttrTypes}
	signatureAttrTypes = map[string]attr.Type{
		"inputs": types.ListType{ElemType: tensorObjectType}, "outputs": types.ListType{ElemType: tensorObjectType},
	}
	signatureBlockAttrTypes = map[string]attr.Type{
		"input": types.ListType{ElemType: tensorObjectType}, "output": types.ListType{ElemType: tensorObjectType},
	}
)

func (r *modelVersionResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_model_version"
}

func (r *modelVersionResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := "Changing it registers a new version (the artifact identity of a version never changes)."
	resp.Schema = schema.Schema{
		// Version 1: the lineage and signature attributes (in which
		// Terraform drops misspelt keys) became blocks.
		Version: 1,
		MarkdownDescription: "A version of a registered model: one immutable artifact (source, checksum, format, parameters, metrics, lineage, signature) " +
			"whose number the registry assigns. Changing any artifact field registers a new version and deletes the old one; " +
			"`description`, `tags` and the flag change in place. Recorded metrics are artifact fields too (a stage policy judged the version on them); " +
			"adding a metric is an update. The registry refuses to delete a version that holds a stage or receives traffic, so declare versions with " +
			"`lifecycle { create_before_destroy = true }`: a replacement is then registered first, the stage assignments and routes that refer to its `version` follow it, " +
			"and the old version is deleted last (the plan warns when such a version is replaced, since the provider cannot see the lifecycle block). A flagged version cannot be assigned to a stage and is skipped by \"latest\" look-ups.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "`<model>/<version>`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"model": schema.StringAttribute{
				MarkdownDescription: "Name of the registered model. Changing it replaces the version.",
				Required:            true,
				Validators:          []validator.String{nameValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "The version number the registry assigned: per model, strictly increasing, never reused.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
			"source": schema.StringAttribute{
				MarkdownDescription: "URI of the artifact, e.g. `s3://models/churn/7/model.onnx` (s3, gs, https, file, ...). " + replace,
				Required:            true,
				Validators:          []validator.String{sourceValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"checksum": schema.StringAttribute{
				MarkdownDescription: describe("Checksum of the artifact, e.g. `sha256:${filesha256(\"model.onnx\")}`; two live versions of a model cannot share one. "+replace, registry.ChecksumRule),
				Required:            true,
				Validators:          []validator.String{checksumValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"format": schema.StringAttribute{
				MarkdownDescription: "Artifact format, one of `" + strings.Join(registry.Formats, "`, `") + "`. " + replace,
				Required:            true,
				Validators:          []validator.String{formatValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"parameters": schema.MapAttribute{
				MarkdownDescription: "Training parameters (string values). " + replace + " " + emptyNote,
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Validators:          []validator.Map{mapvalidator.SizeAtMost(registry.MaxMapEntries)},
				PlanModifiers:       []planmodifier.Map{keepEquivalentState{}, requiresReplaceUnlessEquivalentMap()},
			},
			"metrics": schema.MapAttribute{
				MarkdownDescription: "Evaluation metrics (numbers), e.g. `{ auc = 0.91 }`; stage policies and best-metric look-ups read them. " + numbersNote + " " +
					"Adding a metric updates the version in place (an evaluation that finished after registration; a stage policy that refused the version for lack of it then sees it); " +
					"changing or removing a metric the version has registers a new version, since a recorded metric never changes: a stage policy judged the version on it. " + emptyNote,
				ElementType:   types.NumberType,
				Optional:      true,
				Computed:      true,
				Validators:    []validator.Map{mapvalidator.SizeAtMost(registry.MaxMapEntries), numberRange{}},
				PlanModifiers: []planmodifier.Map{keepEquivalentState{}, metricsRequireReplace()},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Free-form description (at most %d bytes). Changes in place.", registry.MaxDescriptionLen),
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthAtMost(registry.MaxDescriptionLen)},
			},
			"tags": schema.MapAttribute{
				MarkdownDescription: fmt.Sprintf("Key/value tags (at most %d). Change in place. ", registry.MaxTags) + emptyNote,
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Validators:          []validator.Map{mapvalidator.SizeAtMost(registry.MaxTags)},
				PlanModifiers:       []planmodifier.Map{keepEquivalentState{}},
			},
			"flagged": schema.BoolAttribute{
				MarkdownDescription: "Marks the version as bad: it cannot be assigned to a stage and \"latest\"/\"best\" look-ups skip it. Stages it holds already keep it. Defaults to `false`. Changes in place.",
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
			},
			"flag_reason": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Why the version is flagged (at most %d bytes); only with `flagged = true`. Changes in place.", registry.MaxReasonLen),
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthAtMost(registry.MaxReasonLen)},
			},
			"stages": schema.ListAttribute{
				MarkdownDescription: "Stages that point at this version now, sorted. Promotions change it, so it is read from the registry on every refresh; an update of the version (description, tags, flag) never changes it.",
				ElementType:         types.StringType,
				Computed:            true,
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the version was registered (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"created_by": schema.StringAttribute{
				MarkdownDescription: "Name of the token that registered the version.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"updated_at": schema.StringAttribute{
				MarkdownDescription: "When the version was last changed (RFC 3339).",
				Computed:            true,
			},
			"revision": schema.Int64Attribute{
				MarkdownDescription: "The version's revision (its ETag), sent as `If-Match` on updates.",
				Computed:            true,
			},
		},
		Blocks: map[string]schema.Block{
			"lineage": schema.SingleNestedBlock{
				MarkdownDescription: "Where the version came from. " + replace,
				PlanModifiers:       []planmodifier.Object{requiresReplaceUnlessEquivalentObject()},
				Attributes: map[string]schema.Attribute{
					"run_id":     schema.StringAttribute{MarkdownDescription: "Training run ID.", Optional: true},
					"git_commit": schema.StringAttribute{MarkdownDescription: "Commit of the training code.", Optional: true},
					"dataset":    schema.StringAttribute{MarkdownDescription: "Dataset name or URI.", Optional: true},
					"code_uri":   schema.StringAttribute{MarkdownDescription: "URI of the training code.", Optional: true},
				},
			},
			"signature": schema.SingleNestedBlock{
				MarkdownDescription: "The version's input/output contract: one `input` block per input and one `output` block per output, in order; " +
					"a stage policy with `require_signature_match` compares it. " + replace,
				PlanModifiers: []planmodifier.Object{requiresReplaceUnlessEquivalentObject()},
				Blocks: map[string]schema.Block{
					"input":  tensorListBlock("input"),
					"output": tensorListBlock("output"),
				},
			},
		},
	}
}

func (r *modelVersionResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = providerClient(req.ProviderData, &resp.Diagnostics)
	if rd, ok := req.ProviderData.(*resourceData); ok {
		r.adopted = rd.adopted
	}
}

// ValidateConfig checks the rules that span attributes: flag_reason needs
// flagged, and tensor names are unique within inputs and outputs.
func (r *modelVersionResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var flagged types.Bool
	var reason types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("flagged"), &flagged)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("flag_reason"), &reason)...)
	if flagged.IsUnknown() || reason.IsUnknown() {
		return
	}
	if reason.ValueString() != "" && !flagged.ValueBool() {
		resp.Diagnostics.AddAttributeError(path.Root("flag_reason"), "flag_reason without flagged",
			"flag_reason may only be set when flagged is true.")
	}
	var sig types.Object
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("signature"), &sig)...)
	if isKnown(sig) {
		var s signatureBlockModel
		resp.Diagnostics.Append(sig.As(ctx, &s, objectAsOptions)...)
		for name, l := range map[string]types.List{"input": s.Input, "output": s.Output} {
			validateTensorNames(ctx, path.Root("signature").AtName(name), l, &resp.Diagnostics)
		}
	}
}

// ModifyPlan plans no update when nothing changes but the spelling of a
// number or of an empty value, and warns when the plan replaces a version
// the registry will refuse to delete.
func (r *modelVersionResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	planStateWhenUnchanged(ctx, req, resp)
	r.warnReplacingVersionInUse(ctx, req, resp)
}

// warnReplacingVersionInUse warns when the plan replaces a version that
// holds a stage or that an endpoint routes to. Without
// create_before_destroy Terraform deletes the old version first, which the
// registry refuses, so the apply fails half way. The provider cannot see
// the lifecycle block, so this is a warning; a reviewer (or plan-summary,
// which reads the action order) tells the two cases apart. The endpoints
// are asked for only when a replacement is planned, so an ordinary plan
// costs no request.
func (r *modelVersionResource) warnReplacingVersionInUse(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || resp.Plan.Raw.IsNull() {
		return
	}
	var plan, state modelVersionResourceModel
	if resp.Plan.Get(ctx, &plan).HasError() || req.State.Get(ctx, &state).HasError() {
		return
	}
	changed := replacedBy(ctx, plan, state)
	if len(changed) == 0 {
		return
	}
	model, version := state.Model.ValueString(), state.Version.ValueInt64()
	var uses []string
	var stages []string
	if isKnown(state.Stages) {
		resp.Diagnostics.Append(state.Stages.ElementsAs(ctx, &stages, false)...)
	}
	if len(stages) > 0 {
		uses = append(uses, fmt.Sprintf("holds %s %s", plural(len(stages), "stage", "stages"), strings.Join(stages, ", ")))
	}
	if r.client != nil {
		routes, err := r.routesTo(ctx, model, version)
		if err != nil {
			tflog.Warn(ctx, "could not list the endpoints that route to the replaced version", map[string]any{"error": err.Error()})
		}
		if len(routes) > 0 {
			uses = append(uses, "receives traffic from "+strings.Join(routes, ", "))
		}
	}
	if len(uses) == 0 {
		return
	}
	resp.Diagnostics.AddAttributeWarning(path.Root(changed[0]),
		fmt.Sprintf("Replacing version %d of model %q, which %s", version, model, strings.Join(uses, " and ")),
		fmt.Sprintf("Changing %s registers a new version and deletes version %d. The registry refuses to delete a version that holds a stage or that an endpoint routes to, "+
			"so when Terraform deletes version %d first (its default for a replacement), the apply fails after the plan was approved.\n\n"+
			"Add lifecycle { create_before_destroy = true } so the new version is registered and the stage moves before the old one is deleted: "+
			"the stage assignments and routes that refer to this resource's version attribute then follow it to the new version, each checked by the stage policy, "+
			"and version %d is deleted last. A stage or route that names version %d by number must be moved first, in its own apply.\n\n"+
			"If this resource already has create_before_destroy, nothing needs to change.",
			strings.Join(changed, ", "), version, version, version, version))
}

// replacedBy names the attributes whose planned change replaces the
// version. A resource's ModifyPlan does not see the verdict of the
// attributes' plan modifiers, so this asks the same questions they do.
func replacedBy(ctx context.Context, plan, state modelVersionResourceModel) []string {
	var out []string
	for _, a := range []struct {
		name           string
		planned, prior attr.Value
	}{
		{"model", plan.Model, state.Model},
		{"source", plan.Source, state.Source},
		{"checksum", plan.Checksum, state.Checksum},
		{"format", plan.Format, state.Format},
	} {
		if !a.planned.Equal(a.prior) {
			out = append(out, a.name)
		}
	}
	for _, a := range []struct {
		name           string
		planned, prior attr.Value
	}{
		{"parameters", plan.Parameters, state.Parameters},
		{"lineage", plan.Lineage, state.Lineage},
		{"signature", plan.Signature, state.Signature},
	} {
		if !a.planned.Equal(a.prior) && !attrEquivalent(ctx, a.planned, a.prior) {
			out = append(out, a.name)
		}
	}
	if !plan.Metrics.Equal(state.Metrics) && !onlyAddsMetrics(ctx, state.Metrics, plan.Metrics) {
		out = append(out, "metrics")
	}
	return out
}

// routesTo names the endpoint routes of model that send traffic to
// version, as "endpoint \"e\" (route r)".
func (r *modelVersionResource) routesTo(ctx context.Context, model string, version int64) ([]string, error) {
	endpoints, err := r.client.AllEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range endpoints {
		if e.Model != model {
			continue
		}
		for _, rt := range e.Routes {
			if rt.Version == version {
				out = append(out, fmt.Sprintf("endpoint %q (route %q)", e.Name, rt.Name))
			}
		}
	}
	return out, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (r *modelVersionResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan modelVersionResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model := plan.Model.ValueString()
	in, diags := plan.createRequest(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	v, err := r.client.CreateVersion(ctx, model, in)
	if errors.Is(err, registry.ErrAlreadyExists) {
		existing, summary, detail := r.duplicateArtifact(ctx, model, in, err)
		if existing == nil {
			resp.Diagnostics.AddAttributeError(path.Root("checksum"), summary, detail)
			return
		}
		v, err = r.adopt(ctx, existing, in)
		if err == nil {
			r.adopted.add(v.Model, v.Version)
			resp.Diagnostics.AddAttributeWarning(path.Root("checksum"), summary, detail)
		}
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "register a version of", fmt.Sprintf("model %q", model), err)
		return
	}
	tflog.Debug(ctx, "registered model version", map[string]any{"model": v.Model, "version": v.Version})
	resp.Diagnostics.Append(plan.fromAPI(ctx, v, plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *modelVersionResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state modelVersionResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model, version := state.Model.ValueString(), state.Version.ValueInt64()
	// A refresh reads every version in state: ReadVersion pages through a
	// model's version list once for this provider run and serves the
	// model's reads from those pages (client/readcache.go), so a plan's
	// requests follow its models and list pages, not its versions. A
	// version the pages do not hold is read by itself, so not found is
	// exact.
	v, err := r.client.ReadVersion(ctx, model, version)
	if errors.Is(err, registry.ErrNotFound) {
		tflog.Info(ctx, "model version not found in the registry, removing it from state", map[string]any{"model": model, "version": version})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "read", versionWhat(model, version), err)
		return
	}
	resp.Diagnostics.Append(state.fromAPI(ctx, v, state)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *modelVersionResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan, state modelVersionResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model, version := state.Model.ValueString(), state.Version.ValueInt64()
	desc, flagged, reason := plan.Description.ValueString(), plan.Flagged.ValueBool(), plan.FlagReason.ValueString()
	tags, diags := stringMapFrom(ctx, plan.Tags)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	patch := registry.ModelVersionPatch{Description: &desc, Tags: &tags, Flagged: &flagged, FlagReason: &reason}
	// The plan replaced the version if a recorded metric changed or went
	// (metricsRequireReplace), so what differs here are added metrics.
	patch.AddMetrics, diags = addedMetrics(ctx, plan.Metrics, state.Metrics)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	v, err := r.client.UpdateVersion(ctx, model, version, patch, state.Revision.ValueInt64())
	if err != nil {
		addAPIError(&resp.Diagnostics, "update", versionWhat(model, version), err)
		return
	}
	planned := plan.Stages
	resp.Diagnostics.Append(plan.fromAPI(ctx, v, plan)...)
	// The plan promised the stages of the last refresh. A stage assignment
	// applied in parallel (it need not depend on this version) may have
	// moved one since; the next refresh reads it, and Terraform refuses a
	// result that differs from a known planned value.
	if isKnown(planned) {
		plan.Stages = planned
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *modelVersionResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state modelVersionResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model, version := state.Model.ValueString(), state.Version.ValueInt64()
	if r.adopted.has(model, version) {
		resp.Diagnostics.AddWarning(fmt.Sprintf("Version %d of model %q kept: adopted by its replacement", version, model),
			fmt.Sprintf("The replacement of this version found its artifact unchanged (a field unknown at plan time turned out equal) and adopted version %d instead of registering a copy, "+
				"so destroying the replaced object only removes it from state: version %d stays registered, managed by the replacement.", version, version))
		return
	}
	err := r.client.DeleteVersion(ctx, model, version, 0)
	switch {
	case err == nil, errors.Is(err, registry.ErrNotFound):
	case errors.Is(err, registry.ErrConflict):
		resp.Diagnostics.AddError(fmt.Sprintf("Version %d of model %q is in use", version, model),
			fmt.Sprintf("%s\n\nA version that holds a stage, or that an endpoint routes to, cannot be deleted: move the stage (mlregistry_stage_assignment) or the route first.", err))
	default:
		addAPIError(&resp.Diagnostics, "delete", versionWhat(model, version), err)
	}
}

func (r *modelVersionResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	model, version, err := parseVersionID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("model"), model)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("version"), version)...)
}

// existingVersionPattern finds the version the registry names in its
// already_exists answer ("version 3 of model ... already has checksum").
var existingVersionPattern = regexp.MustCompile(`^version (\d+) of model `)

// duplicateArtifact reads the version an already_exists answer to a
// registration names (the live version that has the checksum). When that
// version records exactly this artifact, it is returned, to be adopted: a
// registration that the registry committed but whose answer was lost (a
// crash, a cut connection, retries that ran out) leaves just that, and
// adopting it lets the next apply converge without an import. Otherwise
// summary and detail word the error: the version holds the checksum with
// other artifact fields, so it is either the version this resource
// replaces (still alive because create_before_destroy registers the
// replacement first) or one registered outside this configuration.
func (r *modelVersionResource) duplicateArtifact(ctx context.Context, model string, in registry.ModelVersionCreate, err error) (existing *registry.ModelVersion, summary, detail string) {
	m := existingVersionPattern.FindStringSubmatch(problemMessage(err))
	if m == nil {
		return nil, "Artifact already registered", fmt.Sprintf("%s\n\nA model holds each artifact (checksum) once: give this version its own artifact.", err)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	summary = fmt.Sprintf("Artifact already registered as version %d", n)
	existing, getErr := r.client.GetVersion(ctx, model, n)
	if getErr != nil {
		tflog.Debug(ctx, "could not read the version with the same checksum", map[string]any{"error": getErr.Error()})
		return nil, summary, fmt.Sprintf("%s\n\nA model holds each artifact (checksum) once: give this version its own artifact.", err)
	}
	differ := artifactDifferences(in, existing)
	if len(differ) == 0 && (existing.Flagged != in.Flagged || existing.FlagReason != in.FlagReason) {
		// Adopting would set the flag as planned, lifting an operator's
		// flag without a plan that shows it; an import plans it visibly.
		flag := "not flagged"
		if existing.Flagged {
			flag = fmt.Sprintf("flagged (%q)", existing.FlagReason)
		}
		return nil, summary, fmt.Sprintf("%s\n\nVersion %d records exactly this artifact, but it is %s, unlike this resource, so it was changed since it was registered and is not adopted. "+
			"Import it instead, and review the flag change the next plan shows: terraform import <this resource's address> %s/%d, or an import block with id = \"%s/%d\".",
			err, n, flag, model, n, model, n)
	}
	if len(differ) == 0 {
		return existing, fmt.Sprintf("Version %d already registered with this artifact: adopted into state", n),
			fmt.Sprintf("Version %d of model %q records exactly this artifact (source, checksum, format, parameters, metrics, lineage, signature): "+
				"a registration that was committed but not answered? It is adopted into this resource's state instead of being registered again. "+
				"If another resource also manages version %d, remove one of them: two resources must not manage one version.", n, model, n)
	}
	fields := "this field differs"
	if len(differ) > 1 {
		fields = "these fields differ"
	}
	return nil, summary, fmt.Sprintf("%s\n\nVersion %d records this checksum, but %s from this resource's: %s. A model holds each artifact once.\n\n"+
		"If this resource is replacing version %d, it has create_before_destroy, which registers the replacement before deleting the old version: "+
		"remove create_before_destroy from this resource's lifecycle block, and Terraform deletes version %d first.\n\n"+
		"If version %d was registered outside this configuration, import it instead and make the configuration match it: "+
		"terraform import <this resource's address> %s/%d, or an import block with id = \"%s/%d\".",
		err, n, fields, strings.Join(differ, ", "), n, n, n, model, n, model, n)
}

// adopt makes an existing version that records the planned artifact (and
// flag) the one this resource creates: a description or tags that differ
// are set as planned, conditionally on the revision read, so a change made
// meanwhile is not overwritten blindly.
func (r *modelVersionResource) adopt(ctx context.Context, v *registry.ModelVersion, in registry.ModelVersionCreate) (*registry.ModelVersion, error) {
	tflog.Info(ctx, "adopting a registered version that records the planned artifact", map[string]any{"model": v.Model, "version": v.Version})
	tags := in.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	if v.Description == in.Description && maps.Equal(v.Tags, tags) {
		return v, nil
	}
	patch := registry.ModelVersionPatch{Description: &in.Description, Tags: &tags}
	return r.client.UpdateVersion(ctx, v.Model, v.Version, patch, v.Revision)
}

// artifactDifferences names the artifact fields in which the registration
// in differs from the version v.
func artifactDifferences(in registry.ModelVersionCreate, v *registry.ModelVersion) []string {
	var out []string
	if in.Source != v.Source {
		out = append(out, "source")
	}
	if in.Format != v.Format {
		out = append(out, "format")
	}
	if !maps.Equal(in.Parameters, v.Parameters) {
		out = append(out, "parameters")
	}
	if !maps.Equal(in.Metrics, v.Metrics) {
		out = append(out, "metrics")
	}
	if lineageOrZero(in.Lineage) != lineageOrZero(v.Lineage) {
		out = append(out, "lineage")
	}
	if !registry.SignaturesEqual(in.Signature, v.Signature) {
		out = append(out, "signature")
	}
	return out
}

func lineageOrZero(l *registry.Lineage) registry.Lineage {
	if l == nil {
		return registry.Lineage{}
	}
	return *l
}

// parseVersionID parses "<model>/<version>".
func parseVersionID(id string) (string, int64, error) {
	model, v, ok := strings.Cut(id, "/")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil || n < 1 || !registry.NamePattern.MatchString(model) {
		return "", 0, fmt.Errorf("the import ID of mlregistry_model_version is \"<model>/<version>\", e.g. \"churn/3\", where the model name %s and the version is a number >= 1; got %q", registry.NameRule, id)
	}
	return model, n, nil
}

func versionWhat(model string, version int64) string {
	return fmt.Sprintf("version %d of model %q", version, model)
}

const metricsReplaceDesc = "Changing or removing an existing metric replaces the version; adding a metric updates it in place. " +
	"(A recorded metric never changes; numbers with the same 64-bit float, and null and empty, are not a change.)"

// metricsRequireReplace replaces the version when a metric it records is
// changed or removed; metrics that are only added are an update
// (PATCH add_metrics). An unknown map or an unknown value of a recorded
// metric may turn out to be either, so it replaces.
func metricsRequireReplace() planmodifier.Map {
	return mapplanmodifier.RequiresReplaceIf(func(ctx context.Context, req planmodifier.MapRequest, resp *mapplanmodifier.RequiresReplaceIfFuncResponse) {
		resp.RequiresReplace = !onlyAddsMetrics(ctx, req.StateValue, req.PlanValue)
	}, metricsReplaceDesc, metricsReplaceDesc)
}

// onlyAddsMetrics reports whether planned keeps every metric of state with
// an equivalent value (it may have more).
func onlyAddsMetrics(ctx context.Context, state, planned types.Map) bool {
	if attrEquivalent(ctx, state, planned) || state.IsNull() {
		return true
	}
	if planned.IsUnknown() || state.IsUnknown() {
		return false
	}
	have := planned.Elements()
	for k, v := range state.Elements() {
		p, ok := have[k]
		if !ok || !attrEquivalent(ctx, v, p) {
			return false
		}
	}
	return true
}

// addedMetrics returns the planned metrics state does not have.
func addedMetrics(ctx context.Context, planned, state types.Map) (map[string]float64, diag.Diagnostics) {
	all, diags := float64MapFrom(ctx, planned)
	var have map[string]attr.Value
	if isKnown(state) {
		have = state.Elements()
	}
	for k := range all {
		if _, ok := have[k]; ok {
			delete(all, k)
		}
	}
	if len(all) == 0 {
		return nil, diags
	}
	return all, diags
}

// createRequest converts the plan to the API's create body.
func (m *modelVersionResourceModel) createRequest(ctx context.Context) (registry.ModelVersionCreate, diag.Diagnostics) {
	var diags, d diag.Diagnostics
	in := registry.ModelVersionCreate{
		Source:      m.Source.ValueString(),
		Checksum:    m.Checksum.ValueString(),
		Format:      m.Format.ValueString(),
		Description: m.Description.ValueString(),
		Flagged:     m.Flagged.ValueBool(),
		FlagReason:  m.FlagReason.ValueString(),
	}
	in.Parameters, d = stringMapFrom(ctx, m.Parameters)
	diags.Append(d...)
	in.Metrics, d = float64MapFrom(ctx, m.Metrics)
	diags.Append(d...)
	in.Tags, d = stringMapFrom(ctx, m.Tags)
	diags.Append(d...)
	if isKnown(m.Lineage) {
		var l lineageModel
		diags.Append(m.Lineage.As(ctx, &l, objectAsOptions)...)
		in.Lineage = &registry.Lineage{
			RunID: l.RunID.ValueString(), GitCommit: l.GitCommit.ValueString(),
			Dataset: l.Dataset.ValueString(), CodeURI: l.CodeURI.ValueString(),
		}
	}
	if isKnown(m.Signature) {
		var s signatureBlockModel
		diags.Append(m.Signature.As(ctx, &s, objectAsOptions)...)
		in.Signature = &registry.Signature{}
		in.Signature.Inputs, d = tensorsFrom(ctx, s.Input)
		diags.Append(d...)
		in.Signature.Outputs, d = tensorsFrom(ctx, s.Output)
		diags.Append(d...)
	}
	return in, diags
}

func tensorsFrom(ctx context.Context, l types.List) ([]registry.TensorSpec, diag.Diagnostics) {
	out := []registry.TensorSpec{}
	if !isKnown(l) {
		return out, nil
	}
	var tensors []tensorModel
	diags := l.ElementsAs(ctx, &tensors, false)
	for _, t := range tensors {
		spec := registry.TensorSpec{Name: t.Name.ValueString(), DType: t.DType.ValueString(), Shape: []int64{}}
		if isKnown(t.Shape) {
			diags.Append(t.Shape.ElementsAs(ctx, &spec.Shape, false)...)
		}
		out = append(out, spec)
	}
	return out, diags
}

// fromAPI writes the registry's answer into m; prior (plan or state)
// decides null versus empty.
func (m *modelVersionResourceModel) fromAPI(ctx context.Context, v *registry.ModelVersion, prior modelVersionResourceModel) diag.Diagnostics {
	m.ID = types.StringValue(fmt.Sprintf("%s/%d", v.Model, v.Version))
	m.Model = types.StringValue(v.Model)
	diags := m.versionCommon.fromAPI(ctx, v, prior.versionCommon)
	// Unlike elsewhere (see convert.go), these are never null in the
	// resource's state: empty is {}, whether the configuration leaves them
	// out or writes {}, and whatever created or imported the version. So
	// neither spelling ever differs from the state (keepEquivalentState
	// plans {} for a left-out attribute). The lineage and signature blocks
	// follow the rule of convert.go instead: a block left out is null, and
	// Terraform allows no other plan for it.
	m.Parameters, m.Metrics, m.Tags = emptyMap(m.Parameters), emptyMap(m.Metrics), emptyMap(m.Tags)
	var d diag.Diagnostics
	m.Signature, d = signatureBlockValue(ctx, v.Signature, prior.Signature)
	diags.Append(d...)
	return diags
}

func (f *versionFields) fromAPI(ctx context.Context, v *registry.ModelVersion, prior versionFields) diag.Diagnostics {
	diags := f.versionCommon.fromAPI(ctx, v, prior.versionCommon)
	var d diag.Diagnostics
	f.Signature, d = signatureValue(ctx, v.Signature, prior.Signature)
	diags.Append(d...)
	return diags
}

func (f *versionCommon) fromAPI(ctx context.Context, v *registry.ModelVersion, prior versionCommon) diag.Diagnostics {
	var diags, d diag.Diagnostics
	f.Version = types.Int64Value(v.Version)
	f.Source = types.StringValue(v.Source)
	f.Checksum = types.StringValue(v.Checksum)
	f.Format = types.StringValue(v.Format)
	f.Parameters, d = stringMapValue(ctx, v.Parameters, prior.Parameters)
	diags.Append(d...)
	f.Metrics, d = float64MapValue(ctx, v.Metrics, prior.Metrics)
	diags.Append(d...)
	f.Lineage, d = lineageValue(ctx, v.Lineage, prior.Lineage)
	diags.Append(d...)
	f.Description = stringValue(v.Description, prior.Description)
	f.Tags, d = stringMapValue(ctx, v.Tags, prior.Tags)
	diags.Append(d...)
	f.Flagged = types.BoolValue(v.Flagged)
	f.FlagReason = stringValue(v.FlagReason, prior.FlagReason)
	stages := v.Stages
	if stages == nil {
		stages = []string{}
	}
	// stages is computed only: always a known list, empty when no stage
	// points here.
	f.Stages, d = types.ListValueFrom(ctx, types.StringType, stages)
	diags.Append(d...)
	f.CreatedAt = timeValue(v.CreatedAt)
	f.CreatedBy = types.StringValue(v.CreatedBy)
	f.UpdatedAt = timeValue(v.UpdatedAt)
	f.Revision = types.Int64Value(v.Revision)
	return diags
}

func lineageValue(ctx context.Context, l *registry.Lineage, prior types.Object) (types.Object, diag.Diagnostics) {
	if (l == nil || *l == registry.Lineage{}) && !isKnown(prior) {
		return types.ObjectNull(lineageAttrTypes), nil
	}
	if l == nil {
		l = &registry.Lineage{}
	}
	var p lineageModel
	var diags diag.Diagnostics
	if isKnown(prior) {
		diags.Append(prior.As(ctx, &p, objectAsOptions)...)
	}
	v, d := types.ObjectValueFrom(ctx, lineageAttrTypes, lineageModel{
		RunID:     stringValue(l.RunID, p.RunID),
		GitCommit: stringValue(l.GitCommit, p.GitCommit),
		Dataset:   stringValue(l.Dataset, p.Dataset),
		CodeURI:   stringValue(l.CodeURI, p.CodeURI),
	})
	diags.Append(d...)
	return v, diags
}

func signatureValue(ctx context.Context, s *registry.Signature, prior types.Object) (types.Object, diag.Diagnostics) {
	return signatureObject(ctx, s, prior, signatureAttrTypes, "inputs", "outputs", false)
}

// signatureBlockValue is signatureValue for the signature block, whose
// input and output lists are never null inside a present block: no
// blocks is an empty list to Terraform.
func signatureBlockValue(ctx context.Context, s *registry.Signature, prior types.Object) (types.Object, diag.Diagnostics) {
	return signatureObject(ctx, s, prior, signatureBlockAttrTypes, "input", "output", true)
}

// signatureObject builds a signature object whose tensor lists are named
// inName and outName (the data source and the resource spell them
// differently), keeping prior's spelling of each tensor.
func signatureObject(ctx context.Context, s *registry.Signature, prior types.Object, attrTypes map[string]attr.Type, inName, outName string, emptyNotNull bool) (types.Object, diag.Diagnostics) {
	if (s == nil || len(s.Inputs)+len(s.Outputs) == 0) && !isKnown(prior) {
		return types.ObjectNull(attrTypes), nil
	}
	if s == nil {
		s = &registry.Signature{}
	}
	priorList := func(name string) types.List {
		if isKnown(prior) {
			if l, ok := prior.Attributes()[name].(types.List); ok {
				return l
			}
		}
		return types.ListNull(tensorObjectType)
	}
	var diags diag.Diagnostics
	in, d := tensorsValue(ctx, s.Inputs, priorList(inName))
	diags.Append(d...)
	out, d := tensorsValue(ctx, s.Outputs, priorList(outName))
	diags.Append(d...)
	if emptyNotNull && in.IsNull() {
		in = types.ListValueMust(tensorObjectType, []attr.Value{})
	}
	if emptyNotNull && out.IsNull() {
		out = types.ListValueMust(tensorObjectType, []attr.Value{})
	}
	v, d := types.ObjectValue(attrTypes, map[string]attr.Value{inName: in, outName: out})
	diags.Append(d...)
	return v, diags
}

// tensorsValue keeps the registry's order (it is the signature's order).
func tensorsValue(ctx context.Context, ts []registry.TensorSpec, prior types.List) (types.List, diag.Diagnostics) {
	if len(ts) == 0 && !isKnown(prior) {
		return types.ListNull(tensorObjectType), nil
	}
	var p []tensorModel
	var diags diag.Diagnostics
	if isKnown(prior) {
		diags.Append(prior.ElementsAs(ctx, &p, false)...)
	}
	elems := make([]attr.Value, 0, len(ts))
	for i, t := range ts {
		var pt tensorModel
		if i < len(p) {
			pt = p[i]
		}
		shape := types.ListNull(types.Int64Type)
		if len(t.Shape) > 0 || isKnown(pt.Shape) {
			var d diag.Diagnostics
			dims := t.Shape
			if dims == nil {
				dims = []int64{}
			}
			shape, d = types.ListValueFrom(ctx, types.Int64Type, dims)
			diags.Append(d...)
		}
		obj, d := types.ObjectValueFrom(ctx, tensorAttrTypes, tensorModel{
			Name: types.StringValue(t.Name), DType: types.StringValue(t.DType), Shape: shape,
		})
		diags.Append(d...)
		elems = append(elems, obj)
	}
	v, d := types.ListValue(tensorObjectType, elems)
	diags.Append(d...)
	return v, diags
}

func tensorListBlock(what string) schema.ListNestedBlock {
	return schema.ListNestedBlock{
		MarkdownDescription: fmt.Sprintf("One model %s, in order.", what),
		NestedObject: schema.NestedBlockObject{
			Attributes: map[string]schema.Attribute{
				"name": schema.StringAttribute{
					MarkdownDescription: "Tensor or column name, unique among the " + what + "s.",
					Required:            true,
					Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
				},
				"dtype": schema.StringAttribute{
					MarkdownDescription: "Element type, e.g. `float32`, `int64`, `string`.",
					Required:            true,
					Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
				},
				"shape": schema.ListAttribute{
					MarkdownDescription: "Dimensions; `-1` means any size.",
					ElementType:         types.Int64Type,
					Optional:            true,
				},
			},
		},
	}
}

func validateTensorNames(ctx context.Context, p path.Path, l types.List, diags *diag.Diagnostics) {
	if !isKnown(l) {
		return
	}
	var tensors []tensorModel
	diags.Append(l.ElementsAs(ctx, &tensors, false)...)
	seen := map[string]bool{}
	for i, t := range tensors {
		if !isKnown(t.Name) {
			continue
		}
		if seen[t.Name.ValueString()] {
			diags.AddAttributeError(p.AtListIndex(i).AtName("name"), "Duplicate tensor name", fmt.Sprintf("%q is used twice.", t.Name.ValueString()))
		}
		seen[t.Name.ValueString()] = true
		var shape []int64
		if isKnown(t.Shape) {
			diags.Append(t.Shape.ElementsAs(ctx, &shape, true)...)
		}
		for j, d := range shape {
			if d < -1 {
				diags.AddAttributeError(p.AtListIndex(i).AtName("shape").AtListIndex(j), "Invalid dimension", "must be -1 (any) or >= 0")
			}
		}
	}
}
