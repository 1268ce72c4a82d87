package plansummary

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Attribute values of our resources as the plan JSON holds them. Pointers
// are nil for null or unknown values.
type modelVals struct {
	Name          string                `json:"name"`
	StagePolicies map[string]policyVals `json:"stage_policies"`
	// StagePolicy is the same as blocks (one per stage).
	StagePolicy []stagePolicyVals `json:"stage_policy"`
}

type stagePolicyVals struct {
	Stage string `json:"stage"`
	policyVals
}

// policies returns the stage policies as the registry holds them, from
// either schema shape.
func (m *modelVals) policies() map[string]registry.StagePolicy {
	out := map[string]registry.StagePolicy{}
	add := func(stage string, p policyVals) {
		out[stage] = registry.StagePolicy{
			RequireStage: deref(p.RequireStage), MinSoak: deref(p.MinSoak),
			MinMetrics: p.MinMetrics, MaxMetrics: p.MaxMetrics,
			RequireSignatureMatch: p.RequireSignatureMatch != nil && *p.RequireSignatureMatch,
			MinLiveMetrics:        p.MinLiveMetrics,
		}
		if p.MinLiveCount != nil {
			pol := out[stage]
			pol.MinLiveCount = *p.MinLiveCount
			out[stage] = pol
		}
	}
	for stage, p := range m.StagePolicies {
		add(stage, p)
	}
	for _, p := range m.StagePolicy {
		add(p.Stage, p.policyVals)
	}
	return out
}

type policyVals struct {
	RequireStage          *string            `json:"require_stage"`
	MinSoak               *string            `json:"min_soak"`
	MinMetrics            map[string]float64 `json:"min_metrics"`
	MaxMetrics            map[string]float64 `json:"max_metrics"`
	RequireSignatureMatch *bool              `json:"require_signature_match"`
	MinLiveMetrics        map[string]float64 `json:"min_live_metrics"`
	MinLiveCount          *int64             `json:"min_live_count"`
}

type versionVals struct {
	Model      string             `json:"model"`
	Version    *int64             `json:"version"`
	Source     *string            `json:"source"`
	Checksum   *string            `json:"checksum"`
	Metrics    map[string]float64 `json:"metrics"`
	Flagged    *bool              `json:"flagged"`
	FlagReason *string            `json:"flag_reason"`
	Stages     []string           `json:"stages"`
	Signature  *signatureVals     `json:"signature"`
	UpdatedAt  *string            `json:"updated_at"`
}

// signatureVals is the signature in either schema shape: inputs and
// outputs lists, or input and output blocks.
type signatureVals struct {
	Inputs  []registry.TensorSpec `json:"inputs"`
	Outputs []registry.TensorSpec `json:"outputs"`
	Input   []registry.TensorSpec `json:"input"`
	Output  []registry.TensorSpec `json:"output"`
}

func (s *signatureVals) signature() *registry.Signature {
	if s == nil {
		return nil
	}
	return &registry.Signature{Inputs: slices.Concat(s.Inputs, s.Input), Outputs: slices.Concat(s.Outputs, s.Output)}
}

type stageVals struct {
	Model      string  `json:"model"`
	Stage      string  `json:"stage"`
	Version    *int64  `json:"version"`
	Reason     *string `json:"reason"`
	AssignedAt *string `json:"assigned_at"`
}

type endpointVals struct {
	Name   string      `json:"name"`
	Model  string      `json:"model"`
	Stage  *string     `json:"stage"`
	Routes []routeVals `json:"routes"`
	// Route is the same as blocks.
	Route     []routeVals `json:"route"`
	Guard     *guardVals  `json:"guard"`
	Status    *string     `json:"status"`
	UpdatedAt *string     `json:"updated_at"`
	// Rollout is a block (an object or a list of one); see decodeRollout.
	Rollout        json.RawMessage    `json:"rollout"`
	RolloutStatus  *rolloutStatusVals `json:"rollout_status"`
	WaitForRollout *bool              `json:"wait_for_rollout"`
}

type routeVals struct {
	Name    string     `json:"name"`
	Version *int64     `json:"version"`
	Weight  *int64     `json:"weight"`
	Match   *matchVals `json:"match"`
	Shadow  *bool      `json:"shadow"`
	Share   *float64   `json:"share"`
}

// shadow is "shadow, a copy of 0.1 of the requests" for a shadow route,
// "" for the others.
func (r routeVals) shadow() string {
	if r.Shadow == nil || !*r.Shadow {
		return ""
	}
	return "shadow, a copy of " + fmtNum(r.Share) + " of the requests"
}

type matchVals struct {
	Header *string `json:"header"`
	Value  *string `json:"value"`
	Prefix *bool   `json:"prefix"`
}

// String is the match as a reviewer reads it ("" for none).
func (m *matchVals) String() string {
	if m == nil {
		return ""
	}
	op := "="
	if m.Prefix != nil && *m.Prefix {
		op = "starts with"
	}
	return "`" + deref(m.Header) + "` " + op + " `" + deref(m.Value) + "`"
}

type guardVals struct {
	MaxErrorRate *float64 `json:"max_error_rate"`
	MinRequests  *int64   `json:"min_requests"`
	Window       *string  `json:"window"`
}

func (e *endpointVals) routes() []routeVals {
	if len(e.Route) > 0 {
		return e.Route
	}
	return e.Routes
}

func (g *guardVals) registry() *registry.Guard {
	if g == nil {
		return nil
	}
	out := &registry.Guard{Window: deref(g.Window)}
	if g.MaxErrorRate != nil {
		out.MaxErrorRate = *g.MaxErrorRate
	}
	if g.MinRequests != nil {
		out.MinRequests = *g.MinRequests
	}
	return out
}

func (g *guardVals) String() string {
	if g == nil {
		return "none"
	}
	s := "max_error_rate " + fmtNum(g.MaxErrorRate)
	if g.MinRequests != nil {
		s += fmt.Sprintf(", min_requests %d", *g.MinRequests)
	}
	if g.Window != nil {
		s += ", window " + *g.Window
	}
	return s
}

// planVersion is what the plan says about one version.
type planVersion struct {
	address    string
	model      string
	number     int64 // 0: created by this plan
	action     Action
	metrics    map[string]float64
	flagged    bool
	flagReason string
	signature  *registry.Signature
}

// builder turns a plan (and registry facts) into a Summary.
type builder struct {
	plan *Plan
	f    *facts
	ix   *configIndex
	now  time.Time
	s    *Summary

	models   map[string]*ModelSummary
	byNumber map[string]*planVersion
	byAddr   map[string]*planVersion
	// changes: our resource changes by address.
	changes map[string]ResourceChange
}

// Build summarises a plan. f supplies what the registry knows.
func build(p *Plan, f *facts, now time.Time) (*Summary, error) {
	b := &builder{
		plan: p, f: f, ix: newConfigIndex(p.Configuration, p.PriorState), now: now,
		s:        &Summary{TerraformVersion: p.TerraformVersion, Errored: p.Errored},
		models:   map[string]*ModelSummary{},
		byNumber: map[string]*planVersion{},
		byAddr:   map[string]*planVersion{},
		changes:  map[string]ResourceChange{},
	}
	if f.c != nil {
		b.s.Registry = f.c.Address()
	}
	if err := b.indexVersions(); err != nil {
		return nil, err
	}
	steps := []func() error{b.modelChanges, b.versionChanges, b.stageMoves, b.endpointChanges, b.drift}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	b.wholePlan()
	b.moveWarnings()
	if p.Errored {
		b.fail(ErrPlanErrored, "", "Terraform could not finish this plan (it errored), and it refuses to apply a plan saved that way; what follows is what it planned before it stopped.",
			"fix the error `terraform plan` printed, then plan again")
	}
	b.applyVerdict()
	b.finish()
	return b.s, nil
}

func (b *builder) ours() []ResourceChange {
	var out []ResourceChange
	for _, rc := range b.plan.ResourceChanges {
		if ours(rc) {
			out = append(out, rc)
		}
	}
	return out
}

func decodeErr(rc ResourceChange, which string, err error) error {
	return fmt.Errorf("%w: %s of %s: %v", ErrNotPlan, which, rc.Address, err)
}

func (b *builder) model(name string) *ModelSummary {
	m := b.models[name]
	if m == nil {
		m = &ModelSummary{Name: name, Stages: []*StageMove{}, Versions: []*VersionChange{}}
		b.models[name] = m
	}
	return m
}

func (b *builder) indexVersions() error {
	for _, rc := range b.ours() {
		b.changes[rc.Address] = rc
		if rc.Type != typeVersion {
			continue
		}
		before, after, hasB, hasA, err := decodeChange[versionVals](rc, "")
		if err != nil {
			return err
		}
		act := rc.Change.action()
		if hasB && before.Version != nil {
			v := &before
			if hasA && act != ActionReplace && after.Version != nil {
				v = &after // planned values of a version that stays
			}
			pv := toPlanVersion(rc, v, act)
			b.byNumber[versionKey(pv.model, pv.number)] = pv
		}
		if hasA && (after.Version == nil || act == ActionCreate || act == ActionReplace) {
			pv := toPlanVersion(rc, &after, act)
			pv.number = 0
			b.byAddr[configAddress(rc.Address)] = pv
		}
	}
	return nil
}

func toPlanVersion(rc ResourceChange, v *versionVals, act Action) *planVersion {
	pv := &planVersion{address: rc.Address, model: v.Model, action: act, metrics: v.Metrics, signature: v.Signature.signature()}
	if v.Version != nil {
		pv.number = *v.Version
	}
	if v.Flagged != nil {
		pv.flagged = *v.Flagged
	}
	if v.FlagReason != nil {
		pv.flagReason = *v.FlagReason
	}
	return pv
}

// versionInfo finds a version's metrics and flag: in the plan first, then
// in the registry.
func (b *builder) versionInfo(model string, ref *VersionRef, why string) *planVersion {
	if ref == nil {
		return nil
	}
	if ref.New != "" {
		return b.byAddr[configAddress(ref.New)]
	}
	if ref.Version == 0 {
		return nil
	}
	if pv := b.byNumber[versionKey(model, ref.Version)]; pv != nil {
		return pv
	}
	mv := b.f.version(model, ref.Version, why)
	if mv == nil {
		return nil
	}
	return &planVersion{model: model, number: mv.Version, metrics: mv.Metrics, flagged: mv.Flagged, flagReason: mv.FlagReason, signature: mv.Signature}
}

// resolveUnknown names the version an unknown attribute will get: the one
// version created by this plan that the attribute's expression refers to.
func (b *builder) resolveUnknown(addr, attr string) *VersionRef {
	var found []string
	for _, ref := range b.ix.refs[configAddress(addr)][attr] {
		if pv := b.byAddr[ref]; pv != nil {
			found = append(found, pv.address)
		}
	}
	if len(found) == 1 {
		return &VersionRef{New: found[0]}
	}
	return &VersionRef{}
}

func (b *builder) modelChanges() error {
	for _, rc := range b.ours() {
		if rc.Type != typeModel {
			continue
		}
		before, after, hasB, hasA, err := decodeChange[modelVals](rc, "")
		if err != nil {
			return err
		}
		name := after.Name
		if !hasA {
			name = before.Name
		}
		if name == "" {
			continue
		}
		m := b.model(name)
		m.Address = rc.Address
		act := rc.Change.action()
		if act == ActionNoop {
			continue
		}
		m.Action = act
		m.Changed = changedAttrs(rc.Change.Before, rc.Change.After, rc.Change.AfterUnknown, "id", "revision", "updated_at", "created_at")
		if (act == ActionUpdate || act == ActionReplace) && hasB && hasA && !unknownAt(rc.Change.AfterUnknown, "stage_policies") && !unknownAt(rc.Change.AfterUnknown, "stage_policy") {
			for _, l := range registry.PolicyLoosenings(before.policies(), after.policies()) {
				b.warn(warnf(WarnLoosening, rc.Address, "Model %q: %s: the registry lets through versions it refused before.", name, l))
			}
		}
		if (act == ActionDelete || act == ActionReplace) && hasB {
			if holder := b.productionHolder(name); holder != "" {
				verb := "Destroying"
				if act == ActionReplace {
					verb = "Replacing"
				}
				b.warn(warnf(WarnProduction, rc.Address, "%s model %q removes its production stage (held by %s): production serving and rollback history go with it.", verb, name, holder))
			}
		}
	}
	return nil
}

// productionHolder says which version holds production of a model, from
// the plan's stage assignments or the registry; "" when none is known.
func (b *builder) productionHolder(model string) string {
	for _, rc := range b.ours() {
		if rc.Type != typeStage {
			continue
		}
		var st stageVals
		if ok, _ := decodeVals(rc.Change.Before, &st); ok && st.Model == model && st.Stage == "production" && st.Version != nil {
			return fmt.Sprintf("v%d", *st.Version)
		}
	}
	if a, ok := b.f.stage(model, "production", "whether it holds production"); ok && a != nil {
		return fmt.Sprintf("v%d", a.Version)
	}
	return ""
}

func (b *builder) versionChanges() error {
	for _, rc := range b.ours() {
		if rc.Type != typeVersion {
			continue
		}
		act := rc.Change.action()
		var before, after versionVals
		hasB, _ := decodeVals(rc.Change.Before, &before)
		hasA, _ := decodeVals(rc.Change.After, &after)
		model := after.Model
		if !hasA {
			model = before.Model
		}
		if model == "" {
			continue
		}
		m := b.model(model)
		if act == ActionNoop {
			continue
		}
		vc := &VersionChange{Address: rc.Address, Model: model, Action: act}
		cur := &after
		if !hasA {
			cur = &before
		}
		if hasB && before.Version != nil {
			vc.Version = &VersionRef{Version: *before.Version}
		} else {
			vc.Version = &VersionRef{New: rc.Address}
		}
		vc.Metrics = cur.Metrics
		vc.Flagged = cur.Flagged != nil && *cur.Flagged
		if vc.Flagged {
			vc.FlagReason = deref(cur.FlagReason)
		}
		if cur.Source != nil {
			vc.Source = *cur.Source
		}
		if hasB {
			vc.Stages = before.Stages
			var refreshed versionVals
			if ok, _ := decodeVals(b.ix.refreshed[rc.Address], &refreshed); ok && refreshed.Version != nil && before.Version != nil && *refreshed.Version == *before.Version {
				vc.Stages = refreshed.Stages
			}
		}
		switch act {
		case ActionUpdate:
			vc.Changed = changedAttrs(rc.Change.Before, rc.Change.After, rc.Change.AfterUnknown, "id", "revision", "updated_at", "created_at", "created_by", "stages")
			if slices.Contains(vc.Changed, "flagged") {
				// "flagged" says it; the reason follows the flag.
				vc.Changed = slices.DeleteFunc(vc.Changed, func(a string) bool { return a == "flag_reason" })
			}
			if before.Flagged != nil && *before.Flagged && after.Flagged != nil && !*after.Flagged {
				// Usually a flag set in an emergency that the
				// configuration does not hold yet: the apply would put
				// the bad version back into service.
				b.warn(warnf(WarnUnflag, rc.Address, "This plan UNFLAGS %s of %q (flagged: %s): it can be assigned and receive traffic again. If the flag is right, add `flagged = true` and its `flag_reason` to `%s`.",
					vc.Version, model, orUnknown(deref(before.FlagReason)), configAddress(rc.Address)))
			}
		case ActionReplace:
			vc.Changed = rc.Change.replacePaths()
			if len(vc.Changed) == 0 {
				vc.Changed = changedAttrs(rc.Change.Before, rc.Change.After, rc.Change.AfterUnknown, "id", "version", "revision", "updated_at", "created_at", "created_by", "stages")
			}
			msg := fmt.Sprintf("`%s` REPLACES version %s of %q: its artifact changes (%s). The registry keeps versions immutable, so this deletes %s and registers a new version with a new number.",
				rc.Address, vc.Version.String()[1:], model, strings.Join(vc.Changed, ", "), vc.Version)
			if rc.Change.Actions[0] == "create" {
				msg += fmt.Sprintf(" With create_before_destroy the new version is registered first and %s destroyed last.", vc.Version)
			}
			b.warn(warnf(WarnReplace, rc.Address, "%s", msg))
		}
		if (act == ActionDelete || act == ActionReplace) && slices.Contains(vc.Stages, "production") {
			verb := "Destroying"
			if act == ActionReplace {
				verb = "Replacing"
			}
			b.warn(warnf(WarnProduction, rc.Address, "%s %s of %q, which holds production.", verb, vc.Version, model))
		}
		m.Versions = append(m.Versions, vc)
	}
	return nil
}

func (b *builder) stageMoves() error {
	for _, rc := range b.ours() {
		if rc.Type != typeStage {
			continue
		}
		act := rc.Change.action()
		if act == ActionNoop {
			continue
		}
		before, after, hasB, hasA, err := decodeChange[stageVals](rc, "")
		if err != nil {
			return err
		}
		cur := &after
		if !hasA {
			cur = &before
		}
		if cur.Model == "" || cur.Stage == "" {
			continue
		}
		mv := &StageMove{Address: rc.Address, Model: cur.Model, Stage: cur.Stage, Action: act, Metrics: []MetricDelta{}}
		renamed := act == ActionReplace && hasB && hasA && (before.Model != after.Model || before.Stage != after.Stage)
		if renamed {
			// Two moves: the old stage is unassigned, the new one assigned.
			un := &StageMove{Address: rc.Address, Model: before.Model, Stage: before.Stage, Action: act, From: refOf(before.Version), Metrics: []MetricDelta{}}
			b.model(un.Model).Stages = append(b.model(un.Model).Stages, un)
		} else if hasB && before.Version != nil {
			mv.From = &VersionRef{Version: *before.Version}
		}
		if act == ActionCreate || renamed {
			// The resource may take over a stage that is assigned already.
			if a, ok := b.f.stage(cur.Model, cur.Stage, "which version holds it before this plan"); ok && a != nil {
				mv.From = &VersionRef{Version: a.Version}
			}
		}
		if hasA {
			switch {
			case after.Version != nil:
				mv.To = &VersionRef{Version: *after.Version}
			default:
				mv.To = b.resolveUnknown(rc.Address, "version")
			}
			if after.Reason != nil {
				mv.Reason = *after.Reason
			}
		}
		if act == ActionUpdate && mv.From.equal(mv.To) {
			continue // only the reason changes; nothing moves
		}
		b.metrics(mv)
		if mv.To != nil && mv.To.New == "" && mv.To.Version > 0 {
			mv.DryRun = b.f.dryRun(mv.Model, mv.Stage, mv.To.Version, mv.Reason)
		} else if mv.To != nil {
			mv.DryRun = &Verdict{Outcome: Unknown, Message: deferredPolicy}
		}
		b.model(mv.Model).Stages = append(b.model(mv.Model).Stages, mv)
	}
	return nil
}

// deferredPolicy is what a reviewer reads when the registry can judge a
// move only at apply time.
const deferredPolicy = "policy checked at apply: version not known until apply (the registry checks the stage policy when the apply assigns it)"

func (b *builder) metrics(mv *StageMove) {
	if mv.To == nil {
		return
	}
	to := b.versionInfo(mv.Model, mv.To, "metrics of the "+mv.Stage+" move")
	var from *planVersion
	if mv.From != nil {
		from = b.versionInfo(mv.Model, mv.From, "metrics of the "+mv.Stage+" move")
	}
	if to != nil {
		mv.FlaggedTo = to.flagged
	}
	// Live metrics are shown when the registry has some: a plan read
	// offline, or a version without feedback, adds nothing.
	if mv.To.New == "" && b.f.online() {
		if lm, err := b.f.versionLive(mv.Model, mv.To.Version); err == nil {
			for _, name := range slices.Sorted(maps.Keys(lm.Metrics)) {
				m, t := lm.Metrics[name], lm.Trusted[name]
				mv.Live = append(mv.Live, LiveLine{Metric: name, Count: m.Count, Mean: m.Mean, TrustedCount: t.Count, TrustedMean: t.Mean})
			}
		}
	}
	var missing []string
	if mv.From != nil && from == nil {
		missing = append(missing, mv.From.String())
	}
	if to == nil {
		missing = append(missing, mv.To.String())
	}
	if len(missing) > 0 {
		mv.MetricsNote = "metrics of " + strings.Join(missing, " and ") + " not available"
		if !b.f.online() {
			mv.MetricsNote += " (" + b.f.offline + ")"
		}
	}
	names := map[string]bool{}
	for _, pv := range []*planVersion{from, to} {
		if pv != nil {
			for k := range pv.metrics {
				names[k] = true
			}
		}
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d := MetricDelta{Name: k}
		if from != nil {
			if v, ok := from.metrics[k]; ok {
				d.From = &v
			}
		}
		if to != nil {
			if v, ok := to.metrics[k]; ok {
				d.To = &v
			}
		}
		if d.From != nil && d.To != nil {
			delta := roundSig(*d.To - *d.From)
			d.Delta = &delta
		}
		mv.Metrics = append(mv.Metrics, d)
	}
}

// moveWarnings: stages moved to flagged versions or refused by the stage
// policy (errors: the apply fails), production unassigned.
func (b *builder) moveWarnings() {
	for _, m := range b.sortedModels() {
		for _, mv := range m.Stages {
			if mv.FlaggedTo {
				b.fail(ErrFlagged, mv.Address, fmt.Sprintf("Stage %s of %q moves to %s, which is flagged: the registry refuses to assign a flagged version.", mv.Stage, mv.Model, mv.To),
					fmt.Sprintf("point `%s` at an unflagged version, or unflag %s first if the flag is wrong", configAddress(mv.Address), mv.To))
			}
			if mv.Stage == "production" && mv.To == nil && (mv.Action == ActionDelete || mv.Action == ActionReplace) {
				b.warn(warnf(WarnProduction, mv.Address, "Destroying `%s` unassigns production of %q (now %s).", mv.Address, mv.Model, mv.From))
			}
			if w := mv.WholePlan; w != nil && w.Outcome == Unknown && len(w.Needs) > 0 {
				b.warn(warnf(WarnOrdering, mv.Address, "Stage %s of %q gets a version not known until apply; %s, or Terraform may assign both together and the registry refuses the move.", mv.Stage, mv.Model, w.Advice))
			}
			if w := mv.WholePlan; w != nil && w.Outcome == Fail {
				fix := w.Advice
				if fix == "" {
					fix = "point the stage at a version that satisfies the policy, or change the policy in a reviewed change of its own"
				}
				b.fail(ErrPolicy, mv.Address, fmt.Sprintf("Stage %s of %q -> %s will fail the stage policy (%s) when applied.", mv.Stage, mv.Model, mv.To, strings.Join(w.Rules, ", ")), fix)
			} else if d := mv.DryRun; d != nil && d.Outcome == Fail && (w == nil || w.Outcome != Pass) {
				b.fail(ErrPolicy, mv.Address, fmt.Sprintf("Stage %s of %q -> %s fails the stage policy (%s).", mv.Stage, mv.Model, mv.To, strings.Join(d.Rules, ", ")),
					"point the stage at a version that satisfies the policy, or change the policy in a reviewed change of its own")
			}
		}
	}
}

func (b *builder) endpointChanges() error {
	for _, rc := range b.ours() {
		if rc.Type != typeEndpoint {
			continue
		}
		act := rc.Change.action()
		before, after, hasB, hasA, err := decodeChange[endpointVals](rc, "")
		if err != nil {
			return err
		}
		cur := &after
		if !hasA {
			cur = &before
		}
		var running *RolloutStanding
		if hasB {
			running = standing(rc.Address, before.Name, before.RolloutStatus)
		}
		// A rollout that ended without completing stays the endpoint's
		// latest until the next one; it matters while the plan touches
		// the endpoint, not in every plan after.
		if running.active() || running != nil && act != ActionNoop {
			b.s.Rollouts = append(b.s.Rollouts, running)
		}
		if act == ActionNoop {
			continue
		}
		ec := &EndpointChange{Address: rc.Address, Name: cur.Name, Model: cur.Model, Action: act, Routes: []*RouteShift{}}
		if hasB && before.Stage != nil {
			ec.StageFrom = *before.Stage
		}
		if hasA && after.Stage != nil {
			ec.StageTo = *after.Stage
		}
		if hasB && before.Guard != nil || hasA && after.Guard != nil {
			if g := before.Guard.String(); hasB && g != after.Guard.String() {
				ec.GuardFrom, ec.GuardTo = g, after.Guard.String()
			}
		}
		ec.OtherAttrs = changedAttrs(rc.Change.Before, rc.Change.After, rc.Change.AfterUnknown,
			"id", "revision", "updated_at", "created_at", "routes", "route", "guard", "stage", "status", "status_message", "url", "rollout", "rollout_status")
		specFrom, specTo := decodeRollout(before.Rollout), decodeRollout(after.Rollout)
		switch {
		case hasB && hasA && specFrom.String() != specTo.String():
			ec.RolloutFrom, ec.RolloutTo = specFrom.String(), specTo.String()
		case !hasB && specTo != nil:
			ec.RolloutTo = specTo.String()
		}
		byName := map[string]*RouteShift{}
		unknownRoutes := b.unknownRouteVersions(rc)
		for i, r := range after.routes() {
			rs := &RouteShift{Name: r.Name, WeightTo: r.Weight, MatchTo: r.Match.String(), Shadow: r.shadow()}
			if r.Version != nil {
				rs.VersionTo = &VersionRef{Version: *r.Version}
			} else if unknownRoutes[i] {
				rs.VersionTo = b.resolveUnknown(rc.Address, routesAttr(rc))
				if ec.StageTo != "" {
					rs.PolicyNote = deferredPolicy
				}
			}
			byName[r.Name] = rs
			ec.Routes = append(ec.Routes, rs)
		}
		for _, r := range before.routes() {
			rs := byName[r.Name]
			if rs == nil {
				rs = &RouteShift{Name: r.Name}
				ec.Routes = append(ec.Routes, rs)
			}
			rs.WeightFrom = r.Weight
			rs.MatchFrom = r.Match.String()
			if r.Version != nil {
				rs.VersionFrom = &VersionRef{Version: *r.Version}
			}
		}
		for _, rs := range ec.Routes {
			if rs.VersionTo == nil {
				continue
			}
			newVersion := !rs.VersionTo.equal(rs.VersionFrom)
			weighted := rs.WeightTo != nil && *rs.WeightTo > 0 && (rs.WeightFrom == nil || *rs.WeightTo > *rs.WeightFrom || newVersion)
			// A matched route gets its requests whatever its weight, so the
			// registry refuses a match on a flagged version even at weight 0.
			matched := rs.MatchTo != "" && (rs.MatchFrom == "" || newVersion)
			if !weighted && !matched {
				continue
			}
			if pv := b.versionInfo(ec.Model, rs.VersionTo, "whether route "+rs.Name+" of endpoint "+ec.Name+" serves a flagged version"); pv != nil && pv.flagged {
				rs.FlaggedTo = true
				if weighted {
					b.fail(ErrFlagged, rc.Address, fmt.Sprintf("Endpoint %q sends %d%% of its traffic (route %s) to %s, which is flagged: the registry refuses it.", ec.Name, *rs.WeightTo, rs.Name, rs.VersionTo),
						fmt.Sprintf("set the weight of route %s to 0 (or remove the route) and give its weight to a route to an unflagged version", rs.Name))
				} else {
					b.fail(ErrFlagged, rc.Address, fmt.Sprintf("Endpoint %q sends the requests whose %s (route %s) to %s, which is flagged: the registry refuses it, even at weight 0.", ec.Name, rs.MatchTo, rs.Name, rs.VersionTo),
						fmt.Sprintf("remove the match block of route %s (or point the route at an unflagged version)", rs.Name))
				}
			}
		}
		if act == ActionUpdate && hasB && hasA && specTo != nil {
			versionTo := map[string]*VersionRef{}
			for _, rs := range ec.Routes {
				if rs.VersionTo != nil && rs.VersionTo.Version == 0 {
					versionTo[rs.Name] = rs.VersionTo
				}
			}
			ec.Rollout = planRollout(&before, &after, specTo, running, unknownRoutes, versionTo)
		}
		switch {
		case running == nil:
		case running.active() && act == ActionUpdate && hasA && specTo == nil:
			b.warn(warnf(WarnRollout, rc.Address, "Endpoint %q loses its rollout while one is %s at step %d (%d%%): the configured weights take force at once, with no more steps or gates.", ec.Name, running.State, running.Step, running.Percent))
		case !running.active() && (act == ActionUpdate || act == ActionReplace):
			b.warn(rolloutWarning(rc.Address, running, ec.Rollout != nil))
		}
		if act == ActionUpdate && hasB && before.Guard != nil && hasA && after.Guard == nil {
			b.warn(warnf(WarnGuard, rc.Address, "Endpoint %q loses its guard (%s): a failing route is no longer rolled back automatically.", ec.Name, before.Guard))
		} else if (act == ActionUpdate || act == ActionReplace) && hasB && hasA && !unknownAt(rc.Change.AfterUnknown, "guard") {
			for _, l := range registry.GuardLoosenings(before.Guard.registry(), after.Guard.registry()) {
				b.warn(warnf(WarnLoosening, rc.Address, "Endpoint %q: %s: a failing route is rolled back later, or not at all.", ec.Name, l))
			}
		}
		if (act == ActionUpdate || act == ActionReplace) && hasB && hasA && !unknownAt(rc.Change.AfterUnknown, "stage") {
			for _, l := range registry.StageBindingLoosenings(ec.StageFrom, ec.StageTo) {
				b.warn(warnf(WarnLoosening, rc.Address, "Endpoint %q: %s: its routes may then serve versions that policy refuses.", ec.Name, l))
			}
		}
		if (act == ActionDelete || act == ActionReplace) && ec.StageFrom == "production" {
			verb := "Destroying"
			if act == ActionReplace {
				verb = "Replacing"
			}
			b.warn(warnf(WarnProduction, rc.Address, "%s endpoint %q, which serves production: its traffic has nowhere to go while it is gone.", verb, ec.Name))
		}
		b.model(ec.Model)
		b.s.Endpoints = append(b.s.Endpoints, ec)
	}
	return nil
}

// unknownRouteVersions marks the routes whose version is unknown at plan
// time.
func (b *builder) unknownRouteVersions(rc ResourceChange) map[int]bool {
	var u struct {
		Routes json.RawMessage `json:"routes"`
		Route  json.RawMessage `json:"route"`
	}
	out := map[int]bool{}
	if json.Unmarshal(rc.Change.AfterUnknown, &u) != nil {
		return out
	}
	if len(u.Route) > 0 {
		u.Routes = u.Route
	}
	var all bool
	if json.Unmarshal(u.Routes, &all) == nil && all {
		for i := range 1000 {
			out[i] = true
		}
		return out
	}
	var routes []map[string]any
	if json.Unmarshal(u.Routes, &routes) != nil {
		return out
	}
	for i, r := range routes {
		if anyTrue(r["version"]) {
			out[i] = true
		}
	}
	return out
}

// routesAttr is the endpoint's attribute (or block) that holds routes.
func routesAttr(rc ResourceChange) string {
	var v map[string]json.RawMessage
	if json.Unmarshal(rc.Change.After, &v) == nil {
		if _, ok := v["route"]; ok {
			return "route"
		}
	}
	return "routes"
}

func (b *builder) warn(w *Warning) { b.s.Warnings = append(b.s.Warnings, w) }

func (b *builder) sortedModels() []*ModelSummary {
	out := make([]*ModelSummary, 0, len(b.models))
	for _, m := range b.models {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func stageRank(s string) int {
	switch s {
	case "development", "dev":
		return 0
	case "staging":
		return 1
	case "production":
		return 2
	}
	return 3
}

func (b *builder) finish() {
	for _, rc := range b.ours() {
		switch rc.Change.action() {
		case ActionCreate:
			b.s.Counts.Create++
		case ActionUpdate:
			b.s.Counts.Update++
		case ActionReplace:
			b.s.Counts.Replace++
		case ActionDelete:
			b.s.Counts.Delete++
		}
	}
	for _, m := range b.sortedModels() {
		if m.Action == "" && len(m.Stages) == 0 && len(m.Versions) == 0 {
			continue
		}
		sort.SliceStable(m.Stages, func(i, j int) bool {
			a, c := m.Stages[i], m.Stages[j]
			if stageRank(a.Stage) != stageRank(c.Stage) {
				return stageRank(a.Stage) < stageRank(c.Stage)
			}
			return a.Stage < c.Stage
		})
		sort.SliceStable(m.Versions, func(i, j int) bool { return m.Versions[i].Address < m.Versions[j].Address })
		b.s.Models = append(b.s.Models, m)
	}
	if b.s.Models == nil {
		b.s.Models = []*ModelSummary{}
	}
	sort.SliceStable(b.s.Endpoints, func(i, j int) bool { return b.s.Endpoints[i].Name < b.s.Endpoints[j].Name })
	if b.s.Endpoints == nil {
		b.s.Endpoints = []*EndpointChange{}
	}
	if b.s.Drift == nil {
		b.s.Drift = []*DriftItem{}
	}
	sort.SliceStable(b.s.Rollouts, func(i, j int) bool { return b.s.Rollouts[i].Address < b.s.Rollouts[j].Address })
	if b.s.Rollouts == nil {
		b.s.Rollouts = []*RolloutStanding{}
	}
	if b.s.Warnings == nil {
		b.s.Warnings = []*Warning{}
	}
	if b.s.Errors == nil {
		b.s.Errors = []*PlanError{}
	}
	b.s.NotFetched = append([]string{}, b.f.missing...)
}
