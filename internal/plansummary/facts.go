package plansummary

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// facts fetches what the plan JSON does not hold from the registry, each
// thing once, and remembers what it could not fetch and why. With no
// client every look-up reports "not fetched".
type facts struct {
	ctx context.Context
	c   *client.Client
	// offline says why there is no client.
	offline string

	models    map[string]*registry.Model
	versions  map[string]*registry.ModelVersion
	histories map[string][]registry.StageHistoryEntry
	live      map[string]map[string]registry.LiveSums
	liveAll   map[string]*registry.LiveMetrics
	stages    map[string]*registry.StageAssignment
	endpoints []registry.Endpoint
	fetched   map[string]bool
	missing   []string
	seen      map[string]bool
}

func newFacts(ctx context.Context, c *client.Client, offline string) *facts {
	return &facts{
		ctx: ctx, c: c, offline: offline,
		models:    map[string]*registry.Model{},
		versions:  map[string]*registry.ModelVersion{},
		histories: map[string][]registry.StageHistoryEntry{},
		live:      map[string]map[string]registry.LiveSums{},
		liveAll:   map[string]*registry.LiveMetrics{},
		stages:    map[string]*registry.StageAssignment{},
		fetched:   map[string]bool{},
		seen:      map[string]bool{},
	}
}

func (f *facts) online() bool { return f.c != nil }

// note records something that could not be fetched, once.
func (f *facts) note(what string, err error) {
	msg := what
	switch {
	case err != nil:
		msg += ": " + errText(err)
	case f.c == nil:
		msg += ": " + f.offline
	}
	if !f.seen[msg] {
		f.seen[msg] = true
		f.missing = append(f.missing, msg)
	}
}

// errText is the registry's message without request details that change
// from run to run.
func errText(err error) string {
	var e *registry.Error
	if errors.As(err, &e) {
		return string(e.Code) + ": " + e.Message
	}
	return err.Error()
}

func (f *facts) once(key string) bool {
	if f.fetched[key] {
		return false
	}
	f.fetched[key] = true
	return true
}

// model returns a model from the registry; nil when it does not exist
// (yet) or cannot be fetched.
func (f *facts) model(name string) *registry.Model {
	key := "model " + name
	if f.once(key) {
		if f.c == nil {
			return nil
		}
		m, err := f.c.GetModel(f.ctx, name)
		switch {
		case err == nil:
			f.models[name] = m
		case errors.Is(err, registry.ErrNotFound):
		default:
			f.note(fmt.Sprintf("model %q (stage policies)", name), err)
		}
	}
	return f.models[name]
}

func versionKey(model string, v int64) string { return model + "/" + strconv.FormatInt(v, 10) }

// version returns a version from the registry, or nil (noted).
func (f *facts) version(model string, v int64, why string) *registry.ModelVersion {
	key := versionKey(model, v)
	if f.once("version " + key) {
		if f.c == nil {
			f.note(fmt.Sprintf("version %d of %q (%s)", v, model, why), nil)
			return nil
		}
		mv, err := f.c.GetVersion(f.ctx, model, v)
		if err != nil {
			f.note(fmt.Sprintf("version %d of %q (%s)", v, model, why), err)
			return nil
		}
		f.versions[key] = mv
	}
	return f.versions[key]
}

// history returns a stage's history oldest first; ok is false when it
// could not be fetched.
func (f *facts) history(model, stage, why string) ([]registry.StageHistoryEntry, bool) {
	key := model + "/" + stage
	if f.once("history " + key) {
		if f.c == nil {
			f.note(fmt.Sprintf("history of stage %q of %q (%s)", stage, model, why), nil)
			return nil, false
		}
		h, err := f.c.AllStageHistory(f.ctx, model, stage)
		switch {
		case err == nil:
		case errors.Is(err, registry.ErrNotFound):
			h = nil // a model created by this plan has no history
		default:
			f.note(fmt.Sprintf("history of stage %q of %q (%s)", stage, model, why), err)
			return nil, false
		}
		sort.SliceStable(h, func(i, j int) bool { return h[i].ID < h[j].ID })
		f.histories[key] = h
	}
	h, ok := f.histories[key]
	return h, ok
}

// trustedLive returns a version's trusted live feedback per metric over
// the window stage policies judge (registry.PolicyLiveWindow); ok false
// when it could not be fetched.
func (f *facts) trustedLive(model string, version int64, why string) (map[string]registry.LiveSums, bool) {
	key := fmt.Sprintf("%s/%d", model, version)
	if f.once("live " + key) {
		if f.c == nil {
			f.note(fmt.Sprintf("live metrics of version %d of %q (%s)", version, model, why), nil)
			return nil, false
		}
		lm, err := f.versionLive(model, version)
		if err != nil {
			f.note(fmt.Sprintf("live metrics of version %d of %q (%s)", version, model, why), err)
			return nil, false
		}
		sums := map[string]registry.LiveSums{}
		for name, m := range lm.Trusted {
			// The rule judges the count and the mean, which these carry.
			sums[name] = registry.LiveSums{Count: m.Count, Sum: m.Sum}
		}
		f.live[key] = sums
	}
	l, ok := f.live[key]
	return l, ok
}

// versionLive fetches a version's live metrics of the policy window once.
func (f *facts) versionLive(model string, version int64) (*registry.LiveMetrics, error) {
	key := fmt.Sprintf("%s/%d", model, version)
	if lm, ok := f.liveAll[key]; ok {
		return lm, nil
	}
	lm, err := f.c.VersionLiveMetrics(f.ctx, model, version, registry.FormatWindow(registry.PolicyLiveWindow))
	if err != nil {
		return nil, err
	}
	f.liveAll[key] = lm
	return lm, nil
}

// stage returns the current assignment of a stage: nil with ok when it is
// unassigned, ok false when it could not be fetched.
func (f *facts) stage(model, stage, why string) (*registry.StageAssignment, bool) {
	key := model + "/" + stage
	if f.once("stage " + key) {
		if f.c == nil {
			f.note(fmt.Sprintf("stage %q of %q (%s)", stage, model, why), nil)
			return nil, false
		}
		a, err := f.c.GetStage(f.ctx, model, stage)
		switch {
		case err == nil:
			f.stages[key] = a
		case errors.Is(err, registry.ErrNotFound):
			f.stages[key] = nil
		default:
			f.note(fmt.Sprintf("stage %q of %q (%s)", stage, model, why), err)
			return nil, false
		}
	}
	a, ok := f.stages[key]
	return a, ok
}

// allEndpoints returns every endpoint of the registry; nil when it could
// not be fetched (noted).
func (f *facts) allEndpoints(why string) []registry.Endpoint {
	if f.once("endpoints") {
		if f.c == nil {
			f.note("the registry's endpoints ("+why+")", nil)
			return nil
		}
		eps, err := f.c.AllEndpoints(f.ctx)
		if err != nil {
			f.note("the registry's endpoints ("+why+")", err)
			return nil
		}
		f.endpoints = eps
	}
	return f.endpoints
}

var ruleRE = regexp.MustCompile(`stage policy rule ([a-z_]+) failed`)

// dryRun asks the registry whether assigning version to stage is allowed
// now (PUT ...?dry_run=true, which read tokens may call).
func (f *facts) dryRun(model, stage string, version int64, reason string) *Verdict {
	if f.c == nil {
		f.note(fmt.Sprintf("dry run of %s -> v%d of %q", stage, version, model), nil)
		return &Verdict{Outcome: Unknown, Message: "not checked: " + f.offline}
	}
	dry, err := f.c.DryRunAssignStage(f.ctx, model, stage, registry.StageAssign{Version: version, Reason: reason})
	if err == nil {
		v := &Verdict{Outcome: Pass, Permitted: &dry.Permitted, Permission: dry.Permission, PermissionRule: dry.PermissionRule}
		if !dry.Allowed {
			v.Outcome = Unknown
		}
		return v
	}
	var e *registry.Error
	if errors.As(err, &e) && e.Code == registry.CodePolicyViolation {
		return &Verdict{Outcome: Fail, Rules: policyRules(e), Message: e.Message}
	}
	if errors.Is(err, registry.ErrNotFound) {
		return &Verdict{Outcome: Unknown, Message: "not checked: the registry does not have it yet (" + errText(err) + ")"}
	}
	f.note(fmt.Sprintf("dry run of %s -> v%d of %q", stage, version, model), err)
	return &Verdict{Outcome: Unknown, Message: "not checked: " + errText(err)}
}

// policyRules lists the rules a policy_violation names: the message
// lists every failing rule, Rule is the first.
func policyRules(e *registry.Error) []string {
	var rules []string
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			rules = append(rules, r)
		}
	}
	add(e.Rule)
	for _, m := range ruleRE.FindAllStringSubmatch(e.Message, -1) {
		add(m[1])
	}
	return rules
}

// events returns audit log entries for a model or an endpoint since a
// time (zero: all), oldest first; nil when not fetched (noted).
func (f *facts) events(model, endpoint string, since time.Time, why string) []registry.Event {
	what := fmt.Sprintf("audit log of model %q (%s)", model, why)
	if endpoint != "" {
		what = fmt.Sprintf("audit log of endpoint %q (%s)", endpoint, why)
	}
	if f.c == nil {
		f.note(what, nil)
		return nil
	}
	var out []registry.Event
	filter := registry.EventFilter{Model: model, Endpoint: endpoint, Since: since}
	filter.PageSize = registry.MaxPageSize
	for range 50 {
		page, err := f.c.ListEvents(f.ctx, filter)
		if err != nil {
			f.note(what, err)
			return out
		}
		out = append(out, page.Items...)
		if page.NextPageToken == "" {
			break
		}
		filter.PageToken = page.NextPageToken
	}
	return out
}
