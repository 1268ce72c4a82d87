package registry

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// AssignmentCheck is everything the stage rules look at. The store fills
// it inside the write transaction, so the decision and the write see the
// same data.
type AssignmentCheck struct {
	Stage string
	// Policy is the model's policy for Stage, nil when there is none.
	Policy *StagePolicy
	// Version is the version to assign.
	Version *ModelVersion
	// Current is the version holding Stage now, nil when unassigned.
	Current *ModelVersion
	// RequiredHistory is the history of Policy.RequireStage, oldest first.
	RequiredHistory []StageHistoryEntry
	// Live is the version's trusted feedback per metric over
	// PolicyLiveWindow ending Now, from every endpoint. Nil means it could
	// not be gathered (a plan read offline): min_live_metrics is then not
	// judged. The store always gathers it.
	Live map[string]LiveSums
	Now  time.Time
}

// DefaultMinLiveCount is the fewest feedback values per metric a
// min_live_metrics rule judges when the policy sets no min_live_count: a
// mean of a handful of answers says little.
const DefaultMinLiveCount = 100

// MaxMinLiveCount bounds min_live_count.
const MaxMinLiveCount = 1_000_000_000

// PolicyLiveWindow is the window min_live_metrics is judged over: the
// trusted feedback of the last day, from every endpoint serving the
// version.
const PolicyLiveWindow = 24 * time.Hour

// LiveCount is the policy's min_live_count, or its default.
func (p StagePolicy) LiveCount() int64 {
	if p.MinLiveCount > 0 {
		return p.MinLiveCount
	}
	return DefaultMinLiveCount
}

// CheckAssignment applies the rules for assigning a version to a stage:
// a flagged version is never promoted (reported alone: the fix is to
// unflag it), then every rule of the stage policy in a fixed order. The
// answer is a policy_violation error whose Rule names the first rule that
// failed and whose message lists every rule that failed, so one plan shows
// everything to fix.
func CheckAssignment(c AssignmentCheck) error {
	v := c.Version
	if v.Flagged {
		reason := ""
		if v.FlagReason != "" {
			reason = " (" + v.FlagReason + ")"
		}
		return PolicyError("flagged", "version %d of %q is flagged%s and cannot be assigned to stage %q", v.Version, v.Model, reason, c.Stage)
	}
	p := c.Policy
	if p == nil {
		return nil
	}
	var failed []*Error
	fail := func(rule, format string, args ...any) { failed = append(failed, PolicyError(rule, format, args...)) }
	if p.RequireStage != "" {
		held, longest := StageHold(c.RequiredHistory, v.Version, c.Now)
		switch {
		case !held:
			fail("require_stage", "version %d must hold or have held stage %q before it can be assigned to %q", v.Version, p.RequireStage, c.Stage)
		case p.MinSoak != "":
			soak, err := time.ParseDuration(p.MinSoak)
			if err != nil {
				fail("min_soak", "policy has an invalid min_soak %q", p.MinSoak)
			} else if longest < soak {
				fail("min_soak", "version %d held stage %q for %s, policy for %q needs at least %s", v.Version, p.RequireStage, longest.Truncate(time.Second), c.Stage, p.MinSoak)
			}
		}
	}
	for _, name := range sortedKeys(p.MinMetrics) {
		floor := p.MinMetrics[name]
		got, ok := v.Metrics[name]
		if !ok {
			fail("min_metrics", "version %d has no metric %q, policy for %q needs %s >= %g", v.Version, name, c.Stage, name, floor)
		} else if got < floor {
			fail("min_metrics", "version %d has %s = %g, policy for %q needs >= %g", v.Version, name, got, c.Stage, floor)
		}
	}
	for _, name := range sortedKeys(p.MaxMetrics) {
		ceiling := p.MaxMetrics[name]
		got, ok := v.Metrics[name]
		if !ok {
			fail("max_metrics", "version %d has no metric %q, policy for %q needs %s <= %g", v.Version, name, c.Stage, name, ceiling)
		} else if got > ceiling {
			fail("max_metrics", "version %d has %s = %g, policy for %q needs <= %g", v.Version, name, got, c.Stage, ceiling)
		}
	}
	if len(p.MinLiveMetrics) > 0 && c.Live != nil {
		need := p.LiveCount()
		for _, name := range sortedKeys(p.MinLiveMetrics) {
			floor := p.MinLiveMetrics[name]
			got := c.Live[name].Summarize()
			switch {
			case got.Count < need:
				fail("min_live_metrics", "version %d has %d trusted feedback values of live metric %q in the last %s (mean %g), policy for %q needs at least %d (min_live_count) with mean >= %g",
					v.Version, got.Count, name, FormatWindow(PolicyLiveWindow), got.Mean, c.Stage, need, floor)
			case got.Mean < floor:
				fail("min_live_metrics", "version %d has live %s = %g over %d trusted feedback values in the last %s, policy for %q needs mean >= %g",
					v.Version, name, got.Mean, got.Count, FormatWindow(PolicyLiveWindow), c.Stage, floor)
			}
		}
	}
	if p.RequireSignatureMatch && c.Current != nil && c.Current.Version != v.Version {
		if !SignaturesEqual(c.Current.Signature, v.Signature) {
			fail("require_signature_match", "version %d's signature differs from version %d, which holds or last held %q: %s", v.Version, c.Current.Version, c.Stage, signatureDiff(c.Current.Signature, v.Signature))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	out := *failed[0]
	msgs := make([]string, len(failed))
	for i, e := range failed {
		msgs[i] = e.Message
	}
	out.Message = strings.Join(msgs, "; ")
	return &out
}

// StageHold walks a stage's history (oldest first) and reports whether
// version ever held the stage and its longest uninterrupted hold, counting
// a hold that continues now up to now.
func StageHold(history []StageHistoryEntry, version int64, now time.Time) (held bool, longest time.Duration) {
	entries := append([]StageHistoryEntry(nil), history...)
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].AssignedAt.Equal(entries[j].AssignedAt) {
			return entries[i].ID < entries[j].ID
		}
		return entries[i].AssignedAt.Before(entries[j].AssignedAt)
	})
	var holder int64
	var since time.Time
	closeHold := func(at time.Time) {
		if holder == version {
			held = true
			if d := at.Sub(since); d > longest {
				longest = d
			}
		}
	}
	for _, e := range entries {
		next := int64(0)
		if e.Action != StageActionUnassign {
			next = e.Version
		}
		if next == holder {
			continue
		}
		closeHold(e.AssignedAt)
		holder, since = next, e.AssignedAt
	}
	closeHold(now)
	if longest < 0 {
		longest = 0
	}
	return held, longest
}

func normSig(s *Signature) Signature {
	if s == nil {
		return Signature{}
	}
	n := Signature{}
	for _, t := range s.Inputs {
		if len(t.Shape) == 0 {
			t.Shape = nil
		}
		n.Inputs = append(n.Inputs, t)
	}
	for _, t := range s.Outputs {
		if len(t.Shape) == 0 {
			t.Shape = nil
		}
		n.Outputs = append(n.Outputs, t)
	}
	return n
}

// SignaturesEqual compares two signatures; nil equals empty.
func SignaturesEqual(a, b *Signature) bool {
	return reflect.DeepEqual(normSig(a), normSig(b))
}

func describeTensors(ts []TensorSpec) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		dims := make([]string, 0, len(t.Shape))
		for _, d := range t.Shape {
			dims = append(dims, fmt.Sprint(d))
		}
		parts = append(parts, fmt.Sprintf("%s:%s[%s]", t.Name, t.DType, strings.Join(dims, ",")))
	}
	return "(" + strings.Join(parts, " ") + ")"
}

func signatureDiff(cur, next *Signature) string {
	a, b := normSig(cur), normSig(next)
	if !reflect.DeepEqual(a.Inputs, b.Inputs) {
		return "inputs " + describeTensors(b.Inputs) + " != " + describeTensors(a.Inputs)
	}
	return "outputs " + describeTensors(b.Outputs) + " != " + describeTensors(a.Outputs)
}
