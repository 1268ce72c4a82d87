package plansummary

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// rolloutVals is an endpoint's rollout configuration as the plan holds it
// (a block: an object, or a list of one).
type rolloutVals struct {
	Steps         []int64    `json:"steps"`
	Bake          *string    `json:"bake"`
	MaxErrorRate  *float64   `json:"max_error_rate"`
	MaxLatencyP99 *string    `json:"max_latency_p99"`
	MinRequests   *int64     `json:"min_requests"`
	Prometheus    []promVals `json:"prometheus"`
}

type promVals struct {
	Query      *string  `json:"query"`
	Threshold  *float64 `json:"threshold"`
	Comparison *string  `json:"comparison"`
}

// rolloutStatusVals is the computed rollout_status: where the endpoint's
// latest rollout stands.
type rolloutStatusVals struct {
	State      *string            `json:"state"`
	Step       *int64             `json:"step"`
	Percent    *int64             `json:"percent"`
	Weights    map[string]float64 `json:"weights"`
	StartedAt  *string            `json:"started_at"`
	NextStepAt *string            `json:"next_step_at"`
	LastGate   *string            `json:"last_gate"`
	Message    *string            `json:"message"`
}

// decodeRollout reads the rollout block; nil when it is null or absent.
func decodeRollout(raw json.RawMessage) *rolloutVals {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var r rolloutVals
	if raw[0] == '[' {
		var list []rolloutVals
		if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
			return nil
		}
		r = list[0]
	} else if json.Unmarshal(raw, &r) != nil {
		return nil
	}
	return &r
}

// String describes the configuration in one line.
func (r *rolloutVals) String() string {
	if r == nil {
		return "none"
	}
	steps := make([]string, len(r.Steps))
	for i, p := range r.Steps {
		steps[i] = strconv.FormatInt(p, 10) + "%"
	}
	s := "steps " + strings.Join(steps, ", ") + "; bake " + orKnownAtApply(r.Bake) + " per step"
	if g := r.gates(); len(g) > 0 {
		s += "; gates: " + strings.Join(g, "; ")
	} else {
		s += "; no gates (timed steps)"
	}
	return s
}

func orKnownAtApply(s *string) string {
	if s == nil {
		return "(known at apply)"
	}
	return *s
}

// gates names each gate as a reviewer reads it.
func (r *rolloutVals) gates() []string {
	var out []string
	if r.MaxErrorRate != nil {
		out = append(out, "error rate ≤ "+fmtNum(r.MaxErrorRate))
	}
	if r.MaxLatencyP99 != nil && *r.MaxLatencyP99 != "" {
		out = append(out, "p99 ≤ "+*r.MaxLatencyP99)
	}
	if len(out) > 0 && r.MinRequests != nil {
		out[len(out)-1] += fmt.Sprintf(" (judged once a gaining route has %d requests)", *r.MinRequests)
	}
	for _, p := range r.Prometheus {
		out = append(out, fmt.Sprintf("prometheus `%s` %s %s", deref(p.Query), deref(p.Comparison), fmtNum(p.Threshold)))
	}
	return out
}

// stateIcon marks a rollout state in the summary.
func stateIcon(state string) string {
	switch state {
	case registry.RolloutProgressing:
		return "⏳"
	case registry.RolloutPaused:
		return "⏸️"
	case registry.RolloutCompleted:
		return "✅"
	}
	return "⚠️"
}

// RolloutPlan is the rollout an endpoint update starts: the weights each
// step puts in force, from the weights in force now.
type RolloutPlan struct {
	// Config is the rollout configuration in one line.
	Config string `json:"config"`
	// Columns are the routes in force at some step, in order; a name
	// "<route>@v<N>" is the share an old version keeps while it moves.
	Columns []RolloutColumn `json:"columns"`
	// Rows: the weights in force now, then one per step.
	Rows []RolloutRow `json:"rows"`
	// Replaces says which running rollout this one replaces.
	Replaces string `json:"replaces,omitempty"`
	// Wait: apply waits for the rollout to complete (wait_for_rollout).
	Wait bool `json:"wait_for_rollout"`
	// Note says why the steps are not shown, when they are not.
	Note string `json:"note,omitempty"`
}

// RolloutColumn is one route in force during a rollout.
type RolloutColumn struct {
	Name    string      `json:"name"`
	Version *VersionRef `json:"version,omitempty"`
}

// RolloutRow is the weights in force at one step (Percent 0: now).
type RolloutRow struct {
	Step    int   `json:"step"`
	Percent int   `json:"percent"`
	Weights []int `json:"weights"` // per column; -1: not in force
}

// RolloutStanding is where an endpoint's latest rollout stands, from the
// refreshed state, whatever the plan does to the endpoint.
type RolloutStanding struct {
	Address    string `json:"address"`
	Name       string `json:"name"`
	State      string `json:"state"`
	Step       int64  `json:"step,omitempty"`
	Percent    int64  `json:"percent,omitempty"`
	Weights    string `json:"weights,omitempty"`
	StartedAt  string `json:"started_at,omitempty"`
	NextStepAt string `json:"next_step_at,omitempty"`
	LastGate   string `json:"last_gate,omitempty"`
	Message    string `json:"message,omitempty"`
}

// standing reads rollout_status; nil when the endpoint never rolled out
// or its last rollout completed (nothing to review).
func standing(address, name string, st *rolloutStatusVals) *RolloutStanding {
	if st == nil || st.State == nil || *st.State == "" || *st.State == registry.RolloutCompleted {
		return nil
	}
	rs := &RolloutStanding{Address: address, Name: name, State: *st.State,
		StartedAt: fmtStamp(st.StartedAt), NextStepAt: fmtStamp(st.NextStepAt),
		LastGate: deref(st.LastGate), Message: deref(st.Message)}
	if st.Step != nil {
		rs.Step = *st.Step
	}
	if st.Percent != nil {
		rs.Percent = *st.Percent
	}
	rs.Weights = fmtWeightMap(st.Weights)
	return rs
}

func (rs *RolloutStanding) active() bool {
	return rs != nil && (rs.State == registry.RolloutProgressing || rs.State == registry.RolloutPaused)
}

// fmtStamp shows an RFC 3339 attribute in the summary's time format.
func fmtStamp(s *string) string {
	t := parseTime(s)
	if t.IsZero() {
		return ""
	}
	return fmtTime(t)
}

// fmtWeightMap is "stable 80%, canary 20%", heaviest first.
func fmtWeightMap(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %s%%", n, strconv.FormatFloat(m[n], 'f', -1, 64))
	}
	return strings.Join(parts, ", ")
}

// unknownVersion stands for a version created by this plan: it is no
// version the endpoint serves now, which is all a rollout needs to know.
const unknownVersion = -1

// inForce are the weights the gateway serves now: the running rollout's
// (its weights name old shares "<route>@v<N>"; other names carry the
// version of the configured route of that name), else the routes.
func inForce(before []routeVals, running *RolloutStanding, st *rolloutStatusVals) []registry.Route {
	version := map[string]int64{}
	for _, r := range before {
		if r.Version != nil {
			version[r.Name] = *r.Version
		}
	}
	var out []registry.Route
	if running.active() && len(st.Weights) > 0 {
		names := make([]string, 0, len(st.Weights))
		for n := range st.Weights {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v, ok := version[n]
			if _, num, cut := strings.Cut(n, "@v"); cut {
				if parsed, err := strconv.ParseInt(num, 10, 64); err == nil {
					v, ok = parsed, true
				}
			}
			if !ok {
				v = unknownVersion
			}
			out = append(out, registry.Route{Name: n, Version: v, Weight: int(st.Weights[n])})
		}
		return out
	}
	for _, r := range before {
		out = append(out, routeOf(r))
	}
	return out
}

func routeOf(r routeVals) registry.Route {
	rt := registry.Route{Name: r.Name, Version: unknownVersion}
	if r.Version != nil {
		rt.Version = *r.Version
	}
	if r.Weight != nil {
		rt.Weight = int(*r.Weight)
	}
	if r.Shadow != nil && *r.Shadow {
		rt.Shadow = true
		if r.Share != nil {
			rt.Share = *r.Share
		}
	}
	return rt
}

// planRollout is the rollout an update of an endpoint with a rollout
// configuration starts, nil when the update moves no traffic (only
// upstreams, matches, shadows or other settings change: those apply at
// once).
func planRollout(before, after *endpointVals, spec *rolloutVals, running *RolloutStanding, unknownRoutes map[int]bool, versionTo map[string]*VersionRef) *RolloutPlan {
	var target []registry.Route
	weightsKnown := true
	for i, r := range after.routes() {
		rt := routeOf(r)
		if r.Weight == nil {
			weightsKnown = false
		}
		if r.Version == nil && !unknownRoutes[i] {
			weightsKnown = false
		}
		target = append(target, rt)
	}
	var configured []registry.Route
	for _, r := range before.routes() {
		configured = append(configured, routeOf(r))
	}
	if weightsKnown && !registry.RoutesNeedRollout(configured, target) {
		return nil
	}
	p := &RolloutPlan{Config: spec.String(), Wait: after.WaitForRollout != nil && *after.WaitForRollout}
	if running.active() {
		p.Replaces = fmt.Sprintf("the rollout %s at step %d (%d%%), from the weights it has in force", running.State, running.Step, running.Percent)
	}
	if !weightsKnown || len(spec.Steps) == 0 {
		p.Note = "the weights or steps are not known until apply"
		return p
	}
	from := inForce(before.routes(), running, before.RolloutStatus)
	col := map[string]int{}
	addCol := func(rt registry.Route) int {
		if i, ok := col[rt.Name]; ok {
			return i
		}
		c := RolloutColumn{Name: rt.Name}
		switch {
		case versionTo[rt.Name] != nil:
			c.Version = versionTo[rt.Name]
		case rt.Version != unknownVersion:
			c.Version = &VersionRef{Version: rt.Version}
		}
		col[rt.Name] = len(p.Columns)
		p.Columns = append(p.Columns, c)
		return col[rt.Name]
	}
	row := func(step, percent int, routes []registry.Route) {
		r := RolloutRow{Step: step, Percent: percent}
		for _, rt := range routes {
			if rt.Shadow {
				continue
			}
			i := addCol(rt)
			for len(r.Weights) <= i {
				r.Weights = append(r.Weights, -1)
			}
			r.Weights[i] = rt.Weight
		}
		p.Rows = append(p.Rows, r)
	}
	for _, rt := range target {
		if !rt.Shadow {
			addCol(rt)
		}
	}
	// At 0% the weights in force are named as the steps name them (an
	// old version's share as "<route>@v<N>").
	row(0, 0, registry.RolloutWeights(from, target, 0))
	for i, pct := range spec.Steps {
		row(i+1, int(pct), registry.RolloutWeights(from, target, int(pct)))
	}
	for i := range p.Rows {
		for len(p.Rows[i].Weights) < len(p.Columns) {
			p.Rows[i].Weights = append(p.Rows[i].Weights, -1)
		}
	}
	return p
}

// rolloutWarning is the warning for an endpoint whose last rollout did not
// complete, when the plan changes the endpoint again.
func rolloutWarning(address string, rs *RolloutStanding, restarts bool) *Warning {
	what := "was rolled back"
	if rs.State == registry.RolloutAborted {
		what = "was aborted"
	}
	why := rs.Message
	if why == "" {
		why = rs.LastGate
	}
	msg := fmt.Sprintf("Endpoint %q: its last rollout %s (%s), so the registry serves the weights from before it.", rs.Name, what, why)
	if restarts {
		msg += " This plan starts the same change again: check that the cause is fixed."
	}
	return &Warning{Kind: WarnRollout, Address: address, Message: msg}
}
