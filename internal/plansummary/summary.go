package plansummary

import (
	"fmt"
	"strconv"
)

// Summary is what plan-summary reports; `--format json` prints it as is,
// Markdown renders it.
type Summary struct {
	TerraformVersion string `json:"terraform_version"`
	// Registry is the address the facts came from, empty when none.
	Registry string `json:"registry,omitempty"`
	// Counts of our resources by action.
	Counts    Counts            `json:"counts"`
	Models    []*ModelSummary   `json:"models"`
	Endpoints []*EndpointChange `json:"endpoints"`
	Drift     []*DriftItem      `json:"drift"`
	// Rollouts are the endpoints whose latest rollout is running, or
	// ended without completing, as refreshed before this plan.
	Rollouts []*RolloutStanding `json:"rollouts"`
	// Verdict is the whole plan's: VerdictFails when an error says the
	// apply would fail (or do what nobody asked for) as Terraform orders it.
	Verdict    string       `json:"verdict"`
	Errors     []*PlanError `json:"errors"`
	Warnings   []*Warning   `json:"warnings"`
	NotFetched []string     `json:"not_fetched"`
	// Errored: Terraform could not finish the plan.
	Errored bool `json:"errored,omitempty"`
}

// Counts are how many of our resources each action touches.
type Counts struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Replace int `json:"replace"`
	Delete  int `json:"delete"`
}

// ModelSummary groups everything the plan does to one model.
type ModelSummary struct {
	Name string `json:"name"`
	// Action on the mlregistry_model resource ("" when it is not in the
	// plan or not changed).
	Action   Action           `json:"action,omitempty"`
	Address  string           `json:"address,omitempty"`
	Changed  []string         `json:"changed,omitempty"`
	Stages   []*StageMove     `json:"stage_moves"`
	Versions []*VersionChange `json:"versions"`
}

// VersionRef names a version: by number, or, for one created by this
// plan (its number unknown until apply), by its resource address.
type VersionRef struct {
	Version int64  `json:"version,omitempty"`
	New     string `json:"new,omitempty"`
}

func (v *VersionRef) String() string {
	switch {
	case v == nil:
		return "(none)"
	case v.New != "":
		return "new version (" + v.New + ")"
	case v.Version == 0:
		return "a version not known until apply"
	}
	return "v" + strconv.FormatInt(v.Version, 10)
}

func (v *VersionRef) equal(o *VersionRef) bool {
	if v == nil || o == nil {
		return v == o
	}
	return *v == *o
}

// StageMove is a stage pointed at another version (or assigned, or
// unassigned).
type StageMove struct {
	Address string      `json:"address"`
	Model   string      `json:"model"`
	Stage   string      `json:"stage"`
	Action  Action      `json:"action"`
	From    *VersionRef `json:"from,omitempty"`
	To      *VersionRef `json:"to,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	// FlaggedTo: the target version is flagged.
	FlaggedTo bool          `json:"flagged_to,omitempty"`
	Metrics   []MetricDelta `json:"metrics"`
	// MetricsNote says why metrics are missing, when they are.
	MetricsNote string `json:"metrics_note,omitempty"`
	// Live are the target version's live metrics of the last day, from
	// every endpoint, when the registry has any.
	Live []LiveLine `json:"live,omitempty"`
	// DryRun is the registry's own verdict on the move as the registry is now.
	DryRun *Verdict `json:"dry_run,omitempty"`
	// WholePlan is the verdict once the plan's other moves are counted.
	WholePlan *Verdict `json:"whole_plan,omitempty"`
	// LeftEmpty: this unassign leaves the stage with no version, and
	// nothing else in the plan assigns it.
	LeftEmpty bool `json:"left_empty,omitempty"`
}

// LiveLine is one live metric of a version: every feedback value, and the
// trusted part (write and admin tokens) that policies and guards judge.
type LiveLine struct {
	Metric       string  `json:"metric"`
	Count        int64   `json:"count"`
	Mean         float64 `json:"mean"`
	TrustedCount int64   `json:"trusted_count"`
	TrustedMean  float64 `json:"trusted_mean"`
}

// MetricDelta compares one metric of the two versions of a move.
type MetricDelta struct {
	Name  string   `json:"name"`
	From  *float64 `json:"from"`
	To    *float64 `json:"to"`
	Delta *float64 `json:"delta"`
}

func (m MetricDelta) String() string {
	s := m.Name + " " + fmtNum(m.From) + " -> " + fmtNum(m.To)
	if m.Delta != nil {
		d := *m.Delta
		sign := "+"
		if d < 0 {
			sign = "-"
			d = -d
		}
		s += " (" + sign + strconv.FormatFloat(d, 'f', -1, 64) + ")"
	}
	return s
}

func fmtNum(f *float64) string {
	if f == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// roundSig rounds to 10 significant digits, so 0.93-0.91 prints 0.02.
func roundSig(f float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
	if err != nil {
		return f
	}
	return r
}

// Verdict outcomes.
const (
	Pass    = "pass"
	Fail    = "fail"
	Unknown = "unknown"
)

// Verdict is a stage policy decision.
type Verdict struct {
	Outcome string `json:"outcome"`
	// Rules that fail, first the one the registry names.
	Rules   []string `json:"rules,omitempty"`
	Message string   `json:"message,omitempty"`
	// Permitted and Permission: from the registry's dry run, whether the
	// caller's token could make the change itself.
	Permitted  *bool  `json:"permitted,omitempty"`
	Permission string `json:"permission,omitempty"`
	// PermissionRule is the registry's reason in a word: "scope" (the
	// token is read-only) or "token_stages" (it may not move this stage).
	PermissionRule string `json:"permission_rule,omitempty"`
	// Needs lists stage moves of this plan that must be applied before
	// this one (addresses) for it to pass.
	Needs []string `json:"needs,omitempty"`
	// Advice says what to do (depends_on, a second apply).
	Advice string `json:"advice,omitempty"`
}

// VersionChange is a model version resource the plan touches.
type VersionChange struct {
	Address string      `json:"address"`
	Model   string      `json:"model"`
	Version *VersionRef `json:"version"`
	// Action: create (added), update (changed in place), replace (an
	// artifact change: the registry deletes the version and creates a new
	// one with a new number), delete (destroyed).
	Action     Action             `json:"action"`
	Changed    []string           `json:"changed,omitempty"`
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	Flagged    bool               `json:"flagged,omitempty"`
	FlagReason string             `json:"flag_reason,omitempty"`
	Stages     []string           `json:"stages,omitempty"`
	Source     string             `json:"source,omitempty"`
}

// EndpointChange is an endpoint whose routes, stage or guard change.
type EndpointChange struct {
	Address   string        `json:"address"`
	Name      string        `json:"name"`
	Model     string        `json:"model"`
	Action    Action        `json:"action"`
	StageFrom string        `json:"stage_from,omitempty"`
	StageTo   string        `json:"stage_to,omitempty"`
	Routes    []*RouteShift `json:"routes"`
	GuardFrom string        `json:"guard_from,omitempty"`
	GuardTo   string        `json:"guard_to,omitempty"`
	// RolloutFrom and RolloutTo are the rollout configuration, when it
	// changes; Rollout is the rollout this update starts.
	RolloutFrom string       `json:"rollout_from,omitempty"`
	RolloutTo   string       `json:"rollout_to,omitempty"`
	Rollout     *RolloutPlan `json:"rollout,omitempty"`
	OtherAttrs  []string     `json:"changed,omitempty"`
}

// RouteShift is one route's weight before and after.
type RouteShift struct {
	Name        string      `json:"name"`
	VersionFrom *VersionRef `json:"version_from,omitempty"`
	VersionTo   *VersionRef `json:"version_to,omitempty"`
	WeightFrom  *int64      `json:"weight_from,omitempty"`
	WeightTo    *int64      `json:"weight_to,omitempty"`
	FlaggedTo   bool        `json:"flagged_to,omitempty"`
	// MatchFrom and MatchTo are the route's header match ("" for none).
	MatchFrom string `json:"match_from,omitempty"`
	MatchTo   string `json:"match_to,omitempty"`
	// Shadow describes a shadow route after the plan ("" for others).
	Shadow string `json:"shadow,omitempty"`
	// PolicyNote says when the stage policy of the endpoint's stage is
	// checked for this route's version.
	PolicyNote string `json:"policy_note,omitempty"`
}

// DriftItem is a change Terraform found at refresh (made outside
// Terraform), with what the registry's history says about it.
type DriftItem struct {
	Address string   `json:"address"`
	Type    string   `json:"type"`
	Action  Action   `json:"action"`
	Summary string   `json:"summary"`
	Changed []string `json:"changed,omitempty"`
	// History lines from the stage history or audit log.
	History []string `json:"history,omitempty"`
	// Reverted: this plan puts the configuration back.
	Reverted bool `json:"reverted"`
}

// Whole-plan verdicts.
const (
	VerdictApplies = "applies"
	VerdictFails   = "fails"
)

// Error codes: why a plan cannot apply as Terraform orders it.
const (
	// ErrDestroyedWhileHeld: a version is destroyed before the stage or
	// route that holds it moves away.
	ErrDestroyedWhileHeld = "destroyed_while_held"
	// ErrHeldNotMoved: a version is destroyed and nothing in the plan
	// moves its stage or route away.
	ErrHeldNotMoved = "held_not_moved"
	// ErrUnordered: a stage or route moves away from a version the plan
	// destroys, but nothing orders the two.
	ErrUnordered = "unordered"
	// ErrStageLeftEmpty: an assignment is replaced by one for another
	// stage (a renamed stage), which unassigns the old stage.
	ErrStageLeftEmpty = "stage_left_empty"
	// ErrDuplicateArtifact: a version is replaced with
	// create_before_destroy but keeps its checksum, so the new version
	// collides with the old one, which still exists.
	ErrDuplicateArtifact = "duplicate_artifact"
	// ErrPolicy: the stage policy refuses a move when it is applied.
	ErrPolicy = "policy"
	// ErrFlagged: a stage or route moves to a flagged version.
	ErrFlagged = "flagged"
	// ErrPlanErrored: Terraform could not finish the plan; it refuses to
	// apply a plan file saved that way.
	ErrPlanErrored = "plan_errored"
)

// PlanError is a reason the plan cannot apply as it is, with the fix.
type PlanError struct {
	Code    string `json:"code"`
	Address string `json:"address,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// Warning kinds.
const (
	WarnProduction = "production"
	WarnReplace    = "replace"
	WarnGuard      = "guard_removed"
	WarnLoosening  = "loosening"
	WarnOrdering   = "ordering"
	WarnUnflag     = "unflag"
	// WarnRollout: an endpoint's last rollout was rolled back or aborted,
	// or a running rollout is cut short.
	WarnRollout = "rollout"
)

// Warning is something a reviewer must not miss.
type Warning struct {
	Kind    string `json:"kind"`
	Address string `json:"address,omitempty"`
	Message string `json:"message"`
}

func warnf(kind, address, format string, args ...any) *Warning {
	return &Warning{Kind: kind, Address: address, Message: fmt.Sprintf(format, args...)}
}
