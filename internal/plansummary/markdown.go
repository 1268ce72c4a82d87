package plansummary

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// barWidth is how many cells a 100% weight fills.
const barWidth = 20

func bar(w *int64) string {
	if w == nil {
		return strings.Repeat(" ", barWidth)
	}
	n := int((*w*barWidth + 50) / 100)
	n = max(0, min(barWidth, n))
	return strings.Repeat("█", n) + strings.Repeat("░", barWidth-n)
}

func pct(w *int64) string {
	if w == nil {
		return "-"
	}
	return fmt.Sprintf("%d%%", *w)
}

// WriteMarkdown renders the summary for a pull-request comment.
func WriteMarkdown(w io.Writer, s *Summary) error {
	var b strings.Builder
	b.WriteString("## mlregistry plan summary\n\n")
	c := s.Counts
	fmt.Fprintf(&b, "Plan: **%d to add, %d to change, %d to replace, %d to destroy** (mlregistry resources).", c.Create, c.Update, c.Replace, c.Delete)
	switch n := len(s.Drift); n {
	case 0:
		b.WriteString(" No drift found at refresh.\n")
	case 1:
		b.WriteString(" **Drift: 1 object changed outside Terraform.**\n")
	default:
		fmt.Fprintf(&b, " **Drift: %d objects changed outside Terraform.**\n", n)
	}
	if len(s.Errors) > 0 {
		fmt.Fprintf(&b, "\n### ❌ Errors: this plan cannot apply as it is (%d)\n\n", len(s.Errors))
		for _, e := range s.Errors {
			fmt.Fprintf(&b, "- ❌ %s\n  - **Fix:** %s\n", oneLine(e.Message), oneLine(e.Fix))
		}
	} else if s.Verdict == VerdictApplies && (len(s.Models) > 0 || len(s.Endpoints) > 0) {
		b.WriteString("\nApply verdict: ✅ nothing found that stops this plan from applying as Terraform orders it.\n")
	}
	if len(s.Warnings) > 0 {
		b.WriteString("\n### ⚠️ Warnings\n\n")
		for _, wn := range s.Warnings {
			fmt.Fprintf(&b, "- ⚠️ %s\n", oneLine(wn.Message))
		}
	}
	for _, m := range s.Models {
		writeModel(&b, m)
	}
	for _, e := range s.Endpoints {
		writeEndpoint(&b, e)
	}
	if len(s.Rollouts) > 0 {
		b.WriteString("\n### Rollouts (as refreshed before this plan)\n\n")
		for _, r := range s.Rollouts {
			writeStanding(&b, r)
		}
	}
	if len(s.Drift) > 0 {
		b.WriteString("\n### Drift (changed outside Terraform, found at refresh)\n\n")
		for _, d := range s.Drift {
			fmt.Fprintf(&b, "- `%s`: %s", d.Address, d.Summary)
			if d.Reverted {
				b.WriteString(" — **this plan puts the configuration back**")
			}
			b.WriteString("\n")
			for _, h := range d.History {
				fmt.Fprintf(&b, "  - %s\n", oneLine(h))
			}
		}
	}
	if len(s.Models) == 0 && len(s.Endpoints) == 0 && len(s.Drift) == 0 && len(s.Rollouts) == 0 {
		b.WriteString("\nNo mlregistry changes.\n")
	}
	if len(s.NotFetched) > 0 {
		b.WriteString("\n### Not fetched from the registry\n\n")
		for _, n := range s.NotFetched {
			fmt.Fprintf(&b, "- %s\n", oneLine(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func writeModel(b *strings.Builder, m *ModelSummary) {
	fmt.Fprintf(b, "\n### Model `%s`\n", m.Name)
	switch m.Action {
	case ActionCreate:
		fmt.Fprintf(b, "\n➕ registered by this plan (`%s`)\n", m.Address)
	case ActionDelete:
		fmt.Fprintf(b, "\n🗑️ **destroyed** (`%s`)\n", m.Address)
	case ActionReplace:
		fmt.Fprintf(b, "\n💥 **replaced** (`%s`): %s\n", m.Address, strings.Join(m.Changed, ", "))
	case ActionUpdate:
		fmt.Fprintf(b, "\n✏️ changed in place (`%s`): %s\n", m.Address, strings.Join(m.Changed, ", "))
	}
	if len(m.Stages) > 0 {
		b.WriteString("\n**Stage changes**\n\n")
		for _, mv := range m.Stages {
			writeMove(b, mv)
		}
	}
	if len(m.Versions) > 0 {
		b.WriteString("\n**Versions**\n\n")
		for _, v := range m.Versions {
			writeVersion(b, v)
		}
	}
}

func writeMove(b *strings.Builder, mv *StageMove) {
	switch {
	case mv.To == nil:
		fmt.Fprintf(b, "- **%s: %s -> (unassigned)**", mv.Stage, mv.From)
	case mv.From == nil:
		fmt.Fprintf(b, "- **%s: (unassigned) -> %s**", mv.Stage, mv.To)
	default:
		fmt.Fprintf(b, "- **%s: %s -> %s**", mv.Stage, mv.From, mv.To)
	}
	fmt.Fprintf(b, " (`%s`", mv.Address)
	if mv.Reason != "" {
		fmt.Fprintf(b, ", reason: %q", mv.Reason)
	}
	b.WriteString(")\n")
	if mv.To == nil {
		if mv.LeftEmpty {
			fmt.Fprintf(b, "  - ❌ **%s is left EMPTY**: nothing in this plan assigns it again\n", mv.Stage)
		}
		return
	}
	if mv.FlaggedTo {
		fmt.Fprintf(b, "  - 🚩 %s is flagged\n", mv.To)
	}
	if len(mv.Metrics) > 0 {
		parts := make([]string, len(mv.Metrics))
		for i, d := range mv.Metrics {
			parts[i] = d.String()
		}
		fmt.Fprintf(b, "  - metrics: %s\n", strings.Join(parts, ", "))
	} else if mv.MetricsNote == "" {
		b.WriteString("  - metrics: none recorded\n")
	}
	if mv.MetricsNote != "" {
		fmt.Fprintf(b, "  - metrics: %s\n", mv.MetricsNote)
	}
	if len(mv.Live) > 0 {
		parts := make([]string, len(mv.Live))
		for i, l := range mv.Live {
			parts[i] = fmt.Sprintf("%s %s over %d (trusted: %s over %d)", l.Metric, strconv.FormatFloat(roundSig(l.Mean), 'g', -1, 64), l.Count,
				strconv.FormatFloat(roundSig(l.TrustedMean), 'g', -1, 64), l.TrustedCount)
		}
		fmt.Fprintf(b, "  - live metrics of %s (last %s): %s\n", mv.To, registry.FormatWindow(registry.PolicyLiveWindow), strings.Join(parts, ", "))
	}
	if mv.DryRun != nil {
		fmt.Fprintf(b, "  - stage policy (registry dry run): %s\n", verdictText(mv.DryRun))
	}
	if mv.WholePlan != nil {
		fmt.Fprintf(b, "  - stage policy (whole plan): %s\n", verdictText(mv.WholePlan))
	}
}

func verdictText(v *Verdict) string {
	var s string
	switch v.Outcome {
	case Pass:
		s = "✅ passes"
	case Fail:
		s = "❌ fails"
		if len(v.Rules) > 0 {
			s += " on " + strings.Join(v.Rules, ", ")
		}
		if v.Message != "" {
			s += " — " + v.Message
		}
	default:
		s = "❔ " + v.Message
	}
	switch {
	case v.Advice != "" && v.Outcome == Pass:
		s += " " + v.Advice
	case v.Advice != "":
		s += "; " + v.Advice
	}
	// A read token (the usual reviewer's) cannot apply anything; say so
	// only when a write token lacks the stage.
	if v.Permitted != nil && !*v.Permitted && v.PermissionRule != "scope" {
		s += " (the token that made this summary could not apply it"
		if v.Permission != "" {
			s += ": " + v.Permission
		}
		s += ")"
	}
	return oneLine(s)
}

func writeVersion(b *strings.Builder, v *VersionChange) {
	name := v.Version.String()
	if v.Version.New != "" {
		name = "new version"
	}
	detail := ""
	if len(v.Metrics) > 0 {
		detail = " — metrics " + fmtMetrics(v.Metrics)
	}
	switch v.Action {
	case ActionCreate:
		fmt.Fprintf(b, "- ➕ added: %s (`%s`)", name, v.Address)
		if v.Source != "" {
			fmt.Fprintf(b, " from `%s`", v.Source)
		}
		b.WriteString(detail)
	case ActionUpdate:
		changed := slices.Clone(v.Changed)
		if i := slices.Index(changed, "flagged"); i >= 0 {
			changed[i] = "unflagged"
			if v.Flagged {
				changed[i] = "🚩 flagged"
				if v.FlagReason != "" {
					changed[i] += " (" + v.FlagReason + ")"
				}
			}
		}
		fmt.Fprintf(b, "- ✏️ changed in place: %s (`%s`): %s", name, v.Address, strings.Join(changed, ", "))
	case ActionReplace:
		fmt.Fprintf(b, "- 💥 **REPLACED: %s (`%s`) — artifact change (%s): deleted and registered again under a new number**", name, v.Address, strings.Join(v.Changed, ", "))
		b.WriteString(detail)
	case ActionDelete:
		fmt.Fprintf(b, "- 🗑️ **destroyed**: %s (`%s`)", name, v.Address)
		b.WriteString(detail)
	default:
		fmt.Fprintf(b, "- %s: %s (`%s`)", v.Action, name, v.Address)
	}
	if v.Flagged && !slices.Contains(v.Changed, "flagged") {
		b.WriteString(" 🚩 flagged")
		if v.FlagReason != "" {
			fmt.Fprintf(b, " (%s)", v.FlagReason)
		}
	}
	if len(v.Stages) > 0 && v.Action != ActionCreate {
		fmt.Fprintf(b, " (holds %s)", strings.Join(v.Stages, ", "))
	}
	b.WriteString("\n")
}

func fmtMetrics(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := m[k]
		parts[i] = k + " " + fmtNum(&v)
	}
	return strings.Join(parts, ", ")
}

func writeEndpoint(b *strings.Builder, e *EndpointChange) {
	fmt.Fprintf(b, "\n### Endpoint `%s` (model `%s`)\n\n", e.Name, e.Model)
	switch e.Action {
	case ActionCreate:
		fmt.Fprintf(b, "➕ created (`%s`)\n", e.Address)
	case ActionDelete:
		fmt.Fprintf(b, "🗑️ **destroyed** (`%s`)\n", e.Address)
	case ActionReplace:
		fmt.Fprintf(b, "💥 **replaced** (`%s`)\n", e.Address)
	default:
		fmt.Fprintf(b, "✏️ changed in place (`%s`)\n", e.Address)
	}
	if len(e.Routes) > 0 {
		b.WriteString("\n```text\n")
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "route\tversion\tweight before\t   weight after")
		for _, r := range e.Routes {
			version := versionShift(r.VersionFrom, r.VersionTo)
			if r.FlaggedTo {
				version += " (flagged!)"
			}
			if r.Shadow != "" {
				version += " (shadow)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%4s %s\t-> %4s %s\n", r.Name, version, pct(r.WeightFrom), bar(r.WeightFrom), pct(r.WeightTo), bar(r.WeightTo))
		}
		_ = tw.Flush() // writes to a strings.Builder, which cannot fail
		b.WriteString("```\n")
		for _, r := range e.Routes {
			switch {
			case r.MatchFrom == r.MatchTo && r.MatchTo != "":
				fmt.Fprintf(b, "- route %s: header match %s (matched requests go to it whatever the weights)\n", r.Name, r.MatchTo)
			case r.MatchFrom == "" && r.MatchTo != "":
				fmt.Fprintf(b, "- route %s: header match added: %s (matched requests go to it whatever the weights)\n", r.Name, r.MatchTo)
			case r.MatchFrom != "" && r.MatchTo == "":
				fmt.Fprintf(b, "- route %s: header match removed: %s (its requests go by weight)\n", r.Name, r.MatchFrom)
			case r.MatchFrom != r.MatchTo:
				fmt.Fprintf(b, "- route %s: header match %s -> %s\n", r.Name, r.MatchFrom, r.MatchTo)
			}
		}
		for _, r := range e.Routes {
			if r.Shadow != "" {
				fmt.Fprintf(b, "- route %s: %s; its answers are discarded\n", r.Name, r.Shadow)
			}
		}
		for _, r := range e.Routes {
			if r.PolicyNote != "" {
				fmt.Fprintf(b, "- route %s (stage %s): %s\n", r.Name, e.StageTo, r.PolicyNote)
			}
		}
	}
	if e.StageFrom != e.StageTo {
		fmt.Fprintf(b, "- serves stage: %s -> %s\n", orNone(e.StageFrom), orNone(e.StageTo))
	}
	if e.GuardFrom != "" || e.GuardTo != "" {
		fmt.Fprintf(b, "- guard: %s -> %s\n", e.GuardFrom, e.GuardTo)
	}
	switch {
	case e.Action == ActionCreate && e.RolloutTo != "":
		fmt.Fprintf(b, "- rollout: %s (this create puts its weights in force at once; later changes of weights or versions roll out)\n", e.RolloutTo)
	case e.RolloutFrom != "" || e.RolloutTo != "":
		fmt.Fprintf(b, "- rollout: %s -> %s\n", e.RolloutFrom, e.RolloutTo)
	}
	if len(e.OtherAttrs) > 0 {
		fmt.Fprintf(b, "- also changes: %s\n", strings.Join(e.OtherAttrs, ", "))
	}
	if e.Rollout != nil {
		writeRolloutPlan(b, e.Rollout)
	}
}

// writeRolloutPlan shows the steps an update starts: one row per step,
// one column per route in force.
func writeRolloutPlan(b *strings.Builder, p *RolloutPlan) {
	b.WriteString("\n**Starts a rollout**")
	if p.Replaces != "" {
		fmt.Fprintf(b, ", replacing %s", p.Replaces)
	}
	fmt.Fprintf(b, ": %s.", p.Config)
	if p.Wait {
		b.WriteString(" Apply waits for it to complete (`wait_for_rollout`) and fails if it is rolled back.\n")
	} else {
		b.WriteString(" Apply returns once step 1 is in force; the registry takes the next steps as their gates pass, and rolls back at once when one fails.\n")
	}
	if p.Note != "" {
		fmt.Fprintf(b, "\nSteps: %s.\n", p.Note)
		return
	}
	b.WriteString("\n```text\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"step"}
	for _, c := range p.Columns {
		name := c.Name
		if c.Version != nil && !strings.Contains(c.Name, "@v") {
			name += " " + c.Version.String()
		}
		head = append(head, name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, r := range p.Rows {
		cells := []string{"now"}
		if r.Step > 0 {
			cells[0] = fmt.Sprintf("%d (%d%%)", r.Step, r.Percent)
		}
		for _, w := range r.Weights {
			if w < 0 {
				cells = append(cells, "-")
			} else {
				cells = append(cells, fmt.Sprintf("%d%%", w))
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	_ = tw.Flush() // writes to a strings.Builder, which cannot fail
	b.WriteString("```\n")
	for _, c := range p.Columns {
		if base, _, ok := strings.Cut(c.Name, "@v"); ok {
			fmt.Fprintf(b, "- %s is the share %s's old version keeps until the rollout moves it\n", c.Name, base)
		}
	}
}

// writeStanding is one endpoint's latest rollout.
func writeStanding(b *strings.Builder, r *RolloutStanding) {
	fmt.Fprintf(b, "- %s `%s` (`%s`): **%s**", stateIcon(r.State), r.Name, r.Address, strings.ReplaceAll(r.State, "_", " "))
	if r.active() {
		fmt.Fprintf(b, " at step %d (%d%%)", r.Step, r.Percent)
		if r.StartedAt != "" {
			fmt.Fprintf(b, ", started %s", r.StartedAt)
		}
		b.WriteString("\n")
		if r.Weights != "" {
			fmt.Fprintf(b, "  - weights in force: %s\n", r.Weights)
		}
		if r.State == "progressing" && r.NextStepAt != "" {
			fmt.Fprintf(b, "  - next step due: %s (once its gates pass)\n", r.NextStepAt)
		}
		if r.LastGate != "" {
			fmt.Fprintf(b, "  - last gate: %s\n", oneLine(r.LastGate))
		}
		return
	}
	b.WriteString("\n")
	if r.Message != "" {
		fmt.Fprintf(b, "  - %s\n", oneLine(r.Message))
	}
	if r.LastGate != "" && r.LastGate != r.Message {
		fmt.Fprintf(b, "  - last gate: %s\n", oneLine(r.LastGate))
	}
}

func versionShift(from, to *VersionRef) string {
	switch {
	case from == nil:
		return to.String()
	case to == nil:
		return from.String() + " (route removed)"
	case from.equal(to):
		return to.String()
	}
	return from.String() + " -> " + to.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
