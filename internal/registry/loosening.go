package registry

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Loosening is one change that makes a stage policy or an endpoint guard
// let through something it stopped before. A reviewer must see each one:
// a loosened production policy looks like any other edit in a diff.
type Loosening struct {
	// Stage is the stage whose policy loosens; "" for a guard.
	Stage string `json:"stage,omitempty"`
	// Rule names what loosened: "stage_policy" (the whole policy removed),
	// "require_stage", "min_soak", "min_metrics.<metric>",
	// "max_metrics.<metric>", "require_signature_match",
	// "min_live_metrics.<metric>", "min_live_count", "guard" (the
	// whole guard removed), "guard.max_error_rate", "guard.min_requests",
	// "guard.window", "stage" (an endpoint's stage binding removed or
	// changed; Stage is the stage it was bound to).
	Rule string `json:"rule"`
	// Before and After are the rule's values, "removed" when it is gone.
	Before string `json:"before"`
	After  string `json:"after"`
}

// Removed is the After of a rule that no longer exists.
const Removed = "removed"

// String is the sentence a plan shows, e.g. "Loosens the production stage
// policy: min_metrics.auc 0.85 -> removed".
func (l Loosening) String() string {
	if l.Rule == "stage" {
		return fmt.Sprintf("Unbinds the endpoint from the %s stage: its routes are no longer checked against the %s stage policy (stage %s -> %s)", l.Stage, l.Stage, l.Before, l.After)
	}
	if l.Stage == "" {
		return fmt.Sprintf("Weakens the endpoint guard: %s %s -> %s", l.Rule, l.Before, l.After)
	}
	return fmt.Sprintf("Loosens the %s stage policy: %s %s -> %s", l.Stage, l.Rule, l.Before, l.After)
}

// PolicyLoosenings lists every way after allows an assignment that before
// refused, stage by stage (sorted by stage, then rule). Tightening and
// new rules are not listed. A stage whose policy disappears whole is one
// Loosening with rule "stage_policy"; a policy with no rule at all allows
// everything, so removing it loosens nothing.
func PolicyLoosenings(before, after map[string]StagePolicy) []Loosening {
	var out []Loosening
	for _, stage := range slices.Sorted(maps.Keys(before)) {
		b := before[stage]
		a, ok := after[stage]
		if !ok {
			if desc := describePolicy(b); desc != "" {
				out = append(out, Loosening{Stage: stage, Rule: "stage_policy", Before: desc, After: Removed})
			}
			continue
		}
		out = append(out, stageLoosenings(stage, b, a)...)
	}
	return out
}

func stageLoosenings(stage string, b, a StagePolicy) []Loosening {
	var out []Loosening
	add := func(rule, before, after string) {
		out = append(out, Loosening{Stage: stage, Rule: rule, Before: before, After: after})
	}
	if b.RequireStage != "" && a.RequireStage != b.RequireStage {
		// Another required stage is a different gate, not a stricter one:
		// a version may satisfy it without ever passing the old one.
		add("require_stage", b.RequireStage, orRemoved(a.RequireStage))
	}
	if b.MinSoak != "" {
		switch {
		case a.MinSoak == "":
			add("min_soak", b.MinSoak, Removed)
		case soakShorter(a.MinSoak, b.MinSoak):
			add("min_soak", b.MinSoak, a.MinSoak)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b.MinMetrics)) {
		av, ok := a.MinMetrics[k]
		switch {
		case !ok:
			add("min_metrics."+k, formatNumber(b.MinMetrics[k]), Removed)
		case av < b.MinMetrics[k]:
			add("min_metrics."+k, formatNumber(b.MinMetrics[k]), formatNumber(av))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b.MaxMetrics)) {
		av, ok := a.MaxMetrics[k]
		switch {
		case !ok:
			add("max_metrics."+k, formatNumber(b.MaxMetrics[k]), Removed)
		case av > b.MaxMetrics[k]:
			add("max_metrics."+k, formatNumber(b.MaxMetrics[k]), formatNumber(av))
		}
	}
	if b.RequireSignatureMatch && !a.RequireSignatureMatch {
		add("require_signature_match", "true", "false")
	}
	for _, k := range slices.Sorted(maps.Keys(b.MinLiveMetrics)) {
		av, ok := a.MinLiveMetrics[k]
		switch {
		case !ok:
			add("min_live_metrics."+k, formatNumber(b.MinLiveMetrics[k]), Removed)
		case av < b.MinLiveMetrics[k]:
			add("min_live_metrics."+k, formatNumber(b.MinLiveMetrics[k]), formatNumber(av))
		}
	}
	// Fewer values make a mean that passes by chance likelier; the count
	// matters only while some floor it judges survives.
	if len(b.MinLiveMetrics) > 0 && len(a.MinLiveMetrics) > 0 && a.LiveCount() < b.LiveCount() {
		add("min_live_count", strconv.FormatInt(b.LiveCount(), 10), strconv.FormatInt(a.LiveCount(), 10))
	}
	slices.SortStableFunc(out, func(x, y Loosening) int { return cmp.Compare(x.Rule, y.Rule) })
	return out
}

// soakShorter reports whether soak a is shorter than soak b. A value that
// does not parse is compared as text: validation refuses it elsewhere, and
// a change of text is worth a warning.
func soakShorter(a, b string) bool {
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	if errA != nil || errB != nil {
		return a != b
	}
	return da < db
}

// describePolicy renders a policy's rules for a warning ("" when it has
// none).
func describePolicy(p StagePolicy) string {
	var parts []string
	if p.RequireStage != "" {
		parts = append(parts, "require_stage="+p.RequireStage)
	}
	if p.MinSoak != "" {
		parts = append(parts, "min_soak="+p.MinSoak)
	}
	for _, k := range slices.Sorted(maps.Keys(p.MinMetrics)) {
		parts = append(parts, "min_metrics."+k+"="+formatNumber(p.MinMetrics[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(p.MaxMetrics)) {
		parts = append(parts, "max_metrics."+k+"="+formatNumber(p.MaxMetrics[k]))
	}
	if p.RequireSignatureMatch {
		parts = append(parts, "require_signature_match=true")
	}
	for _, k := range slices.Sorted(maps.Keys(p.MinLiveMetrics)) {
		parts = append(parts, "min_live_metrics."+k+"="+formatNumber(p.MinLiveMetrics[k]))
	}
	if len(p.MinLiveMetrics) > 0 {
		parts = append(parts, "min_live_count="+strconv.FormatInt(p.LiveCount(), 10))
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// GuardLoosenings lists every way guard after acts later than before (or
// never): the guard removed, a higher error rate tolerated, more requests
// needed before it judges, a wider window diluting a burst of errors.
func GuardLoosenings(before, after *Guard) []Loosening {
	if before == nil {
		return nil
	}
	if after == nil {
		return []Loosening{{Rule: "guard", Before: describeGuard(before), After: Removed}}
	}
	var out []Loosening
	if after.MaxErrorRate > before.MaxErrorRate {
		out = append(out, Loosening{Rule: "guard.max_error_rate", Before: formatNumber(before.MaxErrorRate), After: formatNumber(after.MaxErrorRate)})
	}
	if after.MinRequests > before.MinRequests {
		out = append(out, Loosening{Rule: "guard.min_requests", Before: strconv.FormatInt(before.MinRequests, 10), After: strconv.FormatInt(after.MinRequests, 10)})
	}
	if soakShorter(before.Window, after.Window) {
		out = append(out, Loosening{Rule: "guard.window", Before: before.Window, After: after.Window})
	}
	if b, a := before.LiveMetric, after.LiveMetric; b != nil {
		switch {
		case a == nil:
			out = append(out, Loosening{Rule: "guard.live_metric", Before: describeLiveGuard(b), After: Removed})
		case a.Metric != b.Metric:
			// Another metric is a different rule, not a stricter one.
			out = append(out, Loosening{Rule: "guard.live_metric.metric", Before: b.Metric, After: a.Metric})
		default:
			if a.Floor < b.Floor {
				out = append(out, Loosening{Rule: "guard.live_metric.floor", Before: formatNumber(b.Floor), After: formatNumber(a.Floor)})
			}
			if a.MinCount > b.MinCount {
				out = append(out, Loosening{Rule: "guard.live_metric.min_count", Before: strconv.FormatInt(b.MinCount, 10), After: strconv.FormatInt(a.MinCount, 10)})
			}
			if soakShorter(b.Window, a.Window) {
				out = append(out, Loosening{Rule: "guard.live_metric.window", Before: b.Window, After: a.Window})
			}
		}
	}
	return out
}

func describeLiveGuard(g *GuardLiveMetric) string {
	return fmt.Sprintf("{metric=%s, floor=%s, min_count=%d, window=%s}", g.Metric, formatNumber(g.Floor), g.MinCount, g.Window)
}

// StageBindingLoosenings lists the loosening in an endpoint's stage
// binding going from before to after: the registry checks the routes of
// an endpoint bound to a stage against that stage's policy, so unbinding
// it lets its routes serve versions the policy refuses. Binding another
// stage is a different gate, not a stricter one, as with require_stage.
func StageBindingLoosenings(before, after string) []Loosening {
	if before == "" || before == after {
		return nil
	}
	return []Loosening{{Stage: before, Rule: "stage", Before: before, After: orRemoved(after)}}
}

func describeGuard(g *Guard) string {
	s := fmt.Sprintf("{max_error_rate=%s, min_requests=%d, window=%s", formatNumber(g.MaxErrorRate), g.MinRequests, g.Window)
	if g.LiveMetric != nil {
		s += ", live_metric=" + describeLiveGuard(g.LiveMetric)
	}
	return s + "}"
}

func orRemoved(s string) string {
	if s == "" {
		return Removed
	}
	return s
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
