package provider

import (
	"context"
	"fmt"

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
	_ datasource.DataSource              = (*modelDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*modelDataSource)(nil)
)

// NewModelDataSource is the mlregistry_model data source.
func NewModelDataSource() datasource.DataSource { return &modelDataSource{} }

type modelDataSource struct {
	client *client.Client
}

type modelDataSourceModel struct {
	ID            types.String `tfsdk:"id"`
	Name          types.String `tfsdk:"name"`
	Description   types.String `tfsdk:"description"`
	Owner         types.String `tfsdk:"owner"`
	Tags          types.Map    `tfsdk:"tags"`
	StagePolicies types.Map    `tfsdk:"stage_policies"`
	CreatedAt     types.String `tfsdk:"created_at"`
	UpdatedAt     types.String `tfsdk:"updated_at"`
	Revision      types.Int64  `tfsdk:"revision"`
}

func (d *modelDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_model"
}

func (d *modelDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a registered model. Empty values (no description, no tags, ...) are null.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{MarkdownDescription: "The model's name.", Computed: true},
			"name": schema.StringAttribute{
				MarkdownDescription: describe("Name of the model.", registry.NameRule),
				Required:            true,
				Validators:          []validator.String{nameValidator()},
			},
			"description": schema.StringAttribute{MarkdownDescription: "Free-form description.", Computed: true},
			"owner":       schema.StringAttribute{MarkdownDescription: "Team or person that owns the model.", Computed: true},
			"tags":        schema.MapAttribute{MarkdownDescription: "Key/value tags.", ElementType: types.StringType, Computed: true},
			"stage_policies": schema.MapNestedAttribute{
				MarkdownDescription: "Rules per stage that a version must satisfy before it may be assigned to that stage.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"require_stage":           schema.StringAttribute{MarkdownDescription: "A stage the version must hold now or have held before.", Computed: true},
						"min_soak":                schema.StringAttribute{MarkdownDescription: "How long the version must have held `require_stage`.", Computed: true},
						"min_metrics":             schema.MapAttribute{MarkdownDescription: "Minimum value per metric.", ElementType: types.NumberType, Computed: true},
						"max_metrics":             schema.MapAttribute{MarkdownDescription: "Maximum value per metric.", ElementType: types.NumberType, Computed: true},
						"require_signature_match": schema.BoolAttribute{MarkdownDescription: "The version's signature must equal that of the version holding the stage now.", Computed: true},
						"min_live_metrics":        schema.MapAttribute{MarkdownDescription: "Floor of the mean of each live metric, over the trusted feedback of the last day.", ElementType: types.NumberType, Computed: true},
						"min_live_count":          schema.Int64Attribute{MarkdownDescription: fmt.Sprintf("Fewest trusted feedback values per metric `min_live_metrics` judges (%d when the policy sets none).", registry.DefaultMinLiveCount), Computed: true},
					},
				},
			},
			"created_at": schema.StringAttribute{MarkdownDescription: "When the model was registered (RFC 3339).", Computed: true},
			"updated_at": schema.StringAttribute{MarkdownDescription: "When the model was last changed (RFC 3339).", Computed: true},
			"revision":   schema.Int64Attribute{MarkdownDescription: "The model's revision (its ETag).", Computed: true},
		},
	}
}

func (d *modelDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = providerClient(req.ProviderData, &resp.Diagnostics)
}

func (d *modelDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg modelDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := cfg.Name.ValueString()
	m, err := d.client.GetModel(ctx, name)
	if err != nil {
		addAPIError(&resp.Diagnostics, "read", fmt.Sprintf("model %q", name), err)
		return
	}
	var rm modelResourceModel
	resp.Diagnostics.Append(rm.fromAPI(ctx, m, modelResourceModel{})...)
	policies, diags := stagePoliciesMapValue(ctx, m.StagePolicies)
	resp.Diagnostics.Append(diags...)
	out := modelDataSourceModel{
		ID: rm.ID, Name: rm.Name, Description: rm.Description, Owner: rm.Owner, Tags: rm.Tags,
		StagePolicies: policies, CreatedAt: rm.CreatedAt, UpdatedAt: rm.UpdatedAt, Revision: rm.Revision,
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}

// stagePolicyMapAttrTypes is one value of the data source's stage_policies
// map (keyed by stage, so without the stage_policy block's stage).
var stagePolicyMapAttrTypes = map[string]attr.Type{
	"require_stage":           types.StringType,
	"min_soak":                types.StringType,
	"min_metrics":             types.MapType{ElemType: types.NumberType},
	"max_metrics":             types.MapType{ElemType: types.NumberType},
	"require_signature_match": types.BoolType,
	"min_live_metrics":        types.MapType{ElemType: types.NumberType},
	"min_live_count":          types.Int64Type,
}

// stagePoliciesMapValue is the data source's stage_policies: null when
// the model has none, empty fields null.
func stagePoliciesMapValue(ctx context.Context, in map[string]registry.StagePolicy) (types.Map, diag.Diagnostics) {
	objType := types.ObjectType{AttrTypes: stagePolicyMapAttrTypes}
	if len(in) == 0 {
		return types.MapNull(objType), nil
	}
	var diags, d diag.Diagnostics
	out := make(map[string]attr.Value, len(in))
	for stage, p := range in {
		var minM, maxM types.Map
		minM, d = float64MapValue(ctx, p.MinMetrics, types.MapNull(types.NumberType))
		diags.Append(d...)
		maxM, d = float64MapValue(ctx, p.MaxMetrics, types.MapNull(types.NumberType))
		diags.Append(d...)
		liveM, d := float64MapValue(ctx, p.MinLiveMetrics, types.MapNull(types.NumberType))
		diags.Append(d...)
		liveCount := types.Int64Null()
		if len(p.MinLiveMetrics) > 0 {
			liveCount = types.Int64Value(p.LiveCount())
		}
		obj, d := types.ObjectValue(stagePolicyMapAttrTypes, map[string]attr.Value{
			"min_live_metrics":        liveM,
			"min_live_count":          liveCount,
			"require_stage":           stringValue(p.RequireStage, types.StringNull()),
			"min_soak":                stringValue(p.MinSoak, types.StringNull()),
			"min_metrics":             minM,
			"max_metrics":             maxM,
			"require_signature_match": boolValue(p.RequireSignatureMatch, types.BoolNull()),
		})
		diags.Append(d...)
		out[stage] = obj
	}
	v, d := types.MapValue(objType, out)
	diags.Append(d...)
	return v, diags
}
