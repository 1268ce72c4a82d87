package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var (
	_ datasource.DataSource                     = (*modelVersionDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*modelVersionDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*modelVersionDataSource)(nil)
	_ datasource.DataSourceWithValidateConfig   = (*modelVersionDataSource)(nil)
)

// NewModelVersionDataSource is the mlregistry_model_version data source.
func NewModelVersionDataSource() datasource.DataSource { return &modelVersionDataSource{} }

type modelVersionDataSource struct {
	client *client.Client
}

type modelVersionDataSourceModel struct {
	ID            types.String `tfsdk:"id"`
	Model         types.String `tfsdk:"model"`
	Stage         types.String `tfsdk:"stage"`
	Latest        types.Bool   `tfsdk:"latest"`
	BestMetric    types.String `tfsdk:"best_metric"`
	BestDirection types.String `tfsdk:"best_direction"`
	LiveMetrics   types.Map    `tfsdk:"live_metrics"`
	versionFields
}

// versionFieldsAttrTypes is the object type of versionFields, for lists
// of versions.
var versionFieldsAttrTypes = map[string]attr.Type{
	"version":     types.Int64Type,
	"source":      types.StringType,
	"checksum":    types.StringType,
	"format":      types.StringType,
	"parameters":  types.MapType{ElemType: types.StringType},
	"metrics":     types.MapType{ElemType: types.NumberType},
	"lineage":     types.ObjectType{AttrTypes: lineageAttrTypes},
	"signature":   types.ObjectType{AttrTypes: signatureAttrTypes},
	"description": types.StringType,
	"tags":        types.MapType{ElemType: types.StringType},
	"flagged":     types.BoolType,
	"flag_reason": types.StringType,
	"stages":      types.ListType{ElemType: types.StringType},
	"created_at":  types.StringType,
	"created_by":  types.StringType,
	"updated_at":  types.StringType,
	"revision":    types.Int64Type,
}

func (d *modelVersionDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_model_version"
}

func (d *modelVersionDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := versionDataAttributes()
	attrs["id"] = schema.StringAttribute{MarkdownDescription: "`<model>/<version>`.", Computed: true}
	attrs["model"] = schema.StringAttribute{
		MarkdownDescription: describe("Name of the registered model.", registry.NameRule),
		Required:            true,
		Validators:          []validator.String{nameValidator()},
	}
	attrs["version"] = schema.Int64Attribute{
		MarkdownDescription: "Look up this version number. Also set to the number of the version found by the other look-ups.",
		Optional:            true,
		Computed:            true,
		Validators:          []validator.Int64{int64validator.AtLeast(1)},
	}
	attrs["stage"] = schema.StringAttribute{
		MarkdownDescription: "Look up the version the stage (e.g. `production`) points at now.",
		Optional:            true,
		Validators:          []validator.String{stageValidator()},
	}
	attrs["live_metrics"] = schema.MapNestedAttribute{
		MarkdownDescription: fmt.Sprintf("The version's live metrics over the last %s from every endpoint, keyed by metric: `count` and `mean` of every feedback value, "+
			"`trusted_count` and `trusted_mean` of those sent by write and admin tokens (what stage policies and guards judge). Empty when no feedback arrived.",
			registry.FormatWindow(registry.PolicyLiveWindow)),
		Computed: true,
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"count":         schema.Int64Attribute{MarkdownDescription: "Feedback values.", Computed: true},
			"mean":          schema.Float64Attribute{MarkdownDescription: "Their mean.", Computed: true},
			"trusted_count": schema.Int64Attribute{MarkdownDescription: "Feedback values from write and admin tokens.", Computed: true},
			"trusted_mean":  schema.Float64Attribute{MarkdownDescription: "Their mean (0 when there are none).", Computed: true},
		}},
	}
	attrs["latest"] = schema.BoolAttribute{
		MarkdownDescription: "Set to `true` to look up the latest (highest-numbered) version that is not flagged.",
		Optional:            true,
	}
	attrs["best_metric"] = schema.StringAttribute{
		MarkdownDescription: "Look up the unflagged version with the best value of this metric (e.g. `auc`); versions without the metric are never chosen.",
		Optional:            true,
		Validators:          []validator.String{stringvalidator.LengthBetween(1, registry.MaxTagKeyLen)},
	}
	attrs["best_direction"] = schema.StringAttribute{
		MarkdownDescription: "With `best_metric`: `max` (default) when higher is better, `min` when lower is better.",
		Optional:            true,
		Validators: []validator.String{
			stringvalidator.OneOf("max", "min"),
			stringvalidator.AlsoRequires(path.MatchRoot("best_metric")),
		},
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Finds one version of a model by exactly one of: its number (`version`), the stage pointing at it (`stage`), " +
			"the latest unflagged version (`latest = true`), or the unflagged version with the best metric (`best_metric`). " +
			"Returns every attribute of the version; empty values are null.",
		Attributes: attrs,
	}
}

func (d *modelVersionDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = providerClient(req.ProviderData, &resp.Diagnostics)
}

func (d *modelVersionDataSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{
		datasourcevalidator.ExactlyOneOf(
			path.MatchRoot("version"), path.MatchRoot("stage"), path.MatchRoot("latest"), path.MatchRoot("best_metric"),
		),
	}
}

func (d *modelVersionDataSource) ValidateConfig(ctx context.Context, req datasource.ValidateConfigRequest, resp *datasource.ValidateConfigResponse) {
	var latest types.Bool
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("latest"), &latest)...)
	if isKnown(latest) && !latest.ValueBool() {
		resp.Diagnostics.AddAttributeError(path.Root("latest"), "latest must be true",
			"Set latest = true to look up the latest unflagged version, or leave it out and use version, stage or best_metric.")
	}
}

func (d *modelVersionDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg modelVersionDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	model := cfg.Model.ValueString()
	v, summary, err := d.find(ctx, cfg)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			resp.Diagnostics.AddError(summary, err.Error())
			return
		}
		addAPIError(&resp.Diagnostics, "look up a version of", fmt.Sprintf("model %q", model), err)
		return
	}
	cfg.ID = types.StringValue(fmt.Sprintf("%s/%d", v.Model, v.Version))
	resp.Diagnostics.Append(cfg.fromAPI(ctx, v, versionFields{})...)
	lm, err := d.client.VersionLiveMetrics(ctx, v.Model, v.Version, registry.FormatWindow(registry.PolicyLiveWindow))
	if err != nil {
		addAPIError(&resp.Diagnostics, "read the live metrics of", fmt.Sprintf("version %d of model %q", v.Version, v.Model), err)
		return
	}
	var d2 diag.Diagnostics
	cfg.LiveMetrics, d2 = liveMetricsValue(lm.Metrics, lm.Trusted)
	resp.Diagnostics.Append(d2...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}

// find runs the one look-up the configuration asks for. On not_found the
// summary says which look-up found nothing.
func (d *modelVersionDataSource) find(ctx context.Context, cfg modelVersionDataSourceModel) (*registry.ModelVersion, string, error) {
	model := cfg.Model.ValueString()
	switch {
	case isKnown(cfg.Version):
		v, err := d.client.GetVersion(ctx, model, cfg.Version.ValueInt64())
		return v, fmt.Sprintf("Version %d of model %q not found", cfg.Version.ValueInt64(), model), err
	case isKnown(cfg.Stage):
		stage := cfg.Stage.ValueString()
		a, err := d.client.GetStage(ctx, model, stage)
		if err != nil {
			return nil, fmt.Sprintf("Stage %q of model %q is not assigned", stage, model), err
		}
		v, err := d.client.GetVersion(ctx, model, a.Version)
		return v, fmt.Sprintf("Version %d of model %q (in stage %q) not found", a.Version, model, stage), err
	case cfg.Latest.ValueBool():
		return d.first(ctx, model, "version desc", "", fmt.Sprintf("Model %q has no unflagged version", model))
	default:
		metric := cfg.BestMetric.ValueString()
		order := "metrics." + metric + " desc"
		if cfg.BestDirection.ValueString() == "min" {
			order = "metrics." + metric
		}
		return d.first(ctx, model, order, metric, fmt.Sprintf("Model %q has no unflagged version with metric %q", model, metric))
	}
}

// first returns the first unflagged version in the given order; with
// metric set, it must have that metric (versions without it sort last).
func (d *modelVersionDataSource) first(ctx context.Context, model, orderBy, metric, summary string) (*registry.ModelVersion, string, error) {
	unflagged := false
	page, err := d.client.ListVersions(ctx, model, registry.VersionFilter{
		ListOptions: registry.ListOptions{PageSize: 1},
		Flagged:     &unflagged,
		OrderBy:     orderBy,
	})
	if err != nil {
		return nil, fmt.Sprintf("Model %q not found", model), err
	}
	if len(page.Items) == 0 {
		return nil, summary, registry.Errorf(registry.CodeNotFound, "no version of model %q matches", model)
	}
	v := page.Items[0]
	if _, ok := v.Metrics[metric]; metric != "" && !ok {
		return nil, summary, registry.Errorf(registry.CodeNotFound, "no unflagged version of model %q has metric %q", model, metric)
	}
	return &v, "", nil
}

// versionDataAttributes are the computed attributes of a version in data
// sources. version is left out: each data source declares it.
func versionDataAttributes() map[string]schema.Attribute {
	tensors := func(what string) schema.ListNestedAttribute {
		return schema.ListNestedAttribute{
			MarkdownDescription: fmt.Sprintf("The model's %s, in order.", what),
			Computed:            true,
			NestedObject: schema.NestedAttributeObject{
				Attributes: map[string]schema.Attribute{
					"name":  schema.StringAttribute{MarkdownDescription: "Tensor or column name.", Computed: true},
					"dtype": schema.StringAttribute{MarkdownDescription: "Element type.", Computed: true},
					"shape": schema.ListAttribute{MarkdownDescription: "Dimensions; `-1` means any size.", ElementType: types.Int64Type, Computed: true},
				},
			},
		}
	}
	return map[string]schema.Attribute{
		"source":     schema.StringAttribute{MarkdownDescription: "URI of the artifact.", Computed: true},
		"checksum":   schema.StringAttribute{MarkdownDescription: "Checksum of the artifact (`sha256:<hex>`).", Computed: true},
		"format":     schema.StringAttribute{MarkdownDescription: "Artifact format.", Computed: true},
		"parameters": schema.MapAttribute{MarkdownDescription: "Training parameters.", ElementType: types.StringType, Computed: true},
		"metrics":    schema.MapAttribute{MarkdownDescription: "Evaluation metrics.", ElementType: types.NumberType, Computed: true},
		"lineage": schema.SingleNestedAttribute{
			MarkdownDescription: "Where the version came from.",
			Computed:            true,
			Attributes: map[string]schema.Attribute{
				"run_id":     schema.StringAttribute{MarkdownDescription: "Training run ID.", Computed: true},
				"git_commit": schema.StringAttribute{MarkdownDescription: "Commit of the training code.", Computed: true},
				"dataset":    schema.StringAttribute{MarkdownDescription: "Dataset name or URI.", Computed: true},
				"code_uri":   schema.StringAttribute{MarkdownDescription: "URI of the training code.", Computed: true},
			},
		},
		"signature": schema.SingleNestedAttribute{
			MarkdownDescription: "The version's input/output contract.",
			Computed:            true,
			Attributes: map[string]schema.Attribute{
				"inputs":  tensors("inputs"),
				"outputs": tensors("outputs"),
			},
		},
		"description": schema.StringAttribute{MarkdownDescription: "Free-form description.", Computed: true},
		"tags":        schema.MapAttribute{MarkdownDescription: "Key/value tags.", ElementType: types.StringType, Computed: true},
		"flagged":     schema.BoolAttribute{MarkdownDescription: "Whether the version is flagged as bad.", Computed: true},
		"flag_reason": schema.StringAttribute{MarkdownDescription: "Why the version is flagged.", Computed: true},
		"stages":      schema.ListAttribute{MarkdownDescription: "Stages that point at this version now, sorted.", ElementType: types.StringType, Computed: true},
		"created_at":  schema.StringAttribute{MarkdownDescription: "When the version was registered (RFC 3339).", Computed: true},
		"created_by":  schema.StringAttribute{MarkdownDescription: "Name of the token that registered the version.", Computed: true},
		"updated_at":  schema.StringAttribute{MarkdownDescription: "When the version was last changed (RFC 3339).", Computed: true},
		"revision":    schema.Int64Attribute{MarkdownDescription: "The version's revision (its ETag).", Computed: true},
	}
}

var liveMetricAttrTypes = map[string]attr.Type{
	"count": types.Int64Type, "mean": types.Float64Type, "trusted_count": types.Int64Type, "trusted_mean": types.Float64Type,
}

// liveMetricsValue is a live_metrics map: every metric of all, with its
// trusted part.
func liveMetricsValue(all, trusted map[string]registry.LiveMetric) (types.Map, diag.Diagnostics) {
	var diags diag.Diagnostics
	elems := make(map[string]attr.Value, len(all))
	for name, m := range all {
		t := trusted[name]
		obj, d := types.ObjectValue(liveMetricAttrTypes, map[string]attr.Value{
			"count": types.Int64Value(m.Count), "mean": types.Float64Value(m.Mean),
			"trusted_count": types.Int64Value(t.Count), "trusted_mean": types.Float64Value(t.Mean),
		})
		diags.Append(d...)
		elems[name] = obj
	}
	v, d := types.MapValue(types.ObjectType{AttrTypes: liveMetricAttrTypes}, elems)
	diags.Append(d...)
	return v, diags
}
