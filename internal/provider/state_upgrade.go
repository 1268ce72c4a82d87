package provider

// State written before the nested objects became blocks.
//
// Version 0 of mlregistry_model, mlregistry_endpoint and
// mlregistry_model_version held stage_policies, routes, guard, lineage and
// signature as nested attributes. Terraform drops a misspelt key inside a
// nested attribute without a word, so version 1 declares them as blocks,
// which Terraform checks strictly. The upgraders below turn version 0
// state into the version 1 shape value for value, keeping null versus
// empty as the resource would have written it, so the first plan after
// upgrading the provider shows no change.

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// v0 schemas: only the types matter, so every attribute is Optional.
func v0String() schema.StringAttribute { return schema.StringAttribute{Optional: true} }
func v0Int64() schema.Int64Attribute   { return schema.Int64Attribute{Optional: true} }
func v0Bool() schema.BoolAttribute     { return schema.BoolAttribute{Optional: true} }
func v0Number() schema.NumberAttribute { return schema.NumberAttribute{Optional: true} }
func v0Map(elem attr.Type) schema.MapAttribute {
	return schema.MapAttribute{ElementType: elem, Optional: true}
}

func v0Tensors() schema.ListNestedAttribute {
	return schema.ListNestedAttribute{Optional: true, NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
		"name": v0String(), "dtype": v0String(), "shape": schema.ListAttribute{ElementType: types.Int64Type, Optional: true},
	}}}
}

var modelSchemaV0 = schema.Schema{Attributes: map[string]schema.Attribute{
	"id": v0String(), "name": v0String(), "description": v0String(), "owner": v0String(),
	"tags": v0Map(types.StringType),
	"stage_policies": schema.MapNestedAttribute{Optional: true, NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
		"require_stage": v0String(), "min_soak": v0String(),
		"min_metrics": v0Map(types.NumberType), "max_metrics": v0Map(types.NumberType),
		"require_signature_match": v0Bool(),
	}}},
	"force_destroy": v0Bool(), "created_at": v0String(), "updated_at": v0String(), "revision": v0Int64(),
}}

type modelResourceModelV0 struct {
	ID            types.String `tfsdk:"id"`
	Name          types.String `tfsdk:"name"`
	Description   types.String `tfsdk:"description"`
	Owner         types.String `tfsdk:"owner"`
	Tags          types.Map    `tfsdk:"tags"`
	StagePolicies types.Map    `tfsdk:"stage_policies"`
	ForceDestroy  types.Bool   `tfsdk:"force_destroy"`
	CreatedAt     types.String `tfsdk:"created_at"`
	UpdatedAt     types.String `tfsdk:"updated_at"`
	Revision      types.Int64  `tfsdk:"revision"`
}

// stagePolicyModelV0 is one value of the version 0 stage_policies map.
type stagePolicyModelV0 struct {
	RequireStage          types.String `tfsdk:"require_stage"`
	MinSoak               types.String `tfsdk:"min_soak"`
	MinMetrics            types.Map    `tfsdk:"min_metrics"`
	MaxMetrics            types.Map    `tfsdk:"max_metrics"`
	RequireSignatureMatch types.Bool   `tfsdk:"require_signature_match"`
}

func (r *modelResource) UpgradeState(context.Context) map[int64]resource.StateUpgrader {
	return map[int64]resource.StateUpgrader{
		0: {PriorSchema: &modelSchemaV0, StateUpgrader: upgradeModelV0},
	}
}

func upgradeModelV0(ctx context.Context, req resource.UpgradeStateRequest, resp *resource.UpgradeStateResponse) {
	var old modelResourceModelV0
	resp.Diagnostics.Append(req.State.Get(ctx, &old)...)
	if resp.Diagnostics.HasError() {
		return
	}
	policies, diags := stagePolicySetFromV0(ctx, old.StagePolicies)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, modelResourceModel{
		ID: old.ID, Name: old.Name, Description: old.Description, Owner: old.Owner, Tags: old.Tags,
		StagePolicy: policies, ForceDestroy: old.ForceDestroy,
		CreatedAt: old.CreatedAt, UpdatedAt: old.UpdatedAt, Revision: old.Revision,
	})...)
}

// stagePolicySetFromV0 turns the map keyed by stage into blocks that name
// their stage; no policies is an empty set, as a configuration without
// stage_policy blocks reads.
func stagePolicySetFromV0(ctx context.Context, m types.Map) (types.Set, diag.Diagnostics) {
	var diags diag.Diagnostics
	var old map[string]stagePolicyModelV0
	if isKnown(m) {
		diags.Append(m.ElementsAs(ctx, &old, false)...)
	}
	elems := make([]attr.Value, 0, len(old))
	for _, stage := range sortedKeys(old) {
		p := old[stage]
		obj, d := types.ObjectValueFrom(ctx, stagePolicyAttrTypes, stagePolicyModel{
			Stage: types.StringValue(stage), RequireStage: p.RequireStage, MinSoak: p.MinSoak,
			MinMetrics: p.MinMetrics, MaxMetrics: p.MaxMetrics, RequireSignatureMatch: p.RequireSignatureMatch,
			MinLiveMetrics: types.MapNull(types.NumberType), MinLiveCount: types.Int64Null(),
		})
		diags.Append(d...)
		elems = append(elems, obj)
	}
	v, d := types.SetValue(stagePolicyObjectType, elems)
	diags.Append(d...)
	return v, diags
}

var endpointSchemaV0 = schema.Schema{Attributes: map[string]schema.Attribute{
	"id": v0String(), "name": v0String(), "model": v0String(), "stage": v0String(),
	"routes": schema.ListNestedAttribute{Optional: true, NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
		"name": v0String(), "version": v0Int64(), "upstream_url": v0String(), "weight": v0Int64(),
	}}},
	"sticky_header": v0String(),
	"guard": schema.SingleNestedAttribute{Optional: true, Attributes: map[string]schema.Attribute{
		"max_error_rate": v0Number(), "min_requests": v0Int64(), "window": v0String(),
	}},
	"timeout": v0String(), "url": v0String(), "status": v0String(), "status_message": v0String(),
	"created_at": v0String(), "updated_at": v0String(), "revision": v0Int64(),
}}

type endpointResourceModelV0 struct {
	ID     types.String `tfsdk:"id"`
	Name   types.String `tfsdk:"name"`
	Model  types.String `tfsdk:"model"`
	Routes types.List   `tfsdk:"routes"`
	endpointFields
}

func (r *endpointResource) UpgradeState(context.Context) map[int64]resource.StateUpgrader {
	return map[int64]resource.StateUpgrader{
		0: {PriorSchema: &endpointSchemaV0, StateUpgrader: upgradeEndpointV0},
	}
}

func upgradeEndpointV0(ctx context.Context, req resource.UpgradeStateRequest, resp *resource.UpgradeStateResponse) {
	var old endpointResourceModelV0
	resp.Diagnostics.Append(req.State.Get(ctx, &old)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Version 0 routes carry no match and are no shadows: each becomes a
	// route block whose match, shadow and share are null, in the block's
	// current object type.
	elems := []attr.Value{}
	if !old.Routes.IsNull() && !old.Routes.IsUnknown() {
		for _, e := range old.Routes.Elements() {
			o, ok := e.(types.Object)
			if !ok {
				continue
			}
			attrs := map[string]attr.Value{"match": types.ObjectNull(matchAttrTypes), "shadow": types.BoolNull(), "share": types.NumberNull()}
			for k, v := range o.Attributes() {
				attrs[k] = v
			}
			obj, d := types.ObjectValue(routeAttrTypes, attrs)
			resp.Diagnostics.Append(d...)
			elems = append(elems, obj)
		}
	}
	routes, d := types.ListValue(routeObjectType, elems)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	// A version 0 guard has no live_metric: null in the current type.
	fields := old.endpointFields
	if o := fields.Guard; !o.IsNull() && !o.IsUnknown() {
		attrs := map[string]attr.Value{"live_metric": types.ObjectNull(guardLiveMetricAttrTypes)}
		for k, v := range o.Attributes() {
			attrs[k] = v
		}
		fields.Guard, d = types.ObjectValue(guardAttrTypes, attrs)
	} else {
		fields.Guard = types.ObjectNull(guardAttrTypes)
	}
	resp.Diagnostics.Append(d...)
	resp.Diagnostics.Append(resp.State.Set(ctx, endpointResourceModel{
		ID: old.ID, Name: old.Name, Model: old.Model, Route: routes, endpointFields: fields,
		endpointRolloutFields: endpointRolloutFields{
			Rollout: types.ObjectNull(rolloutAttrTypes), RolloutStatus: types.ObjectNull(rolloutStatusAttrTypes),
		},
		WaitForRollout: types.BoolValue(false),
	})...)
}

var modelVersionSchemaV0 = schema.Schema{Attributes: map[string]schema.Attribute{
	"id": v0String(), "model": v0String(), "version": v0Int64(),
	"source": v0String(), "checksum": v0String(), "format": v0String(),
	"parameters": v0Map(types.StringType), "metrics": v0Map(types.NumberType),
	"lineage": schema.SingleNestedAttribute{Optional: true, Attributes: map[string]schema.Attribute{
		"run_id": v0String(), "git_commit": v0String(), "dataset": v0String(), "code_uri": v0String(),
	}},
	"signature": schema.SingleNestedAttribute{Optional: true, Attributes: map[string]schema.Attribute{
		"inputs": v0Tensors(), "outputs": v0Tensors(),
	}},
	"description": v0String(), "tags": v0Map(types.StringType), "flagged": v0Bool(), "flag_reason": v0String(),
	"stages":     schema.ListAttribute{ElementType: types.StringType, Optional: true},
	"created_at": v0String(), "created_by": v0String(), "updated_at": v0String(), "revision": v0Int64(),
}}

type modelVersionResourceModelV0 struct {
	ID    types.String `tfsdk:"id"`
	Model types.String `tfsdk:"model"`
	versionFields
}

func (r *modelVersionResource) UpgradeState(context.Context) map[int64]resource.StateUpgrader {
	return map[int64]resource.StateUpgrader{
		0: {PriorSchema: &modelVersionSchemaV0, StateUpgrader: upgradeModelVersionV0},
	}
}

// upgradeModelVersionV0: version 0 stored a left-out lineage or signature
// as an object of empty fields; a left-out block is null.
func upgradeModelVersionV0(ctx context.Context, req resource.UpgradeStateRequest, resp *resource.UpgradeStateResponse) {
	var old modelVersionResourceModelV0
	resp.Diagnostics.Append(req.State.Get(ctx, &old)...)
	if resp.Diagnostics.HasError() {
		return
	}
	next := modelVersionResourceModel{ID: old.ID, Model: old.Model, versionCommon: old.versionCommon}
	if attrEquivalent(ctx, old.Lineage, types.ObjectNull(lineageAttrTypes)) {
		next.Lineage = types.ObjectNull(lineageAttrTypes)
	}
	next.Signature = types.ObjectNull(signatureBlockAttrTypes)
	if isKnown(old.Signature) && !attrEquivalent(ctx, old.Signature, types.ObjectNull(signatureAttrTypes)) {
		var s signatureModel
		resp.Diagnostics.Append(old.Signature.As(ctx, &s, objectAsOptions)...)
		empty := types.ListValueMust(tensorObjectType, []attr.Value{})
		b := signatureBlockModel{Input: s.Inputs, Output: s.Outputs}
		if b.Input.IsNull() {
			b.Input = empty
		}
		if b.Output.IsNull() {
			b.Output = empty
		}
		var d diag.Diagnostics
		next.Signature, d = types.ObjectValueFrom(ctx, signatureBlockAttrTypes, b)
		resp.Diagnostics.Append(d...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, next)...)
}
