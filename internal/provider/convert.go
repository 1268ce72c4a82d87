package provider

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Null versus empty.
//
// The registry answers "" for an unset string, {} for an unset map, [] for
// an unset list and omits false booleans in policies. Terraform tells null
// (attribute left out) from empty (attribute set to "" or {}), and a
// resource whose state says {} while the configuration says nothing shows
// a diff forever. The one rule, used by every resource and data source:
//
//	an empty value from the registry is stored as null, unless the value
//	Terraform already had for it (the plan after create/update, the state
//	on read) is a known empty value, which is then kept.
//
// So `tags` left out stays null, `tags = {}` stays {}, an import (nothing
// known yet) yields null, and a value set outside Terraform shows up as
// drift against a configuration that leaves it out.

// objectAsOptions converts objects strictly: null and unknown objects
// are checked by the callers before As.
var objectAsOptions = basetypes.ObjectAsOptions{}

func isKnown(v attr.Value) bool { return !v.IsNull() && !v.IsUnknown() }

func stringValue(s string, prior types.String) types.String {
	if s == "" && !isKnown(prior) {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func boolValue(b bool, prior types.Bool) types.Bool {
	if !b && !isKnown(prior) {
		return types.BoolNull()
	}
	return types.BoolValue(b)
}

func stringMapValue(ctx context.Context, m map[string]string, prior types.Map) (types.Map, diag.Diagnostics) {
	if len(m) == 0 && !isKnown(prior) {
		return types.MapNull(types.StringType), nil
	}
	if m == nil {
		m = map[string]string{}
	}
	return types.MapValueFrom(ctx, types.StringType, m)
}

func stringListValue(ctx context.Context, s []string, prior types.List) (types.List, diag.Diagnostics) {
	if len(s) == 0 && !isKnown(prior) {
		return types.ListNull(types.StringType), nil
	}
	if s == nil {
		s = []string{}
	}
	return types.ListValueFrom(ctx, types.StringType, s)
}

// stringMapFrom converts a Terraform map to Go; null becomes an empty map
// (a patch that clears).
func stringMapFrom(ctx context.Context, m types.Map) (map[string]string, diag.Diagnostics) {
	out := map[string]string{}
	if !isKnown(m) {
		return out, nil
	}
	diags := m.ElementsAs(ctx, &out, false)
	return out, diags
}

// timeValue formats a server time for state; the zero time is null.
func timeValue(t time.Time) types.String {
	if t.IsZero() {
		return types.StringNull()
	}
	return types.StringValue(t.UTC().Format(time.RFC3339Nano))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// providerClient extracts the client the provider configured; nil (and no
// error) while the provider configuration is still unknown.
// resourceData is what the provider hands its resources: the client, and
// what the resources of one Terraform run share about it.
type resourceData struct {
	client *client.Client
	// adopted are the versions a create adopted in this run.
	adopted *adoptedVersions
}

// adoptedVersions records the versions a create adopted instead of
// registering, so that a destroy later in the same run leaves them be. A
// create_before_destroy replacement planned on an artifact field unknown
// at plan time may find that field unchanged at apply: the create then
// adopts the very version it replaces, and Terraform destroys the replaced
// object next, which would delete the version just adopted. Terraform runs
// one provider process per run, so this lives as long as one apply.
type adoptedVersions struct {
	mu       sync.Mutex
	versions map[versionKey]bool
}

type versionKey struct {
	model   string
	version int64
}

func (a *adoptedVersions) add(model string, version int64) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.versions == nil {
		a.versions = map[versionKey]bool{}
	}
	a.versions[versionKey{model, version}] = true
}

func (a *adoptedVersions) has(model string, version int64) bool {
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.versions[versionKey{model, version}]
}

func providerClient(data any, diags *diag.Diagnostics) *client.Client {
	if data == nil {
		return nil
	}
	if rd, ok := data.(*resourceData); ok {
		return rd.client
	}
	c, ok := data.(*client.Client)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("Expected *client.Client, got %T. Please report this issue to the provider developers.", data))
		return nil
	}
	return c
}

// notConfigured reports an operation that needs the registry while the
// provider has no client (its configuration depended on unknown values).
func notConfigured(diags *diag.Diagnostics) {
	diags.AddError("Provider not configured",
		"The mlregistry provider's configuration was not known when this operation ran, so it has no registry connection. "+
			"Make the provider's address and token known at plan time (variables or environment variables rather than values from resources being created).")
}

func asRegistryError(err error, target **registry.Error) bool { return errors.As(err, target) }

// addAPIError turns a client error into a diagnostic whose words say what
// happened and what to do. what names the object, e.g. `model "churn"`.
func addAPIError(diags *diag.Diagnostics, action, what string, err error, attrPath ...path.Path) {
	summary := fmt.Sprintf("Could not %s %s", action, what)
	detail := err.Error()
	switch {
	case errors.Is(err, registry.ErrPreconditionFailed):
		summary = fmt.Sprintf("%s changed outside this plan", capitalize(what))
		detail = fmt.Sprintf("The registry refused to %s %s because it was changed (by someone or something else) since Terraform last read it, "+
			"so applying this plan would overwrite a change it has not seen.\n\n"+
			"Run `terraform plan` (or `terraform apply -refresh-only`) again to read the current state, review the new plan, then apply it.\n\nRegistry answer: %s",
			action, what, err)
	case errors.Is(err, registry.ErrPolicyViolation):
		summary = fmt.Sprintf("Stage policy violation: could not %s %s", action, what)
	case errors.Is(err, registry.ErrUnauthenticated):
		summary = "Registry token rejected"
	case errors.Is(err, registry.ErrPermissionDenied):
		summary = fmt.Sprintf("Permission denied: could not %s %s", action, what)
		detail += "\n\nThe token's scope (read, write, admin) or its stage restriction does not allow this."
	case errors.Is(err, registry.ErrUnavailable):
		summary = "Registry unavailable"
	}
	if len(attrPath) > 0 {
		diags.AddAttributeError(attrPath[0], summary, detail)
		return
	}
	diags.AddError(summary, detail)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}

// addNotPermitted reports a change the dry run says the provider's token
// may not make although the registry's rules allow it. With a write token
// that is an error: the apply would fail, so the plan does. A read token
// cannot apply anything; it is the token for scheduled drift plans and
// pull-request plans, whose job is to show the change, so it gets a
// warning that applying needs another token.
//
// readOnly comes from the registry's rule for the refusal: "scope" means
// the token has no write scope. Any other rule (token_stages, or one this
// provider does not know) counts as a write token, so the plan fails
// rather than passes.
func addNotPermitted(diags *diag.Diagnostics, p path.Path, change, permission, needed string, readOnly bool) {
	if readOnly {
		diags.AddAttributeWarning(p, "Applying this plan needs a write token",
			fmt.Sprintf("The registry's rules allow this plan to %s, but the provider's token is read-only: %s\n\n"+
				"A read token can plan (scheduled drift checks, pull-request plans). Apply with %s.", change, permission, needed))
		return
	}
	diags.AddAttributeError(p, "Permission denied",
		fmt.Sprintf("The registry's rules allow this plan to %s, but the provider's token may not make this change, so applying it would fail: %s\n\n"+
			"Plan and apply with %s.", change, permission, needed))
}
