// Package provider is the mlregistry Terraform provider, built on
// terraform-plugin-framework: registered models, model versions, stage
// assignments and serving endpoints as resources, and look-ups of them as
// data sources.
//
// It talks to the registry only through internal/client and uses the
// registry package for its rules and wire types; it must not import the
// server, the store or the app.
package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Environment variables read when the provider block leaves a setting out.
const (
	EnvAddress = "MLREGISTRY_ADDR"
	EnvToken   = "MLREGISTRY_TOKEN"
	EnvCAFile  = "MLREGISTRY_CA_FILE"
)

var _ provider.Provider = (*mlregistryProvider)(nil)

// New returns a constructor of the provider for providerserver. version is
// the release version (set by ldflags in main), sent in the User-Agent.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &mlregistryProvider{version: version}
	}
}

type mlregistryProvider struct {
	version string
	// clientOptions, when set, adjusts the client's options after the
	// provider block is read (tests: a lossy network needs more retries
	// with shorter waits than a user would want).
	clientOptions func(*client.Options)
}

type providerModel struct {
	Address    types.String `tfsdk:"address"`
	Token      types.String `tfsdk:"token"`
	Timeout    types.String `tfsdk:"timeout"`
	MaxRetries types.Int64  `tfsdk:"max_retries"`
	CAFile     types.String `tfsdk:"ca_file"`
}

func (p *mlregistryProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "mlregistry"
	resp.Version = p.version
}

func (p *mlregistryProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Manages registered models, model versions, stage assignments and serving endpoints in an mlregistry model registry.",
		Attributes: map[string]schema.Attribute{
			"address": schema.StringAttribute{
				MarkdownDescription: "Base URL of the registry, e.g. `http://127.0.0.1:8080`. Defaults to the `" + EnvAddress + "` environment variable.",
				Optional:            true,
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "Bearer token (`mlr_...`) used to authenticate to the registry. Defaults to the `" + EnvToken + "` environment variable. A `read` token can plan; applying needs `write` (and a token restricted to some stages may only assign those).",
				Optional:            true,
				Sensitive:           true,
			},
			"timeout": schema.StringAttribute{
				MarkdownDescription: "Timeout of each HTTP request to the registry, as a duration such as `30s` or `2m`. Defaults to `30s`.",
				Optional:            true,
				Validators:          []validator.String{durationValidator{}},
			},
			"ca_file": schema.StringAttribute{
				MarkdownDescription: "Path of a PEM file with the certificate authority (or authorities) that signed an `https://` registry's certificate, trusted besides the system's: for a registry behind a private CA. Defaults to the `" + EnvCAFile + "` environment variable.",
				Optional:            true,
			},
			"max_retries": schema.Int64Attribute{
				MarkdownDescription: "How many times a request is retried after a connection error or a 429, 502, 503 or 504 answer, with exponential backoff that honours `Retry-After`. Defaults to `4`; `0` disables retries.",
				Optional:            true,
				Validators:          []validator.Int64{int64validator.Between(0, 20)},
			},
		},
	}
}

func (p *mlregistryProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Values that depend on resources not yet created: resources will say
	// the provider is not configured if they are needed before then.
	if cfg.Address.IsUnknown() || cfg.Token.IsUnknown() || cfg.Timeout.IsUnknown() || cfg.MaxRetries.IsUnknown() || cfg.CAFile.IsUnknown() {
		tflog.Debug(ctx, "provider configuration has unknown values, deferring the registry client")
		return
	}

	address := os.Getenv(EnvAddress)
	if !cfg.Address.IsNull() {
		address = cfg.Address.ValueString()
	}
	token := os.Getenv(EnvToken)
	if !cfg.Token.IsNull() {
		token = cfg.Token.ValueString()
	}
	if address == "" {
		resp.Diagnostics.AddAttributeError(path.Root("address"), "Missing registry address",
			"The provider needs the registry's base URL: set `address` in the provider block or the "+EnvAddress+" environment variable, e.g. http://127.0.0.1:8080.")
	}
	if token == "" {
		resp.Diagnostics.AddAttributeError(path.Root("token"), "Missing registry token",
			"The registry needs a bearer token: set `token` in the provider block or the "+EnvToken+" environment variable. Create one with `mlregistry token create --name terraform --scope write`.")
	}
	caFile := os.Getenv(EnvCAFile)
	if !cfg.CAFile.IsNull() {
		caFile = cfg.CAFile.ValueString()
	}
	opts := client.Options{
		Address:   address,
		Token:     token,
		CAFile:    caFile,
		UserAgent: "terraform-provider-mlregistry/" + p.version,
		Logger: func(ctx context.Context, msg string, fields map[string]any) {
			tflog.Debug(ctx, msg, fields)
		},
	}
	if !cfg.Timeout.IsNull() {
		d, err := time.ParseDuration(cfg.Timeout.ValueString())
		if err != nil || d <= 0 {
			resp.Diagnostics.AddAttributeError(path.Root("timeout"), "Invalid timeout", fmt.Sprintf("%q must be a duration such as 30s or 2m.", cfg.Timeout.ValueString()))
		}
		opts.Timeout = d
	}
	opts.MaxRetries = client.DefaultMaxRetries
	if !cfg.MaxRetries.IsNull() {
		opts.MaxRetries = int(cfg.MaxRetries.ValueInt64())
		if opts.MaxRetries == 0 {
			opts.MaxRetries = -1 // client: negative disables retries
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}

	if p.clientOptions != nil {
		p.clientOptions(&opts)
	}
	c, err := client.New(opts)
	if err != nil {
		if caFile != "" && strings.HasPrefix(err.Error(), "CA file") {
			resp.Diagnostics.AddAttributeError(path.Root("ca_file"), "Invalid CA file",
				err.Error()+"\n\nSet `ca_file` (or "+EnvCAFile+") to a PEM file with the certificate of the CA that signed the registry's certificate.")
			return
		}
		resp.Diagnostics.AddAttributeError(path.Root("address"), "Invalid registry address", err.Error())
		return
	}
	ctx = tflog.SetField(ctx, "registry_address", c.Address())
	tflog.Debug(ctx, "checking the registry connection and token")
	if err := c.Ping(ctx); err != nil {
		switch {
		case errors.Is(err, registry.ErrUnauthenticated):
			resp.Diagnostics.AddAttributeError(path.Root("token"), "Registry token rejected",
				fmt.Sprintf("The registry at %s rejected the token (is it revoked, mistyped or from another registry?): %s", c.Address(), err))
		case errors.Is(err, registry.ErrPermissionDenied):
			resp.Diagnostics.AddAttributeError(path.Root("token"), "Registry token not allowed to read",
				fmt.Sprintf("The registry at %s accepted the token but refused to list models: %s", c.Address(), err))
		case errors.Is(err, registry.ErrUnavailable):
			resp.Diagnostics.AddAttributeError(path.Root("address"), "Registry unreachable",
				fmt.Sprintf("%s\n\nCheck the provider's `address` (or %s) and that the registry is running.", err, EnvAddress))
		default:
			resp.Diagnostics.AddError("Registry check failed",
				fmt.Sprintf("Listing models at %s to check the connection failed: %s", c.Address(), err))
		}
		return
	}
	resp.ResourceData = &resourceData{client: c, adopted: &adoptedVersions{}}
	resp.DataSourceData = c
}

func (p *mlregistryProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewModelResource,
		NewModelVersionResource,
		NewStageAssignmentResource,
		NewEndpointResource,
	}
}

func (p *mlregistryProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewModelDataSource,
		NewModelVersionDataSource,
		NewModelVersionsDataSource,
		NewEndpointDataSource,
	}
}
