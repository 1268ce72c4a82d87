package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
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
	_ resource.Resource                = (*stageAssignmentResource)(nil)
	_ resource.ResourceWithConfigure   = (*stageAssignmentResource)(nil)
	_ resource.ResourceWithImportState = (*stageAssignmentResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*stageAssignmentResource)(nil)
)

// NewStageAssignmentResource is the mlregistry_stage_assignment resource.
func NewStageAssignmentResource() resource.Resource { return &stageAssignmentResource{} }

type stageAssignmentResource struct {
	client *client.Client
}

type stageAssignmentResourceModel struct {
	ID              types.String `tfsdk:"id"`
	Model           types.String `tfsdk:"model"`
	Stage           types.String `tfsdk:"stage"`
	Version         types.Int64  `tfsdk:"version"`
	Reason          types.String `tfsdk:"reason"`
	PreviousVersion types.Int64  `tfsdk:"previous_version"`
	AssignedAt      types.String `tfsdk:"assigned_at"`
	AssignedBy      types.String `tfsdk:"assigned_by"`
	Revision        types.Int64  `tfsdk:"revision"`
}

func (r *stageAssignmentResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_stage_assignment"
}

func (r *stageAssignmentResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Points a stage of a model (e.g. `production`) at one of its versions. Changing `version` is a promotion or a rollback, " +
			"done in place and kept in the stage's history. The registry enforces the model's stage policy; at plan time the provider asks the registry " +
			"for a dry run of the new assignment, so a policy violation fails `terraform plan` (and the pull request that runs it) before anyone applies. " +
			"Creating the resource for a stage that is already assigned takes it over (the assignment is recorded like any other); destroying it unassigns the stage.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "`<model>/<stage>`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"model": schema.StringAttribute{
				MarkdownDescription: "Name of the registered model. Changing it replaces the assignment.",
				Required:            true,
				Validators:          []validator.String{nameValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"stage": schema.StringAttribute{
				MarkdownDescription: describe("Stage name, e.g. `staging` or `production`. Changing it replaces the assignment.", registry.StageRule),
				Required:            true,
				Validators:          []validator.String{stageValidator()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "The version the stage points at. Changing it promotes or rolls back in place; the plan fails when the registry's dry run reports a policy violation.",
				Required:            true,
				Validators:          []validator.Int64{int64validator.AtLeast(1)},
			},
			"reason": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Why the stage moves, recorded in the stage's history with the assignment (at most %d bytes). "+
					"It is sent when `version` changes; changing only the reason records nothing.", registry.MaxReasonLen),
				Optional:   true,
				Validators: []validator.String{stringvalidator.LengthAtMost(registry.MaxReasonLen)},
			},
			"previous_version": schema.Int64Attribute{
				MarkdownDescription: "The version the stage pointed at before this assignment, `0` when it was unassigned.",
				Computed:            true,
			},
			"assigned_at": schema.StringAttribute{
				MarkdownDescription: "When the stage was last assigned (RFC 3339).",
				Computed:            true,
			},
			"assigned_by": schema.StringAttribute{
				MarkdownDescription: "Name of the token that made the assignment.",
				Computed:            true,
			},
			"revision": schema.Int64Attribute{
				MarkdownDescription: "The assignment's revision (its ETag), sent as `If-Match` when the version changes.",
				Computed:            true,
			},
		},
	}
}

func (r *stageAssignmentResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = providerClient(req.ProviderData, &resp.Diagnostics)
}

// ModifyPlan keeps the computed fields when the version does not change,
// and asks the registry for a dry run when it does, so a policy violation
// (or a flagged version) fails the plan with the server's own message.
func (r *stageAssignmentResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	var plan stageAssignmentResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var state *stageAssignmentResourceModel
	if !req.State.Raw.IsNull() {
		state = &stageAssignmentResourceModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	sameTarget := state != nil && plan.Model.Equal(state.Model) && plan.Stage.Equal(state.Stage)
	if sameTarget && plan.Version.Equal(state.Version) {
		// Nothing moves (at most the reason changes): the assignment's
		// fields stay as they are.
		plan.PreviousVersion, plan.AssignedAt, plan.AssignedBy, plan.Revision =
			state.PreviousVersion, state.AssignedAt, state.AssignedBy, state.Revision
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if r.client == nil || !isKnown(plan.Model) || !isKnown(plan.Stage) || !isKnown(plan.Version) {
		// A version being created in this same apply has no number yet;
		// the registry checks the policy when the apply assigns it.
		return
	}
	model, stage, version := plan.Model.ValueString(), plan.Stage.ValueString(), plan.Version.ValueInt64()
	dry, err := r.client.DryRunAssignStage(ctx, model, stage, registry.StageAssign{Version: version, Reason: plan.Reason.ValueString()})
	switch {
	case err == nil && dry.Permitted:
		tflog.Debug(ctx, "stage assignment dry run allowed", map[string]any{"model": model, "stage": stage, "version": version, "previous_version": dry.PreviousVersion})
	case err == nil:
		addNotPermitted(&resp.Diagnostics, path.Root("version"),
			fmt.Sprintf("assign version %d of model %q to stage %q", version, model, stage), dry.Permission,
			fmt.Sprintf("a write token that may assign stage %q (created without --stages, or with --stages %s)", stage, stage),
			dry.PermissionRule == "scope")
	case errors.Is(err, registry.ErrPolicyViolation):
		summary, detail := refusedAssignment(model, stage, version, err)
		resp.Diagnostics.AddAttributeError(path.Root("version"), summary,
			detail+"\n\n(The registry checked this in a dry run at plan time; nothing was written.)")
	case errors.Is(err, registry.ErrNotFound):
		// The model or version may be created by this same apply.
		tflog.Debug(ctx, "stage assignment dry run skipped: model or version not found yet", map[string]any{"model": model, "version": version, "error": err.Error()})
	case errors.Is(err, registry.ErrInvalidArgument):
		resp.Diagnostics.AddAttributeError(path.Root("version"), "Invalid stage assignment", err.Error())
	case errors.Is(err, registry.ErrPermissionDenied):
		// A registry from before dry runs answered "permitted".
		var re *registry.Error
		addNotPermitted(&resp.Diagnostics, path.Root("version"),
			fmt.Sprintf("assign version %d of model %q to stage %q", version, model, stage), problemMessage(err),
			fmt.Sprintf("a write token that may assign stage %q", stage), errors.As(err, &re) && re.Rule == "scope")
	default:
		resp.Diagnostics.AddAttributeWarning(path.Root("version"), "Stage policy not checked at plan time",
			fmt.Sprintf("The registry's dry run of assigning version %d of model %q to stage %q did not answer: %s\n\n"+
				"The registry still enforces the policy when the plan is applied; plan again once the registry answers to check it now.", version, model, stage, err))
	}
}

func (r *stageAssignmentResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan stageAssignmentResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.assign(ctx, &plan, 0, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *stageAssignmentResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state stageAssignmentResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model, stage := state.Model.ValueString(), state.Stage.ValueString()
	a, err := r.client.GetStage(ctx, model, stage)
	if errors.Is(err, registry.ErrNotFound) {
		tflog.Info(ctx, "stage is not assigned in the registry, removing the assignment from state", map[string]any{"model": model, "stage": stage})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "read", stageWhat(model, stage), err)
		return
	}
	// The reason is what this resource sent with its last assignment; when
	// the stage moved outside Terraform, the registry's reason comes along.
	reason := state.Reason
	if !isKnown(state.Version) || a.Version != state.Version.ValueInt64() || !isKnown(reason) {
		reason = stringValue(a.Reason, state.Reason)
	}
	state.fromAPI(a)
	state.Reason = reason
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *stageAssignmentResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan, state stageAssignmentResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.Version.Equal(state.Version) {
		// Only the reason changed; ModifyPlan kept the computed fields.
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	r.assign(ctx, &plan, state.Revision.ValueInt64(), &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *stageAssignmentResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state stageAssignmentResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model, stage := state.Model.ValueString(), state.Stage.ValueString()
	if err := r.client.UnassignStage(ctx, model, stage, 0); err != nil && !errors.Is(err, registry.ErrNotFound) {
		addAPIError(&resp.Diagnostics, "unassign", stageWhat(model, stage), err)
	}
}

func (r *stageAssignmentResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	model, stage, err := parseStageID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("model"), model)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("stage"), stage)...)
}

// assign runs the assignment in plan and writes the answer back into it.
func (r *stageAssignmentResource) assign(ctx context.Context, plan *stageAssignmentResourceModel, ifRevision int64, diags *diag.Diagnostics) {
	model, stage, version := plan.Model.ValueString(), plan.Stage.ValueString(), plan.Version.ValueInt64()
	a, err := r.client.AssignStage(ctx, model, stage, registry.StageAssign{Version: version, Reason: plan.Reason.ValueString()}, ifRevision)
	if err != nil {
		what := fmt.Sprintf("version %d to %s", version, stageWhat(model, stage))
		summary, detail := "Could not assign "+what, err.Error()
		switch {
		case errors.Is(err, registry.ErrPolicyViolation):
			summary, detail = refusedAssignment(model, stage, version, err)
		case errors.Is(err, registry.ErrPreconditionFailed):
			summary = fmt.Sprintf("Stage %q of model %q changed outside this plan", stage, model)
			detail = fmt.Sprintf("The stage was assigned by someone or something else since Terraform last read it, so this promotion or rollback would overwrite a change it has not seen.\n\n"+
				"Run `terraform plan` (or `terraform apply -refresh-only`) again to read the current state, review the new plan, then apply it.\n\nRegistry answer: %s", err)
		case errors.Is(err, registry.ErrPermissionDenied):
			summary = "Permission denied: could not assign " + what
			detail += "\n\nThe token's scope or its stage restriction does not allow assigning this stage."
		}
		diags.AddAttributeError(path.Root("version"), summary, detail)
		return
	}
	tflog.Debug(ctx, "assigned stage", map[string]any{"model": model, "stage": stage, "version": a.Version, "previous_version": a.PreviousVersion})
	plan.fromAPI(a)
}

func (m *stageAssignmentResourceModel) fromAPI(a *registry.StageAssignment) {
	m.ID = types.StringValue(a.Model + "/" + a.Stage)
	m.Model = types.StringValue(a.Model)
	m.Stage = types.StringValue(a.Stage)
	m.Version = types.Int64Value(a.Version)
	m.PreviousVersion = types.Int64Value(a.PreviousVersion)
	m.AssignedAt = timeValue(a.AssignedAt)
	m.AssignedBy = types.StringValue(a.AssignedBy)
	m.Revision = types.Int64Value(a.Revision)
}

// parseStageID parses "<model>/<stage>".
func parseStageID(id string) (string, string, error) {
	model, stage, ok := strings.Cut(id, "/")
	if !ok || !registry.NamePattern.MatchString(model) || !registry.StagePattern.MatchString(stage) {
		return "", "", fmt.Errorf("the import ID of mlregistry_stage_assignment is \"<model>/<stage>\", e.g. \"churn/production\", where the model name %s and the stage %s; got %q",
			registry.NameRule, registry.StageRule, id)
	}
	return model, stage, nil
}

func stageWhat(model, stage string) string {
	return fmt.Sprintf("stage %q of model %q", stage, model)
}

// problemMessage is the registry's own message, without the HTTP details
// the client appends.
// refusedAssignment words a policy_violation of assigning version to
// stage: what the registry said, and the one thing to do about it. A
// flagged version is not a policy matter: the flag has to go first, in an
// apply of its own (the registry checks the flag as it is when the
// assignment runs, and a plan cannot order an unflag before it).
func refusedAssignment(model, stage string, version int64, err error) (summary, detail string) {
	var e *registry.Error
	if asRegistryError(err, &e) && e.Rule == "flagged" {
		return fmt.Sprintf("Version %d of model %q is flagged", version, model),
			fmt.Sprintf("The registry refuses to assign version %d of model %q to stage %q:\n\n%s\n\n"+
				"A flagged version cannot be assigned to any stage, whatever the stage policy says. "+
				"If the version is fit to serve after all, unflag it (flagged = false on its mlregistry_model_version) in an apply of its own, then assign it in the next apply.",
				version, model, stage, problemMessage(err))
	}
	return "Stage policy violation",
		fmt.Sprintf("The registry refuses to assign version %d of model %q to stage %q because the model's stage policy for %q does not allow it:\n\n%s\n\n"+
			"Assign a version that meets every rule listed above.",
			version, model, stage, stage, problemMessage(err))
}

func problemMessage(err error) string {
	var e *registry.Error
	if asRegistryError(err, &e) {
		return e.Message
	}
	return err.Error()
}
