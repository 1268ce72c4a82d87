package provider

import (
	"context"
	"fmt"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var (
	_ datasource.DataSource              = (*modelVersionsDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*modelVersionsDataSource)(nil)
)

// NewModelVersionsDataSource is the mlregistry_model_versions data source.
func NewModelVersionsDataSource() datasource.DataSource { return &modelVersionsDataSource{} }

type modelVersionsDataSource struct {
	client *client.Client
}

type modelVersionsDataSourceModel struct {
	ID       types.String `tfsdk:"id"`
	Model    types.String `tfsdk:"model"`
	Stage    types.String `tfsdk:"stage"`
	Tag      types.String `tfsdk:"tag"`
	Flagged  types.Bool   `tfsdk:"flagged"`
	OrderBy  types.String `tfsdk:"order_by"`
	Versions types.List   `tfsdk:"versions"`
}

var orderByPattern = regexp.MustCompile(`^(version|metrics\.[^\s]+)( (asc|desc))?$`)

func (d *modelVersionsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_model_versions"
}

func (d *modelVersionsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	item := versionDataAttributes()
	item["version"] = schema.Int64Attribute{MarkdownDescription: "The version number.", Computed: true}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the versions of a model, optionally filtered by stage, tag or flag, in version order or by a metric.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{MarkdownDescription: "The model's name.", Computed: true},
			"model": schema.StringAttribute{
				MarkdownDescription: describe("Name of the registered model.", registry.NameRule),
				Required:            true,
				Validators:          []validator.String{nameValidator()},
			},
			"stage": schema.StringAttribute{
				MarkdownDescription: "Only versions that hold this stage now.",
				Optional:            true,
				Validators:          []validator.String{stageValidator()},
			},
			"tag": schema.StringAttribute{
				MarkdownDescription: "Only versions with this tag: `key` (any value) or `key=value`.",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"flagged": schema.BoolAttribute{
				MarkdownDescription: "Only flagged (`true`) or only unflagged (`false`) versions. Leave out for both.",
				Optional:            true,
			},
			"order_by": schema.StringAttribute{
				MarkdownDescription: "`version` (default), `version desc`, `metrics.<name>` or `metrics.<name> desc`. Versions without the metric come last.",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.RegexMatches(orderByPattern, "must be version, version desc, metrics.<name> or metrics.<name> desc")},
			},
			"versions": schema.ListNestedAttribute{
				MarkdownDescription: "The matching versions, in the requested order. Empty values are null.",
				Computed:            true,
				NestedObject:        schema.NestedAttributeObject{Attributes: item},
			},
		},
	}
}

func (d *modelVersionsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = providerClient(req.ProviderData, &resp.Diagnostics)
}

func (d *modelVersionsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg modelVersionsDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model := cfg.Model.ValueString()
	f := registry.VersionFilter{Stage: cfg.Stage.ValueString(), Tag: cfg.Tag.ValueString(), OrderBy: cfg.OrderBy.ValueString()}
	if isKnown(cfg.Flagged) {
		b := cfg.Flagged.ValueBool()
		f.Flagged = &b
	}
	versions, err := d.client.AllVersions(ctx, model, f)
	if err != nil {
		addAPIError(&resp.Diagnostics, "list the versions of", fmt.Sprintf("model %q", model), err)
		return
	}
	objType := types.ObjectType{AttrTypes: versionFieldsAttrTypes}
	elems := make([]attr.Value, 0, len(versions))
	for i := range versions {
		var vf versionFields
		resp.Diagnostics.Append(vf.fromAPI(ctx, &versions[i], versionFields{})...)
		obj, diags := types.ObjectValueFrom(ctx, versionFieldsAttrTypes, vf)
		resp.Diagnostics.Append(diags...)
		elems = append(elems, obj)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	list, diags := types.ListValue(objType, elems)
	resp.Diagnostics.Append(diags...)
	cfg.ID = types.StringValue(model)
	cfg.Versions = list
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}
