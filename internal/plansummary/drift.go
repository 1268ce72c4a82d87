package plansummary

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// timeFormat is how times read in a summary.
const timeFormat = "2006-01-02 15:04 UTC"

func fmtTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// parseTime reads an RFC 3339 attribute; zero when absent or malformed.
func parseTime(s *string) time.Time {
	if s == nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// justAfter is the first instant after t (zero stays zero), for asking
// the audit log what happened after Terraform last wrote an object.
func justAfter(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(time.Microsecond)
}

// maxHistory bounds the history lines per drift item.
const maxHistory = 5

// drift turns resource_drift (what refresh found changed outside
// Terraform) into items, each joined with the registry's stage history or
// audit log.
func (b *builder) drift() error {
	for _, rc := range b.plan.ResourceDrift {
		if !ours(rc) {
			continue
		}
		item := &DriftItem{Address: rc.Address, Type: rc.Type, Action: rc.Change.action()}
		if own, ok := b.changes[rc.Address]; ok {
			switch own.Change.action() {
			case ActionUpdate, ActionReplace, ActionCreate:
				item.Reverted = true
			}
		}
		var err error
		switch rc.Type {
		case typeStage:
			err = b.stageDrift(rc, item)
		case typeEndpoint:
			err = b.endpointDrift(rc, item)
		case typeVersion:
			err = b.versionDrift(rc, item)
		case typeModel:
			err = b.modelDrift(rc, item)
		}
		if err != nil {
			return err
		}
		if item.Summary != "" {
			b.s.Drift = append(b.s.Drift, item)
		}
	}
	return nil
}

func (b *builder) stageDrift(rc ResourceChange, item *DriftItem) error {
	before, after, hasB, hasA, err := decodeChange[stageVals](rc, "drift ")
	if err != nil {
		return err
	}
	if !hasB {
		return nil
	}
	from := refOf(before.Version)
	switch {
	case !hasA:
		item.Summary = fmt.Sprintf("stage %s of %q was unassigned outside Terraform (it pointed at %s)", before.Stage, before.Model, from)
	case !refOf(after.Version).equal(from):
		item.Summary = fmt.Sprintf("stage %s of %q points at %s, not %s", before.Stage, before.Model, refOf(after.Version), from)
	default:
		return nil // only computed fields moved
	}
	item.Changed = []string{"version"}
	h, ok := b.f.history(before.Model, before.Stage, "who changed it")
	if !ok {
		return nil
	}
	// What happened after the assignment Terraform last saw: the entries
	// after it in the history (times alone may tie).
	since := parseTime(before.AssignedAt)
	start := -1
	for i, e := range h {
		if before.Version != nil && e.Action == registry.StageActionAssign && e.Version == *before.Version && e.AssignedAt.Equal(since) {
			start = i
		}
	}
	var lines []string
	for i, e := range h {
		if start >= 0 && i <= start || start < 0 && !since.IsZero() && e.AssignedAt.Before(since) {
			continue
		}
		lines = append(lines, historyLine(e))
	}
	if len(lines) > maxHistory {
		lines = append([]string{fmt.Sprintf("(%d earlier changes)", len(lines)-maxHistory)}, lines[len(lines)-maxHistory:]...)
	}
	item.History = lines
	return nil
}

func refOf(v *int64) *VersionRef {
	if v == nil {
		return nil
	}
	return &VersionRef{Version: *v}
}

func historyLine(e registry.StageHistoryEntry) string {
	var s string
	switch {
	case e.Action == registry.StageActionUnassign:
		s = fmt.Sprintf("%s unassigned (was v%d)", e.Stage, e.PreviousVersion)
	case e.PreviousVersion == 0:
		s = fmt.Sprintf("%s assigned to v%d", e.Stage, e.Version)
	default:
		s = fmt.Sprintf("%s moved from v%d to v%d", e.Stage, e.PreviousVersion, e.Version)
	}
	s += fmt.Sprintf(" by %s at %s", orUnknown(e.AssignedBy), fmtTime(e.AssignedAt))
	if e.Reason != "" {
		s += fmt.Sprintf(" (reason: %s)", e.Reason)
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func (b *builder) endpointDrift(rc ResourceChange, item *DriftItem) error {
	before, after, hasB, hasA, err := decodeChange[endpointVals](rc, "drift ")
	if err != nil {
		return err
	}
	if !hasB {
		return nil
	}
	if !hasA {
		item.Summary = fmt.Sprintf("endpoint %q was deleted outside Terraform", before.Name)
	} else {
		// A running rollout moves its status on every step; the summary
		// shows where it stands apart, so only what it leaves behind (the
		// routes a rollback writes back) is drift.
		item.Changed = changedAttrs(rc.Change.Before, rc.Change.After, nil, "id", "revision", "updated_at", "created_at", "url", "status_message", "rollout_status")
		if len(item.Changed) == 0 {
			return nil
		}
		var parts []string
		if shifts := weightShifts(before.routes(), after.routes()); shifts != "" {
			parts = append(parts, "weights "+shifts)
		}
		if after.Status != nil && deref(before.Status) != *after.Status {
			parts = append(parts, "status "+deref(before.Status)+" -> "+*after.Status)
		}
		for _, c := range item.Changed {
			if c != "routes" && c != "route" && c != "status" {
				parts = append(parts, c+" changed")
			}
		}
		if len(parts) == 0 {
			parts = append(parts, "routes changed")
		}
		item.Summary = fmt.Sprintf("endpoint %q: %s", before.Name, strings.Join(parts, "; "))
	}
	events := b.f.events("", before.Name, justAfter(parseTime(before.UpdatedAt)), "who changed it")
	item.History = eventLines(events, func(e registry.Event) string { return endpointEventLine(e) })
	return nil
}

func weightShifts(before, after []routeVals) string {
	w := map[string]int64{}
	for _, r := range before {
		if r.Weight != nil {
			w[r.Name] = *r.Weight
		}
	}
	var parts []string
	for _, r := range after {
		if r.Weight == nil {
			continue
		}
		if old, ok := w[r.Name]; ok && old != *r.Weight {
			parts = append(parts, fmt.Sprintf("%s %d%% -> %d%%", r.Name, old, *r.Weight))
		}
	}
	return strings.Join(parts, ", ")
}

func eventLines(events []registry.Event, line func(registry.Event) string) []string {
	var lines []string
	for _, e := range events {
		if l := line(e); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > maxHistory {
		lines = append([]string{fmt.Sprintf("(%d earlier changes)", len(lines)-maxHistory)}, lines[len(lines)-maxHistory:]...)
	}
	return lines
}

func endpointEventLine(e registry.Event) string {
	var before, after registry.Endpoint
	_ = json.Unmarshal(e.Before, &before)
	_ = json.Unmarshal(e.After, &after)
	at := fmtTime(e.Time)
	lost := func() string {
		w := map[string]int{}
		for _, r := range before.Routes {
			w[r.Name] = r.Weight
		}
		var names []string
		for _, r := range after.Routes {
			if r.Weight < w[r.Name] {
				names = append(names, r.Name)
			}
		}
		if len(names) == 0 {
			return "a route"
		}
		return strings.Join(names, ", ")
	}
	msg := ""
	if after.StatusMessage != "" {
		msg = " (" + after.StatusMessage + ")"
	}
	switch e.Action {
	case registry.ActionEndpointGuardRollback:
		return fmt.Sprintf("guard rolled %s back at %s%s", lost(), at, msg)
	case registry.ActionEndpointGuardDegraded:
		return fmt.Sprintf("guard found every route failing at %s%s", at, msg)
	case registry.ActionEndpointFlagDrain:
		return fmt.Sprintf("traffic drained from %s (flagged version) at %s%s", lost(), at, msg)
	case registry.ActionEndpointRolloutRolledBack:
		return fmt.Sprintf("rollout rolled back at %s%s", at, rolloutMsg(after))
	case registry.ActionEndpointRolloutAborted:
		return fmt.Sprintf("rollout aborted by %s at %s%s", orUnknown(e.Actor), at, rolloutMsg(after))
	case registry.ActionEndpointUpdate:
		s := fmt.Sprintf("endpoint updated by %s at %s", orUnknown(e.Actor), at)
		var rb, ra []routeVals
		for _, r := range before.Routes {
			rb = append(rb, routeVals{Name: r.Name, Weight: ptr(int64(r.Weight))})
		}
		for _, r := range after.Routes {
			ra = append(ra, routeVals{Name: r.Name, Weight: ptr(int64(r.Weight))})
		}
		if shifts := weightShifts(rb, ra); shifts != "" {
			s += ": " + shifts
		}
		return s
	case registry.ActionEndpointCreate:
		return fmt.Sprintf("endpoint created by %s at %s", orUnknown(e.Actor), at)
	case registry.ActionEndpointDelete:
		return fmt.Sprintf("endpoint deleted by %s at %s", orUnknown(e.Actor), at)
	}
	return ""
}

// rolloutMsg is " (<the rollout's message>)" from an event's endpoint,
// "" when it has none.
func rolloutMsg(e registry.Endpoint) string {
	if e.Rollout == nil || e.Rollout.RolloutStatus == nil || e.Rollout.Message == "" {
		return ""
	}
	return " (" + e.Rollout.Message + ")"
}

func ptr[T any](v T) *T { return &v }

func (b *builder) versionDrift(rc ResourceChange, item *DriftItem) error {
	before, after, hasB, hasA, err := decodeChange[versionVals](rc, "drift ")
	if err != nil {
		return err
	}
	if !hasB || before.Version == nil {
		return nil
	}
	v := *before.Version
	if !hasA {
		item.Summary = fmt.Sprintf("version %d of %q was deleted outside Terraform", v, before.Model)
	} else {
		// A version's stages follow stage moves, which have their own items.
		item.Changed = changedAttrs(rc.Change.Before, rc.Change.After, nil, "id", "revision", "updated_at", "created_at", "created_by", "stages")
		if len(item.Changed) == 0 {
			return nil
		}
		var parts []string
		for _, c := range item.Changed {
			switch c {
			case "flagged":
				if after.Flagged != nil && *after.Flagged {
					parts = append(parts, "flagged ("+orUnknown(deref(after.FlagReason))+")")
				} else {
					parts = append(parts, "unflagged")
				}
			case "flag_reason":
			default:
				parts = append(parts, c+" changed")
			}
		}
		item.Summary = fmt.Sprintf("version %d of %q: %s", v, before.Model, strings.Join(parts, ", "))
	}
	events := b.f.events(before.Model, "", justAfter(parseTime(before.UpdatedAt)), "who changed it")
	item.History = eventLines(events, func(e registry.Event) string {
		if e.SubjectType != "" && e.SubjectType != "version" && e.SubjectType != "model_version" {
			return ""
		}
		var mv, was registry.ModelVersion
		if json.Unmarshal(e.After, &mv) != nil || mv.Version != v {
			if json.Unmarshal(e.Before, &mv) != nil || mv.Version != v {
				return ""
			}
		}
		switch e.Action {
		case registry.ActionVersionUpdate:
			// Name what this event changed, not the state it left: an
			// edit of a flagged version's description did not flag it,
			// and a reviewer asks whoever the line names why.
			_ = json.Unmarshal(e.Before, &was)
			what := "updated"
			switch {
			case mv.Flagged && (!was.Flagged || was.FlagReason != mv.FlagReason):
				what = "flagged (" + orUnknown(mv.FlagReason) + ")"
			case was.Flagged && !mv.Flagged:
				what = "unflagged"
			}
			return fmt.Sprintf("v%d %s by %s at %s", v, what, orUnknown(e.Actor), fmtTime(e.Time))
		case registry.ActionVersionDelete:
			return fmt.Sprintf("v%d deleted by %s at %s", v, orUnknown(e.Actor), fmtTime(e.Time))
		}
		return ""
	})
	return nil
}

func (b *builder) modelDrift(rc ResourceChange, item *DriftItem) error {
	var before, after modelVals
	hasB, err := decodeVals(rc.Change.Before, &before)
	if err != nil {
		return decodeErr(rc, "drift before", err)
	}
	hasA, _ := decodeVals(rc.Change.After, &after)
	if !hasB {
		return nil
	}
	if !hasA {
		item.Summary = fmt.Sprintf("model %q was deleted outside Terraform", before.Name)
	} else {
		item.Changed = changedAttrs(rc.Change.Before, rc.Change.After, nil, "id", "revision", "updated_at", "created_at")
		if len(item.Changed) == 0 {
			return nil
		}
		item.Summary = fmt.Sprintf("model %q: %s changed", before.Name, strings.Join(item.Changed, ", "))
	}
	var ua struct {
		UpdatedAt *string `json:"updated_at"`
	}
	_ = json.Unmarshal(rc.Change.Before, &ua)
	events := b.f.events(before.Name, "", justAfter(parseTime(ua.UpdatedAt)), "who changed it")
	item.History = eventLines(events, func(e registry.Event) string {
		switch e.Action {
		case registry.ActionModelUpdate:
			return fmt.Sprintf("model updated by %s at %s", orUnknown(e.Actor), fmtTime(e.Time))
		case registry.ActionModelDelete:
			return fmt.Sprintf("model deleted by %s at %s", orUnknown(e.Actor), fmtTime(e.Time))
		}
		return ""
	})
	sort.Strings(item.Changed)
	return nil
}
