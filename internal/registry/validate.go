package registry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Patterns of names. They are exported so the provider's validators say the
// same rule with the same words.
var (
	NamePattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	StagePattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	ChecksumPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// RouteNamePattern: route names share the stage syntax.
	RouteNamePattern = StagePattern
	// TokenNamePattern: token names share the model name syntax.
	TokenNamePattern = NamePattern
)

// Limits on sizes of free-form fields.
const (
	MaxDescriptionLen = 4096
	MaxTags           = 64
	MaxTagKeyLen      = 128
	MaxTagValueLen    = 1024
	MaxMapEntries     = 256
	MaxRoutes         = 16
	MaxReasonLen      = 1024
	DefaultPageSize   = 100
	MaxPageSize       = 1000
)

// Rule descriptions, shared by server messages and provider validators.
const (
	NameRule     = "must match ^[a-z0-9][a-z0-9._-]{0,127}$ (lower-case letters, digits, '.', '_', '-'; start with a letter or digit; at most 128 characters)"
	StageRule    = "must match ^[a-z][a-z0-9-]{0,62}$ (start with a lower-case letter; lower-case letters, digits, '-'; at most 63 characters)"
	ChecksumRule = "must be sha256:<64 lower-case hex digits>"
)

// ValidateName checks a model, endpoint or token name.
func ValidateName(field, v string) error {
	if v == "" {
		return FieldError(field, "required", "is required")
	}
	if !NamePattern.MatchString(v) {
		return FieldError(field, "pattern", "%q %s", v, NameRule)
	}
	return nil
}

// ValidateStage checks a stage name.
func ValidateStage(field, v string) error {
	if v == "" {
		return FieldError(field, "required", "is required")
	}
	if !StagePattern.MatchString(v) {
		return FieldError(field, "pattern", "%q %s", v, StageRule)
	}
	return nil
}

// ValidateChecksum checks an artifact checksum.
func ValidateChecksum(field, v string) error {
	if v == "" {
		return FieldError(field, "required", "is required")
	}
	if !ChecksumPattern.MatchString(v) {
		return FieldError(field, "pattern", "%q %s", v, ChecksumRule)
	}
	return nil
}

// ValidateFormat checks an artifact format.
func ValidateFormat(field, v string) error {
	if v == "" {
		return FieldError(field, "required", "is required")
	}
	if !slices.Contains(Formats, v) {
		return FieldError(field, "enum", "%q must be one of %s", v, strings.Join(Formats, ", "))
	}
	return nil
}

// ValidateSource checks an artifact URI: absolute, with a scheme and a path
// or host, at most 2048 bytes.
func ValidateSource(field, v string) error {
	if v == "" {
		return FieldError(field, "required", "is required")
	}
	if len(v) > 2048 {
		return FieldError(field, "max_length", "must be at most 2048 characters")
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Path == "" && u.Opaque == "") {
		return FieldError(field, "uri", "%q must be an absolute URI such as s3://bucket/key, gs://..., https://... or file:///...", v)
	}
	return nil
}

// ValidateUpstreamURL checks a route's upstream: http or https with a
// host and no credentials, query or fragment; an IP address host in its
// usual spelling and never link-local, unspecified or multicast. The
// registry's configurable upstream policy (UpstreamRule) is checked apart.
func ValidateUpstreamURL(field, v string) error {
	if v == "" {
		return FieldError(field, "required", "is required")
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return FieldError(field, "url", "%q must be an http:// or https:// URL with a host", v)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return FieldError(field, "url", "%q must not have a query or fragment", v)
	}
	if u.User != nil {
		// Never used for requests, yet shown to every reader and kept in
		// the audit log.
		return FieldError(field, "url", "must not hold a user name or password (user:password@host); give the model server its credentials another way")
	}
	if _, err := UpstreamPort(u); err != nil {
		return FieldError(field, "url", "%s", err)
	}
	// The host is read as the most liberal dialler reads it, so no
	// spelling of an address gets past the check below.
	h, err := ParseUpstreamHost(u.Hostname())
	if err != nil {
		return FieldError(field, "url", "%s", err)
	}
	if !h.Addr.IsValid() {
		return nil
	}
	ip := h.Addr.Unmap()
	if reason := staticRefusal(ip); reason != "" {
		if h.Unusual {
			return FieldError(field, "upstream_address", "%s is %s, %s, which the gateway refuses to connect to", u.Hostname(), ip, reason)
		}
		return FieldError(field, "upstream_address", "%s is %s, which the gateway refuses to connect to", ip, reason)
	}
	if h.Unusual {
		return FieldError(field, "url", "%s is the IPv4 address %s in a form resolvers read differently; write %s", u.Hostname(), ip, ip)
	}
	return nil
}

// ValidateDuration checks a Go duration string that must be > 0.
func ValidateDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, FieldError(field, "duration", "%q must be a duration such as 30m, 24h or 1h30m", v)
	}
	if d <= 0 {
		return 0, FieldError(field, "positive", "%q must be greater than zero", v)
	}
	return d, nil
}

func validateText(field, v string, maxLen int) error {
	if len(v) > maxLen {
		return FieldError(field, "max_length", "must be at most %d bytes", maxLen)
	}
	return nil
}

// ValidateTags checks a tag map.
func ValidateTags(field string, tags map[string]string) error {
	if len(tags) > MaxTags {
		return FieldError(field, "max_items", "must have at most %d entries", MaxTags)
	}
	for _, k := range sortedKeys(tags) {
		if k == "" || len(k) > MaxTagKeyLen {
			return FieldError(field, "key_length", "key %q must be 1 to %d bytes", k, MaxTagKeyLen)
		}
		if len(tags[k]) > MaxTagValueLen {
			return FieldError(fmt.Sprintf("%s.%s", field, k), "max_length", "must be at most %d bytes", MaxTagValueLen)
		}
	}
	return nil
}

func validateMetrics(field string, m map[string]float64) error {
	if len(m) > MaxMapEntries {
		return FieldError(field, "max_items", "must have at most %d entries", MaxMapEntries)
	}
	for _, k := range sortedKeys(m) {
		if k == "" || len(k) > MaxTagKeyLen {
			return FieldError(field, "key_length", "key %q must be 1 to %d bytes", k, MaxTagKeyLen)
		}
		if math.IsNaN(m[k]) || math.IsInf(m[k], 0) {
			return FieldError(field+"."+k, "finite", "must be a finite number")
		}
	}
	return nil
}

// ValidateStagePolicies checks a model's stage policies.
func ValidateStagePolicies(field string, p map[string]StagePolicy) error {
	for _, stage := range sortedKeys(p) {
		f := field + "." + stage
		if err := ValidateStage(field+" key", stage); err != nil {
			return err
		}
		pol := p[stage]
		if pol.RequireStage != "" {
			if err := ValidateStage(f+".require_stage", pol.RequireStage); err != nil {
				return err
			}
			if pol.RequireStage == stage {
				return FieldError(f+".require_stage", "self", "must name a stage other than %q", stage)
			}
		}
		if pol.MinSoak != "" {
			if pol.RequireStage == "" {
				return FieldError(f+".min_soak", "requires", "needs require_stage: min_soak is measured on the required stage")
			}
			if _, err := ValidateDuration(f+".min_soak", pol.MinSoak); err != nil {
				return err
			}
		}
		if err := validateMetrics(f+".min_metrics", pol.MinMetrics); err != nil {
			return err
		}
		if err := validateMetrics(f+".max_metrics", pol.MaxMetrics); err != nil {
			return err
		}
		if err := ValidateLiveRule(f, pol.MinLiveMetrics, pol.MinLiveCount); err != nil {
			return err
		}
	}
	return nil
}

// ValidateLiveRule checks a min_live_metrics rule and its min_live_count
// under field (a stage policy or a rollout gate).
func ValidateLiveRule(field string, floors map[string]float64, count int64) error {
	if len(floors) > MaxLiveMetricNames {
		return FieldError(field+".min_live_metrics", "max_items", "must have at most %d entries", MaxLiveMetricNames)
	}
	for _, k := range sortedKeys(floors) {
		if !ValidLiveMetricName(k) {
			return FieldError(field+".min_live_metrics", "key_pattern", "key %q must match %s (the names feedback carries)", k, LiveMetricNamePattern)
		}
		if math.IsNaN(floors[k]) || math.IsInf(floors[k], 0) {
			return FieldError(field+".min_live_metrics."+k, "finite", "must be a finite number")
		}
	}
	if count < 0 || count > MaxMinLiveCount {
		return FieldError(field+".min_live_count", "range", "must be from 1 to %d, got %d", MaxMinLiveCount, count)
	}
	if count > 0 && len(floors) == 0 {
		return FieldError(field+".min_live_count", "requires", "needs min_live_metrics: it is the count that rule judges")
	}
	return nil
}

// Validate checks a model create request.
func (m *ModelCreate) Validate() error {
	if err := ValidateName("name", m.Name); err != nil {
		return err
	}
	if err := validateText("description", m.Description, MaxDescriptionLen); err != nil {
		return err
	}
	if err := validateText("owner", m.Owner, 256); err != nil {
		return err
	}
	if err := ValidateTags("tags", m.Tags); err != nil {
		return err
	}
	return ValidateStagePolicies("stage_policies", m.StagePolicies)
}

// Validate checks a model patch.
func (p *ModelPatch) Validate() error {
	if p.Description != nil {
		if err := validateText("description", *p.Description, MaxDescriptionLen); err != nil {
			return err
		}
	}
	if p.Owner != nil {
		if err := validateText("owner", *p.Owner, 256); err != nil {
			return err
		}
	}
	if p.Tags != nil {
		if err := ValidateTags("tags", *p.Tags); err != nil {
			return err
		}
	}
	if p.StagePolicies != nil {
		return ValidateStagePolicies("stage_policies", *p.StagePolicies)
	}
	return nil
}

func validateTensors(field string, ts []TensorSpec) error {
	seen := map[string]bool{}
	for i, t := range ts {
		f := fmt.Sprintf("%s[%d]", field, i)
		if t.Name == "" {
			return FieldError(f+".name", "required", "is required")
		}
		if seen[t.Name] {
			return FieldError(f+".name", "unique", "%q is used twice", t.Name)
		}
		seen[t.Name] = true
		if t.DType == "" {
			return FieldError(f+".dtype", "required", "is required")
		}
		for j, d := range t.Shape {
			if d < -1 {
				return FieldError(fmt.Sprintf("%s.shape[%d]", f, j), "min", "must be -1 (any) or >= 0")
			}
		}
	}
	return nil
}

// Validate checks a version create request.
func (v *ModelVersionCreate) Validate() error {
	if err := ValidateSource("source", v.Source); err != nil {
		return err
	}
	if err := ValidateChecksum("checksum", v.Checksum); err != nil {
		return err
	}
	if err := ValidateFormat("format", v.Format); err != nil {
		return err
	}
	if len(v.Parameters) > MaxMapEntries {
		return FieldError("parameters", "max_items", "must have at most %d entries", MaxMapEntries)
	}
	for _, k := range sortedKeys(v.Parameters) {
		if k == "" || len(k) > MaxTagKeyLen {
			return FieldError("parameters", "key_length", "key %q must be 1 to %d bytes", k, MaxTagKeyLen)
		}
		if len(v.Parameters[k]) > MaxTagValueLen {
			return FieldError("parameters."+k, "max_length", "must be at most %d bytes", MaxTagValueLen)
		}
	}
	if err := validateMetrics("metrics", v.Metrics); err != nil {
		return err
	}
	if v.Signature != nil {
		if err := validateTensors("signature.inputs", v.Signature.Inputs); err != nil {
			return err
		}
		if err := validateTensors("signature.outputs", v.Signature.Outputs); err != nil {
			return err
		}
	}
	if err := validateText("description", v.Description, MaxDescriptionLen); err != nil {
		return err
	}
	if err := ValidateTags("tags", v.Tags); err != nil {
		return err
	}
	if !v.Flagged && v.FlagReason != "" {
		return FieldError("flag_reason", "requires", "may only be set when flagged is true")
	}
	return validateText("flag_reason", v.FlagReason, MaxReasonLen)
}

// Validate checks a version patch.
func (p *ModelVersionPatch) Validate() error {
	if p.Description != nil {
		if err := validateText("description", *p.Description, MaxDescriptionLen); err != nil {
			return err
		}
	}
	if p.Tags != nil {
		if err := ValidateTags("tags", *p.Tags); err != nil {
			return err
		}
	}
	if p.FlagReason != nil {
		if err := validateText("flag_reason", *p.FlagReason, MaxReasonLen); err != nil {
			return err
		}
	}
	return validateMetrics("add_metrics", p.AddMetrics)
}

// AddMetrics returns have with add's metrics added, and the names of the
// metrics it added, sorted. A metric have already records keeps its value:
// the same value again adds nothing, another value is an "immutable" field
// error naming the metric. The result stays within MaxMapEntries.
func AddMetrics(have, add map[string]float64) (map[string]float64, []string, error) {
	out := make(map[string]float64, len(have)+len(add))
	for k, v := range have {
		out[k] = v
	}
	var added []string
	for _, k := range sortedKeys(add) {
		v := add[k]
		if cur, ok := have[k]; ok {
			if cur != v {
				return nil, nil, FieldError("add_metrics."+k, "immutable",
					"metric %q is already recorded as %s; a recorded metric never changes (register a new version to record another value), only metrics the version does not have can be added",
					k, strconv.FormatFloat(cur, 'g', -1, 64))
			}
			continue
		}
		out[k] = v
		added = append(added, k)
	}
	if len(out) > MaxMapEntries {
		return nil, nil, FieldError("add_metrics", "max_items", "would give the version %d metrics; a version has at most %d", len(out), MaxMapEntries)
	}
	return out, added, nil
}

// Validate checks a stage assignment request.
// ValidateUnassignReason checks the reason given for unassigning a stage,
// by the rule of StageAssign's.
func ValidateUnassignReason(reason string) error {
	return validateText("reason", reason, MaxReasonLen)
}

func (s *StageAssign) Validate() error {
	if s.Version <= 0 {
		return FieldError("version", "min", "must be a version number >= 1")
	}
	return validateText("reason", s.Reason, MaxReasonLen)
}

// ValidateRoutes checks an endpoint's routes: 1..16 routes, unique names,
// versions >= 1, http(s) upstreams, weights 0..100 summing to 100; at most
// 4 shadow routes, each at weight 0 without a match and with a share in
// (0, 1], and at least one route that is not a shadow.
func ValidateRoutes(field string, routes []Route) error {
	if len(routes) == 0 {
		return FieldError(field, "min_items", "must have at least one route")
	}
	if len(routes) > MaxRoutes {
		return FieldError(field, "max_items", "must have at most %d routes", MaxRoutes)
	}
	sum, shadows := 0, 0
	seen := map[string]bool{}
	for i, r := range routes {
		f := fmt.Sprintf("%s[%d]", field, i)
		if r.Name == "" {
			return FieldError(f+".name", "required", "is required")
		}
		if !RouteNamePattern.MatchString(r.Name) {
			return FieldError(f+".name", "pattern", "%q %s", r.Name, StageRule)
		}
		if seen[r.Name] {
			return FieldError(f+".name", "unique", "%q is used by another route", r.Name)
		}
		seen[r.Name] = true
		if r.Version <= 0 {
			return FieldError(f+".version", "min", "must be a version number >= 1")
		}
		if err := ValidateUpstreamURL(f+".upstream_url", r.UpstreamURL); err != nil {
			return err
		}
		if r.Weight < 0 || r.Weight > 100 {
			return FieldError(f+".weight", "range", "%d must be between 0 and 100", r.Weight)
		}
		if err := r.Match.Validate(f + ".match"); err != nil {
			return err
		}
		if err := validateShadow(f, r); err != nil {
			return err
		}
		if r.Shadow {
			shadows++
		}
		sum += r.Weight
	}
	if shadows > MaxShadowRoutes {
		return FieldError(field, "max_shadows", "has %d shadow routes, at most %d are allowed", shadows, MaxShadowRoutes)
	}
	if shadows == len(routes) {
		return FieldError(field, "min_items", "must have at least one route that is not a shadow: shadows only get copies of requests")
	}
	if sum != 100 {
		return FieldError(field, "weights_sum", "weights must sum to 100, they sum to %d", sum)
	}
	return nil
}

// Validate checks an endpoint guard.
func (g *Guard) Validate(field string) error {
	if g == nil {
		return nil
	}
	if math.IsNaN(g.MaxErrorRate) || g.MaxErrorRate <= 0 || g.MaxErrorRate > 1 {
		return FieldError(field+".max_error_rate", "range", "must be greater than 0 and at most 1")
	}
	if g.MinRequests < 1 {
		return FieldError(field+".min_requests", "min", "must be at least 1")
	}
	d, err := ValidateDuration(field+".window", g.Window)
	if err != nil {
		return err
	}
	if d < time.Second || d > 24*time.Hour {
		return FieldError(field+".window", "range", "must be between 1s and 24h")
	}
	return g.LiveMetric.Validate(field + ".live_metric")
}

var headerNamePattern = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")

// MaxMatchValueLen bounds a route match's value.
const MaxMatchValueLen = 256

// unmatchableHeaders are the headers a route may not match on: hop-by-hop
// headers do not survive a proxy in front of the registry, Host and the
// credentials would route by who the caller is or which name it used
// (and leak secrets into the configuration), and the registry's own
// headers are set by gateways, not by clients.
var unmatchableHeaders = map[string]bool{
	"Connection":        true,
	"Keep-Alive":        true,
	"Te":                true,
	"Trailer":           true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
	"Host":              true,
	"Authorization":     true,
	"Cookie":            true,
	"X-Model-Version":   true,
	"X-Route":           true,
	"X-Mlregistry-Hops": true,
	"X-Request-Id":      true,
	"X-Forwarded-For":   true,
	"X-Forwarded-Proto": true,
	"X-Forwarded-Host":  true,
	"Forwarded":         true,
	"Content-Length":    true,
}

// MatchHeaderRule says which headers a route match refuses.
const MatchHeaderRule = "must not be a hop-by-hop header (Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*), Host, Authorization, Cookie, Content-Length or a header the gateway sets (X-Model-Version, X-Route, X-Mlregistry-*, X-Request-Id, X-Forwarded-*, Forwarded)"

// Validate checks a route's header match (nil means none).
func (m *RouteMatch) Validate(field string) error {
	if m == nil {
		return nil
	}
	if err := ValidateMatchHeader(field+".header", m.Header); err != nil {
		return err
	}
	return ValidateMatchValue(field+".value", m.Value)
}

// ValidateMatchHeader checks the header a route matches on.
func ValidateMatchHeader(field, h string) error {
	if h == "" {
		return FieldError(field, "required", "is required")
	}
	if !headerNamePattern.MatchString(h) {
		return FieldError(field, "header_name", "%q must be an HTTP header name", h)
	}
	c := http.CanonicalHeaderKey(h)
	if unmatchableHeaders[c] || strings.HasPrefix(c, "Proxy-") || strings.HasPrefix(c, "X-Mlregistry-") {
		return FieldError(field, "match_header", "%q %s", h, MatchHeaderRule)
	}
	return nil
}

// ValidateMatchValue checks the value a route's header match compares.
func ValidateMatchValue(field, v string) error {
	if v == "" {
		return FieldError(field, "required", "must not be empty")
	}
	if len(v) > MaxMatchValueLen {
		return FieldError(field, "max_length", "must be at most %d bytes", MaxMatchValueLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return FieldError(field, "header_value", "must be a header value: printable characters, no control characters")
		}
	}
	// HTTP drops the spaces around a header value, so a request could
	// never carry such a value.
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		return FieldError(field, "header_value", "must not start or end with a space")
	}
	return nil
}

// ValidateStickyHeader checks an HTTP header name ("" means not sticky).
func ValidateStickyHeader(field, v string) error {
	if v != "" && !headerNamePattern.MatchString(v) {
		return FieldError(field, "header_name", "%q must be an HTTP header name", v)
	}
	return nil
}

// Validate checks an endpoint create request.
func (e *EndpointCreate) Validate() error {
	if err := ValidateName("name", e.Name); err != nil {
		return err
	}
	if err := ValidateName("model", e.Model); err != nil {
		return err
	}
	if e.Stage != "" {
		if err := ValidateStage("stage", e.Stage); err != nil {
			return err
		}
	}
	if err := ValidateRoutes("routes", e.Routes); err != nil {
		return err
	}
	if err := ValidateStickyHeader("sticky_header", e.StickyHeader); err != nil {
		return err
	}
	if err := ValidateEndpointTimeout("timeout", e.Timeout); err != nil {
		return err
	}
	if err := e.Guard.Validate("guard"); err != nil {
		return err
	}
	return e.Rollout.Validate("rollout", e.Guard)
}

// Validate checks an endpoint patch.
func (p *EndpointPatch) Validate() error {
	if p.Stage != nil && *p.Stage != "" {
		if err := ValidateStage("stage", *p.Stage); err != nil {
			return err
		}
	}
	if p.Routes != nil {
		if err := ValidateRoutes("routes", *p.Routes); err != nil {
			return err
		}
	}
	if p.StickyHeader != nil {
		if err := ValidateStickyHeader("sticky_header", *p.StickyHeader); err != nil {
			return err
		}
	}
	if p.ClearGuard && p.Guard != nil {
		return FieldError("clear_guard", "exclusive", "cannot be combined with guard")
	}
	if p.Timeout != nil {
		if err := ValidateEndpointTimeout("timeout", *p.Timeout); err != nil {
			return err
		}
	}
	if err := p.Guard.Validate("guard"); err != nil {
		return err
	}
	if p.ClearRollout && p.Rollout != nil {
		return FieldError("clear_rollout", "exclusive", "cannot be combined with rollout")
	}
	// The stored guard is checked against the bake where the patch is
	// applied; here only the patch's own guard is known.
	return p.Rollout.Validate("rollout", p.Guard)
}

// ValidateScope checks a token scope.
func ValidateScope(field string, s Scope) error {
	if !s.valid() {
		return FieldError(field, "enum", "%q must be one of read, write, admin, serve", s)
	}
	return nil
}

// NormalizePageSize applies the default and checks the maximum.
func NormalizePageSize(n int) (int, error) {
	if n == 0 {
		return DefaultPageSize, nil
	}
	if n < 0 || n > MaxPageSize {
		return 0, FieldError("page_size", "range", "must be between 1 and %d", MaxPageSize)
	}
	return n, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// NewRequestID makes a request ID (32 hex digits) for a request that
// brought no valid one. The API and every gateway path use it, so an ID
// has one format whichever path answered.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// MaxRequestIDLen bounds a client-supplied X-Request-ID.
const MaxRequestIDLen = 128

// ValidRequestID reports whether a client's X-Request-ID may be reused: it
// ends up in logs and audit events, so only a short ID in a safe alphabet
// (letters, digits, '.', '_', '-') is taken; others are replaced.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// Bounds of an endpoint's upstream timeout.
const (
	MinEndpointTimeout     = 100 * time.Millisecond
	MaxEndpointTimeout     = 10 * time.Minute
	DefaultEndpointTimeout = 30 * time.Second
)

// ValidateEndpointTimeout checks an endpoint timeout: "" (the default,
// 30s) or a Go duration from 100ms to 10m.
func ValidateEndpointTimeout(field, s string) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return FieldError(field, "duration", "%q is not a duration such as 30s or 2m", s)
	}
	if d < MinEndpointTimeout || d > MaxEndpointTimeout {
		return FieldError(field, "range", "%s must be from %s to %s", s, MinEndpointTimeout, MaxEndpointTimeout)
	}
	return nil
}

// EndpointTimeout is the upstream timeout an endpoint's Timeout means.
func EndpointTimeout(s string) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d >= MinEndpointTimeout && d <= MaxEndpointTimeout {
		return d
	}
	return DefaultEndpointTimeout
}
