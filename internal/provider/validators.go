package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The validators below say the registry's own rules in the registry's own
// words (registry.NameRule, StageRule, ChecksumRule, the Validate*
// functions), so `terraform validate` and the server fail the same way.

func nameValidator() validator.String {
	return stringvalidator.RegexMatches(registry.NamePattern, registry.NameRule)
}

func stageValidator() validator.String {
	return stringvalidator.RegexMatches(registry.StagePattern, registry.StageRule)
}

func checksumValidator() validator.String {
	return stringvalidator.RegexMatches(registry.ChecksumPattern, registry.ChecksumRule)
}

func formatValidator() validator.String {
	return stringvalidator.OneOf(registry.Formats...)
}

// registryStringValidator runs one of the registry's Validate functions.
type registryStringValidator struct {
	desc  string
	check func(v string) error
}

func (v registryStringValidator) Description(context.Context) string { return v.desc }

func (v registryStringValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v registryStringValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value", ruleMessage(err))
	}
}

// ruleMessage strips the registry's "field: " prefix, since Terraform
// already names the attribute.
func ruleMessage(err error) string {
	var e *registry.Error
	msg := err.Error()
	if asRegistryError(err, &e) && e.Field != "" {
		msg = strings.TrimPrefix(msg, e.Field+": ")
	}
	return msg
}

func sourceValidator() validator.String {
	return registryStringValidator{
		desc:  "must be an absolute URI such as s3://bucket/key, gs://..., https://... or file:///...",
		check: func(v string) error { return registry.ValidateSource("source", v) },
	}
}

func upstreamURLValidator() validator.String {
	return registryStringValidator{
		desc:  "must be an http:// or https:// URL with a host",
		check: func(v string) error { return registry.ValidateUpstreamURL("upstream_url", v) },
	}
}

func headerNameValidator() validator.String {
	return registryStringValidator{
		desc:  "must be an HTTP header name",
		check: func(v string) error { return registry.ValidateStickyHeader("sticky_header", v) },
	}
}

func matchHeaderValidator() validator.String {
	return registryStringValidator{
		desc:  "must be an HTTP header name and " + registry.MatchHeaderRule,
		check: func(v string) error { return registry.ValidateMatchHeader("header", v) },
	}
}

func matchValueValidator() validator.String {
	return registryStringValidator{
		desc:  "must be a non-empty header value",
		check: func(v string) error { return registry.ValidateMatchValue("value", v) },
	}
}

// durationValidator accepts a Go duration greater than zero ("30m", "24h").
type durationValidator struct{}

func (durationValidator) Description(context.Context) string {
	return "must be a duration such as 30m, 24h or 1h30m"
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := registry.ValidateDuration(req.Path.String(), req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration", ruleMessage(err))
	}
}

// describe joins a description with the rule it enforces, for schema
// MarkdownDescriptions; a pattern in the rule is set as code so Markdown
// leaves its underscores alone.
func describe(text, rule string) string {
	if rest, ok := strings.CutPrefix(rule, "must match "); ok {
		if pattern, explain, ok := strings.Cut(rest, " "); ok {
			rule = "must match `" + pattern + "` " + explain
		}
	}
	return fmt.Sprintf("%s It %s.", text, rule)
}
