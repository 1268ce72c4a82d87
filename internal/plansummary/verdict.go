package plansummary

import (
	"fmt"
	"slices"
	"strings"
)

// The provider plans one resource at a time, and the registry's dry run
// judges one move against the registry as it is now; neither sees the
// order in which Terraform applies the plan. Terraform destroys a resource
// before it updates the resources that depended on it, unless the
// destroyed resource has create_before_destroy (then it is destroyed
// last); it destroys dependents before what they depend on. The registry
// refuses to delete a version that holds a stage or that a route names.
// So a version destroyed "first" (replaced as delete-then-create, or
// removed) while a stage assignment or an endpoint is updated away from
// it fails the apply, though every single step passes its own check.

// holding is a stage or an endpoint route that names a version the plan
// destroys, and the resource of this plan that manages it (nil: none).
type holding struct {
	what  string // "production", or `endpoint "churn" (route stable)`
	mover *ResourceChange
	// stays: after the plan the stage or route still names the version.
	stays bool
	// isStage: a stage (else a route).
	isStage bool
}

func (b *builder) applyVerdict() {
	for _, rc := range b.ours() {
		if rc.Type != typeVersion {
			continue
		}
		act := rc.Change.action()
		if act != ActionDelete && act != ActionReplace {
			continue
		}
		before, after, hasB, hasA, err := decodeChange[versionVals](rc, "")
		if err != nil || !hasB || before.Version == nil {
			continue
		}
		if act == ActionReplace && rc.Change.Actions[0] == "create" && hasA && before.Checksum != nil && after.Checksum != nil && *before.Checksum == *after.Checksum {
			b.fail(ErrDuplicateArtifact, rc.Address, fmt.Sprintf("`%s` replaces v%d of %q with create_before_destroy, but the checksum stays %s: the registry holds each artifact once per model, so it refuses to register the new version while v%d still exists.", rc.Address, *before.Version, before.Model, *after.Checksum, *before.Version),
				"a retrained model is a new artifact: change `checksum` with `source`. If only the same bytes moved, the registry can hold them once: first move the version's stages and routes to another version, then replace it without create_before_destroy (delete, then register again)")
		}
		// A removed resource's before is its state as last applied; the
		// prior state holds it refreshed, with the stages it holds now.
		stages := before.Stages
		var refreshed versionVals
		if ok, _ := decodeVals(b.ix.refreshed[rc.Address], &refreshed); ok && refreshed.Version != nil && *refreshed.Version == *before.Version {
			stages = refreshed.Stages
		}
		for _, h := range b.holdings(before.Model, *before.Version, stages) {
			b.judgeDestroy(rc, before.Model, *before.Version, h)
		}
	}
	b.leftEmpty()
	b.s.Verdict = VerdictApplies
	if len(b.s.Errors) > 0 {
		b.s.Verdict = VerdictFails
	}
}

// holdings lists the stages (from the version's refreshed stages) and the
// endpoint routes (from the plan's endpoints) that name a version.
func (b *builder) holdings(model string, version int64, stages []string) []holding {
	var out []holding
	for _, stage := range stages {
		h := holding{what: stage, isStage: true}
		for _, rc := range b.ours() {
			if rc.Type != typeStage {
				continue
			}
			before, after, hasB, hasA, err := decodeChange[stageVals](rc, "")
			if err != nil {
				continue
			}
			switch {
			case hasB && before.Model == model && before.Stage == stage:
			case !hasB && hasA && after.Model == model && after.Stage == stage:
			default:
				continue
			}
			h.mover = &rc
			a := rc.Change.action()
			h.stays = a == ActionNoop || hasA && after.Model == model && after.Stage == stage && after.Version != nil && *after.Version == version && a != ActionReplace
			break
		}
		out = append(out, h)
	}
	inPlan := map[string]bool{}
	for _, rc := range b.ours() {
		if rc.Type != typeEndpoint {
			continue
		}
		before, after, hasB, hasA, err := decodeChange[endpointVals](rc, "")
		if err != nil || !hasB {
			continue
		}
		inPlan[before.Name] = true
		if before.Model != model {
			continue
		}
		for _, r := range before.routes() {
			if r.Version == nil || *r.Version != version {
				continue
			}
			h := holding{what: fmt.Sprintf("endpoint %q (route %s)", before.Name, r.Name), mover: &rc}
			a := rc.Change.action()
			h.stays = a == ActionNoop
			if a == ActionUpdate && hasA {
				h.stays = slices.ContainsFunc(after.routes(), func(ar routeVals) bool { return ar.Version != nil && *ar.Version == version })
			}
			out = append(out, h)
		}
	}
	// Endpoints another configuration (or nobody) manages hold the
	// version just the same.
	for _, ep := range b.f.allEndpoints("whether another endpoint routes to a version this plan destroys") {
		if inPlan[ep.Name] || ep.Model != model {
			continue
		}
		for _, r := range ep.Routes {
			if r.Version == version {
				out = append(out, holding{what: fmt.Sprintf("endpoint %q (route %s)", ep.Name, r.Name)})
			}
		}
	}
	return out
}

// judgeDestroy decides whether Terraform moves h away from the version
// before it destroys the version.
func (b *builder) judgeDestroy(rc ResourceChange, model string, version int64, h holding) {
	v := fmt.Sprintf("v%d", version)
	kind := "stage"
	if !h.isStage {
		kind = "route"
	}
	held := fmt.Sprintf("%s holds %s", v, h.what)
	if !h.isStage {
		held = fmt.Sprintf("%s receives traffic from %s", v, h.what)
	}
	verb := "destroys"
	if rc.Change.action() == ActionReplace {
		verb = "replaces"
	}
	lead := fmt.Sprintf("`%s` %s %s of %q, but %s", rc.Address, verb, v, model, held)
	cbdFix := fmt.Sprintf("add `lifecycle { create_before_destroy = true }` to `%s` (Terraform then registers the new version, moves the %s to it, and destroys %s last), or split the change into two applies: first move the %s to another version, then change the artifact", configAddress(rc.Address), kind, v, kind)
	splitFix := fmt.Sprintf("split the change into two applies: first move the %s away from %s, then remove the version", kind, v)
	switch {
	case h.mover == nil:
		b.fail(ErrHeldNotMoved, rc.Address, lead+", which this configuration does not manage: the registry refuses to delete a version that "+holdsVerb(h)+", so the apply fails.",
			fmt.Sprintf("move %s to another version first (through the API or the CLI, or by managing it in this configuration), then apply", h.what))
		return
	case h.stays:
		b.fail(ErrHeldNotMoved, rc.Address, fmt.Sprintf("%s, and `%s` keeps it there: the registry refuses to delete a version that %s, so the apply fails.", lead, h.mover.Address, holdsVerb(h)),
			b.stayFix(rc, h))
		return
	}
	actions := rc.Change.Actions
	destroyFirst := actions[0] == "delete"
	ordered := b.ix.ordered(h.mover.Address, rc.Address)
	moverActions := h.mover.Change.Actions
	if moverActions[0] == "delete" {
		// The assignment or endpoint is destroyed (or replaced, destroy
		// first): Terraform destroys it before what it depended on.
		if !ordered {
			b.fail(ErrUnordered, rc.Address, fmt.Sprintf("%s; `%s` releases it by being destroyed, but it does not depend on `%s`, so Terraform may destroy the version first and the registry refuses.", lead, h.mover.Address, rc.Address),
				splitFix)
		}
		return
	}
	switch {
	case destroyFirst && len(actions) == 2:
		b.fail(ErrDestroyedWhileHeld, rc.Address, fmt.Sprintf("%s: Terraform destroys %s first (delete, then create) and only then applies `%s`, so the registry refuses to delete it and the apply fails.", lead, v, h.mover.Address),
			cbdFix)
	case destroyFirst && ordered:
		// A removed resource keeps create_before_destroy in the state,
		// which the plan JSON does not show.
		b.warn(warnf(WarnOrdering, rc.Address, "%s, which `%s` moves away: this applies only if `%s` was last applied with `create_before_destroy = true` (the plan JSON does not show it); otherwise Terraform destroys %s before it applies `%s` and the registry refuses. If unsure, %s.",
			lead, h.mover.Address, rc.Address, v, h.mover.Address, splitFix))
	case !ordered:
		b.fail(ErrUnordered, rc.Address, fmt.Sprintf("%s; `%s` moves it away, but does not refer to or depend on `%s`, so nothing orders the two and Terraform may destroy %s first.", lead, h.mover.Address, rc.Address, v),
			splitFix)
	}
}

func (b *builder) stayFix(rc ResourceChange, h holding) string {
	fix := fmt.Sprintf("point `%s` at another version in this plan", h.mover.Address)
	if rc.Change.action() == ActionReplace {
		fix += fmt.Sprintf(" (the replacement, with `lifecycle { create_before_destroy = true }` on `%s`)", configAddress(rc.Address))
	}
	return fix + ", or move it first in a separate apply"
}

func holdsVerb(h holding) string {
	if h.isStage {
		return "holds a stage"
	}
	return "an endpoint routes to"
}

// leftEmpty marks unassigns that leave a stage empty because the
// assignment was replaced by one for another stage (or model): a renamed
// stage in the configuration unassigns the old one.
func (b *builder) leftEmpty() {
	for _, m := range b.sortedModels() {
		for _, mv := range m.Stages {
			if mv.To != nil || mv.Action != ActionReplace {
				continue
			}
			if slices.ContainsFunc(m.Stages, func(o *StageMove) bool { return o.Stage == mv.Stage && o.To != nil }) {
				continue
			}
			mv.LeftEmpty = true
			var to string
			for _, o := range m.Stages {
				if o.Address == mv.Address && o.To != nil {
					to = o.Stage
				}
			}
			b.fail(ErrStageLeftEmpty, mv.Address, fmt.Sprintf("`%s` changes its stage from %s to %s, which replaces the assignment: the apply UNASSIGNS %s of %q (now %s) and assigns %s. Nothing in this plan assigns %s again.", mv.Address, mv.Stage, to, mv.Stage, mv.Model, mv.From, to, mv.Stage),
				fmt.Sprintf("if %q is a typo, put %q back; to move the version to another stage, keep the assignment for %s and add a new `mlregistry_stage_assignment` for %s (or unassign %s on purpose by removing its assignment)", to, mv.Stage, mv.Stage, to, mv.Stage))
		}
	}
}

func (b *builder) fail(code, address, message, fix string) {
	b.s.Errors = append(b.s.Errors, &PlanError{Code: code, Address: address, Message: message, Fix: fix})
}

// errorCodes lists the codes of errs once each, for --fail-on.
func errorCodes(errs []*PlanError) string {
	var codes []string
	for _, e := range errs {
		if !slices.Contains(codes, e.Code) {
			codes = append(codes, e.Code)
		}
	}
	return strings.Join(codes, ", ")
}
