package plansummary

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The provider's plan-time dry run judges each stage move against the
// registry as it is now. wholePlan judges each move with the plan's own
// moves of the same model applied: first only those Terraform applies
// before it (the ones it depends on), then all of them, and says what
// ordering or second apply the move needs. It runs the registry's own
// rules (registry.CheckAssignment) on data fetched from the registry plus
// the plan's moves.
func (b *builder) wholePlan() {
	for _, m := range b.sortedModels() {
		policies, policyOK := b.policies(m.Name)
		for _, mv := range m.Stages {
			if mv.To == nil {
				continue // an unassign has no policy
			}
			mv.WholePlan = b.judge(m, mv, policies, policyOK)
		}
	}
}

// policies returns the stage policies the apply will run under: the
// planned ones when the plan manages the model, else the registry's.
func (b *builder) policies(model string) (map[string]registry.StagePolicy, bool) {
	for _, rc := range b.ours() {
		if rc.Type != typeModel {
			continue
		}
		var after modelVals
		if ok, _ := decodeVals(rc.Change.After, &after); ok && after.Name == model {
			if unknownAt(rc.Change.AfterUnknown, "stage_policies") || unknownAt(rc.Change.AfterUnknown, "stage_policy") {
				return nil, false
			}
			out := after.policies()
			return out, true
		}
	}
	if mod := b.f.model(model); mod != nil {
		return mod.StagePolicies, true
	}
	if b.f.online() {
		return nil, true // not in the registry and not in the plan: no policy
	}
	b.f.note(fmt.Sprintf("stage policies of %q", model), nil)
	return nil, false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sentinel numbers stand for versions created by this plan, so the
// registry's rules can match them in a stage's history.
func (b *builder) sentinel(ref *VersionRef) int64 {
	if ref.New == "" {
		return ref.Version
	}
	addrs := make([]string, 0, len(b.byAddr))
	for a := range b.byAddr {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	return -int64(slices.Index(addrs, configAddress(ref.New)) + 1)
}

var sentinelRE = regexp.MustCompile(`version -(\d+)`)

// nameSentinels rewrites "version -1" in a rule's message to the new
// version's address.
func (b *builder) nameSentinels(msg string) string {
	addrs := make([]string, 0, len(b.byAddr))
	for a := range b.byAddr {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	return sentinelRE.ReplaceAllStringFunc(msg, func(s string) string {
		n, _ := strconv.Atoi(sentinelRE.FindStringSubmatch(s)[1])
		if n >= 1 && n <= len(addrs) {
			return "the new version (" + b.byAddr[addrs[n-1]].address + ")"
		}
		return s
	})
}

func (b *builder) judge(m *ModelSummary, mv *StageMove, policies map[string]registry.StagePolicy, policyOK bool) *Verdict {
	if !policyOK {
		return &Verdict{Outcome: Unknown, Message: "not checked: the model's stage policies are not known (" + b.f.offline + ")"}
	}
	if mv.To.New == "" && mv.To.Version == 0 {
		v := &Verdict{Outcome: Unknown, Message: "not checked: which version this stage gets is unknown until apply"}
		// Which version it is cannot be judged, but when the policy needs
		// a stage this plan also assigns, the two must be applied in order:
		// Terraform applies unordered resources together, and the registry
		// judges require_stage against the history as it is at that moment.
		if p, ok := policies[mv.Stage]; ok && p.RequireStage != "" {
			for _, o := range m.Stages {
				if o != mv && o.To != nil && o.Stage == p.RequireStage && !b.ix.dependsOn(mv.Address, o.Address) {
					v.Needs = append(v.Needs, o.Address)
				}
			}
			if len(v.Needs) > 0 {
				v.Advice = fmt.Sprintf("its policy needs the version to have held %s, which %s assigns in this plan, but nothing orders the two: add `depends_on = [%s]` to `%s`",
					p.RequireStage, codeList(v.Needs), strings.Join(v.Needs, ", "), configAddress(mv.Address))
			}
		}
		return v
	}
	pv := b.versionInfo(m.Name, mv.To, "stage policy check of the "+mv.Stage+" move")
	if pv == nil {
		return &Verdict{Outcome: Unknown, Message: fmt.Sprintf("not checked: %s could not be fetched", mv.To)}
	}
	var policy *registry.StagePolicy
	if p, ok := policies[mv.Stage]; ok {
		policy = &p
	}
	var earlier, others []*StageMove
	for _, o := range m.Stages {
		if o == mv || o.To == nil || o.Stage == mv.Stage {
			continue
		}
		others = append(others, o)
		if b.ix.dependsOn(mv.Address, o.Address) {
			earlier = append(earlier, o)
		}
	}
	check := func(applied []*StageMove) (bool, error) {
		c := registry.AssignmentCheck{
			Stage: mv.Stage, Policy: policy, Now: b.now,
			Version: &registry.ModelVersion{Model: m.Name, Version: b.sentinel(mv.To), Metrics: pv.metrics, Flagged: pv.flagged, FlagReason: pv.flagReason, Signature: pv.signature},
		}
		if policy != nil && policy.RequireStage != "" {
			h, ok := b.f.history(m.Name, policy.RequireStage, "require_stage check of the "+mv.Stage+" move")
			if !ok && !b.f.online() {
				return false, nil
			}
			h = slices.Clone(h)
			var last int64
			for _, e := range h {
				last = max(last, e.ID)
			}
			for _, o := range applied {
				if o.Stage == policy.RequireStage {
					last++
					h = append(h, registry.StageHistoryEntry{ID: last, Model: m.Name, Stage: o.Stage, Action: registry.StageActionAssign, Version: b.sentinel(o.To), AssignedAt: b.now})
				}
			}
			c.RequiredHistory = h
		}
		if policy != nil && len(policy.MinLiveMetrics) > 0 {
			if mv.To.New != "" {
				// A version this plan creates has no feedback yet.
				c.Live = map[string]registry.LiveSums{}
			} else if live, ok := b.f.trustedLive(m.Name, mv.To.Version, "min_live_metrics check of the "+mv.Stage+" move"); ok {
				c.Live = live
			}
		}
		if policy != nil && policy.RequireSignatureMatch {
			if a, ok := b.f.stage(m.Name, mv.Stage, "require_signature_match check"); ok && a != nil {
				if cur := b.versionInfo(m.Name, &VersionRef{Version: a.Version}, "require_signature_match check"); cur != nil {
					c.Current = &registry.ModelVersion{Model: m.Name, Version: a.Version, Signature: cur.signature}
				}
			}
		}
		return true, registry.CheckAssignment(c)
	}
	ok, errNow := check(nil)
	if !ok {
		return &Verdict{Outcome: Unknown, Message: "not checked: the history of stage " + policy.RequireStage + " is needed for require_stage (" + b.f.offline + ")"}
	}
	_, errOrdered := check(earlier)
	_, errAll := check(others)
	needed := func(set []*StageMove) []string {
		var out []string
		for _, o := range set {
			if policy != nil && o.Stage == policy.RequireStage {
				out = append(out, o.Address)
			}
		}
		return out
	}
	switch {
	case errOrdered == nil && errNow == nil:
		return &Verdict{Outcome: Pass}
	case errOrdered == nil:
		n := needed(earlier)
		return &Verdict{Outcome: Pass, Needs: n, Advice: fmt.Sprintf("once %s is applied, which this move depends on (Terraform applies that first)", codeList(n))}
	case errAll == nil:
		var n []string
		for _, a := range needed(others) {
			if !slices.ContainsFunc(earlier, func(o *StageMove) bool { return o.Address == a }) {
				n = append(n, a)
			}
		}
		v := b.failVerdict(errOrdered)
		v.Needs = n
		v.Advice = fmt.Sprintf("it passes only after %s, but nothing orders the two and Terraform may apply them together: add `depends_on = [%s]` to `%s`, or apply %s first (`terraform apply -target=%s`) and this move in a second apply",
			codeList(n), strings.Join(n, ", "), configAddress(mv.Address), codeList(n), firstOr(n))
		return v
	}
	v := b.failVerdict(errAll)
	var pe *registry.Error
	if errors.As(errAll, &pe) && len(v.Rules) == 1 && v.Rules[0] == "min_soak" && len(needed(others)) > 0 {
		v.Needs = needed(others)
		v.Advice = fmt.Sprintf("even after %s the version has not held %s for %s: apply that move now and this one in a second apply once the soak is over", codeList(v.Needs), policy.RequireStage, policy.MinSoak)
	} else if len(others) > 0 {
		v.Advice = "it fails even with this plan's other moves applied first"
	}
	return v
}

func (b *builder) failVerdict(err error) *Verdict {
	var e *registry.Error
	if !errors.As(err, &e) {
		return &Verdict{Outcome: Fail, Message: err.Error()}
	}
	return &Verdict{Outcome: Fail, Rules: policyRules(e), Message: b.nameSentinels(e.Message)}
}

func codeList(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = "`" + a + "`"
	}
	return strings.Join(q, " and ")
}

func firstOr(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	return addrs[0]
}
