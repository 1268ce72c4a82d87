package provider

// The rollout side of mlregistry_endpoint: the `rollout` block, the
// computed `rollout_status`, `wait_for_rollout`, and the shadow fields of
// a route. The registry drives a rollout; the provider only writes its
// configuration, shows where it stands, and (when asked) waits for it.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

type rolloutModel struct {
	Steps         types.List   `tfsdk:"steps"`
	Bake          types.String `tfsdk:"bake"`
	MaxErrorRate  types.Number `tfsdk:"max_error_rate"`
	MaxLatencyP99 types.String `tfsdk:"max_latency_p99"`
	MinRequests   types.Int64  `tfsdk:"min_requests"`
	Prometheus    types.List   `tfsdk:"prometheus"`
	MinLive       types.Map    `tfsdk:"min_live_metrics"`
	MinLiveCount  types.Int64  `tfsdk:"min_live_count"`
}

type prometheusGateModel struct {
	Query      types.String `tfsdk:"query"`
	Threshold  types.Number `tfsdk:"threshold"`
	Comparison types.String `tfsdk:"comparison"`
}

type rolloutStatusModel struct {
	State      types.String `tfsdk:"state"`
	Step       types.Int64  `tfsdk:"step"`
	Percent    types.Int64  `tfsdk:"percent"`
	Weights    types.Map    `tfsdk:"weights"`
	StartedAt  types.String `tfsdk:"started_at"`
	NextStepAt types.String `tfsdk:"next_step_at"`
	LastGate   types.String `tfsdk:"last_gate"`
	Message    types.String `tfsdk:"message"`
}

// endpointRolloutFields are the rollout attributes the resource and the
// data source share. They are not part of endpointFields because the
// version 0 state (see state_upgrade.go) has none of them.
type endpointRolloutFields struct {
	Rollout       types.Object `tfsdk:"rollout"`
	RolloutStatus types.Object `tfsdk:"rollout_status"`
}

var (
	prometheusGateAttrTypes = map[string]attr.Type{
		"query": types.StringType, "threshold": types.NumberType, "comparison": types.StringType,
	}
	prometheusGateObjectType = types.ObjectType{AttrTypes: prometheusGateAttrTypes}
	rolloutAttrTypes         = map[string]attr.Type{
		"steps": types.ListType{ElemType: types.Int64Type}, "bake": types.StringType,
		"max_error_rate": types.NumberType, "max_latency_p99": types.StringType, "min_requests": types.Int64Type,
		"prometheus":       types.ListType{ElemType: prometheusGateObjectType},
		"min_live_metrics": types.MapType{ElemType: types.NumberType}, "min_live_count": types.Int64Type,
	}
	rolloutStatusAttrTypes = map[string]attr.Type{
		"state": types.StringType, "step": types.Int64Type, "percent": types.Int64Type,
		"weights": types.MapType{ElemType: types.Int64Type}, "started_at": types.StringType,
		"next_step_at": types.StringType, "last_gate": types.StringType, "message": types.StringType,
	}
)

// The poll of wait_for_rollout backs off from the first to the second.
const (
	firstWaitPoll = 100 * time.Millisecond
	maxWaitPoll   = time.Second
)

// rolloutEventsDoc lists the events a rollout records, for the docs.
const rolloutEventsDoc = "`endpoint.rollout_started`, `endpoint.rollout_step`, `endpoint.rollout_paused`, `endpoint.rollout_resumed`, " +
	"`endpoint.rollout_aborted`, `endpoint.rollout_rolled_back` (with the failing gate and its value) and `endpoint.rollout_completed`"

// rolloutStatusOf is the endpoint's rollout status, nil before its first
// rollout.
func rolloutStatusOf(e *registry.Endpoint) *registry.RolloutStatus {
	if e == nil || e.Rollout == nil {
		return nil
	}
	return e.Rollout.RolloutStatus
}

// rolloutValue is the rollout block for the registry's spec: null when
// the endpoint has none. prior keeps numbers and durations as written.
func rolloutValue(ctx context.Context, r *registry.EndpointRollout, prior types.Object) (types.Object, diag.Diagnostics) {
	if r == nil || len(r.Steps) == 0 {
		return types.ObjectNull(rolloutAttrTypes), nil
	}
	var diags diag.Diagnostics
	var p rolloutModel
	if isKnown(prior) {
		diags.Append(prior.As(ctx, &p, objectAsOptions)...)
	}
	steps := make([]int64, len(r.Steps))
	for i, s := range r.Steps {
		steps[i] = int64(s)
	}
	stepsList, d := types.ListValueFrom(ctx, types.Int64Type, steps)
	diags.Append(d...)
	var priorGates []prometheusGateModel
	if isKnown(p.Prometheus) {
		diags.Append(p.Prometheus.ElementsAs(ctx, &priorGates, false)...)
	}
	gates := make([]attr.Value, 0, len(r.Prometheus))
	for i, g := range r.Prometheus {
		var pg prometheusGateModel
		if i < len(priorGates) {
			pg = priorGates[i]
		}
		obj, d := types.ObjectValueFrom(ctx, prometheusGateAttrTypes, prometheusGateModel{
			Query: types.StringValue(g.Query), Threshold: numberValueLike(g.Threshold, pg.Threshold), Comparison: types.StringValue(g.Comparison),
		})
		diags.Append(d...)
		gates = append(gates, obj)
	}
	// A block list is never null in a configuration: no prometheus blocks
	// is an empty list.
	gateList, d := types.ListValue(prometheusGateObjectType, gates)
	diags.Append(d...)
	m := rolloutModel{
		Steps:         stepsList,
		Bake:          durationValue(r.Bake, p.Bake),
		MaxErrorRate:  types.NumberNull(),
		MaxLatencyP99: durationValue(r.MaxLatencyP99, p.MaxLatencyP99),
		MinRequests:   types.Int64Null(),
		Prometheus:    gateList,
	}
	if r.MaxErrorRate != nil {
		m.MaxErrorRate = numberValueLike(*r.MaxErrorRate, p.MaxErrorRate)
	}
	if r.MinRequests != 0 || isKnown(p.MinRequests) {
		m.MinRequests = types.Int64Value(r.MinRequests)
	}
	m.MinLive, d = float64MapValue(ctx, r.MinLiveMetrics, p.MinLive)
	diags.Append(d...)
	m.MinLiveCount = types.Int64Null()
	if r.MinLiveCount > 0 {
		m.MinLiveCount = types.Int64Value(r.MinLiveCount)
	}
	v, d := types.ObjectValueFrom(ctx, rolloutAttrTypes, m)
	diags.Append(d...)
	return v, diags
}

// rolloutSpecFrom is the registry's spec for a rollout block (nil when
// the block is absent). Unknown values read as zero: callers convert only
// known plans, or validate what is known.
func rolloutSpecFrom(ctx context.Context, o types.Object) (*registry.RolloutSpec, diag.Diagnostics) {
	if !isKnown(o) {
		return nil, nil
	}
	var m rolloutModel
	diags := o.As(ctx, &m, objectAsOptions)
	spec := &registry.RolloutSpec{
		Bake:          m.Bake.ValueString(),
		MaxLatencyP99: m.MaxLatencyP99.ValueString(),
		MinRequests:   m.MinRequests.ValueInt64(),
	}
	if isKnown(m.Steps) {
		var steps []int64
		diags.Append(m.Steps.ElementsAs(ctx, &steps, false)...)
		for _, s := range steps {
			spec.Steps = append(spec.Steps, int(s))
		}
	}
	if isKnown(m.MaxErrorRate) {
		f := numberFloat64Of(m.MaxErrorRate)
		spec.MaxErrorRate = &f
	}
	if isKnown(m.MinLive) {
		var d diag.Diagnostics
		spec.MinLiveMetrics, d = float64MapFrom(ctx, m.MinLive)
		diags.Append(d...)
	}
	spec.MinLiveCount = m.MinLiveCount.ValueInt64()
	if isKnown(m.Prometheus) {
		var gates []prometheusGateModel
		diags.Append(m.Prometheus.ElementsAs(ctx, &gates, false)...)
		for _, g := range gates {
			var threshold float64
			if isKnown(g.Threshold) {
				threshold = numberFloat64Of(g.Threshold)
			}
			spec.Prometheus = append(spec.Prometheus, registry.PrometheusGate{
				Query: g.Query.ValueString(), Threshold: threshold, Comparison: g.Comparison.ValueString(),
			})
		}
	}
	return spec, diags
}

// rolloutStatusValue is the computed rollout_status: null before the
// endpoint's first rollout.
func rolloutStatusValue(ctx context.Context, s *registry.RolloutStatus) (types.Object, diag.Diagnostics) {
	if s == nil {
		return types.ObjectNull(rolloutStatusAttrTypes), nil
	}
	var diags diag.Diagnostics
	weights := map[string]int64{}
	for _, rt := range s.Routes {
		if !rt.Shadow {
			weights[rt.Name] = int64(rt.Weight)
		}
	}
	wm, d := types.MapValueFrom(ctx, types.Int64Type, weights)
	diags.Append(d...)
	m := rolloutStatusModel{
		State:      types.StringValue(s.State),
		Step:       types.Int64Value(int64(s.Step)),
		Percent:    types.Int64Value(int64(stepPercent(s))),
		Weights:    wm,
		StartedAt:  timeValue(s.StartedAt),
		NextStepAt: types.StringNull(),
		LastGate:   types.StringNull(),
		Message:    stringValue(s.Message, types.StringNull()),
	}
	if s.NextStepAt != nil {
		m.NextStepAt = timeValue(*s.NextStepAt)
	}
	if s.LastGate != nil && s.LastGate.Message != "" {
		m.LastGate = types.StringValue(s.LastGate.Message)
	}
	v, d := types.ObjectValueFrom(ctx, rolloutStatusAttrTypes, m)
	diags.Append(d...)
	return v, diags
}

// stepPercent is the percent of the step in force, 0 when Step is out of
// StepPercents' range.
func stepPercent(s *registry.RolloutStatus) int {
	if s.Step >= 1 && s.Step <= len(s.StepPercents) {
		return s.StepPercents[s.Step-1]
	}
	return 0
}

func (f *endpointRolloutFields) fromAPI(ctx context.Context, e *registry.Endpoint, prior endpointRolloutFields) diag.Diagnostics {
	var diags, d diag.Diagnostics
	f.Rollout, d = rolloutValue(ctx, e.Rollout, prior.Rollout)
	diags.Append(d...)
	f.RolloutStatus, d = rolloutStatusValue(ctx, rolloutStatusOf(e))
	diags.Append(d...)
	return diags
}

// describeRollout says where a rollout stands, for diagnostics.
func describeRollout(s *registry.RolloutStatus) string {
	if s == nil {
		return "no rollout"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rollout %s at step %d of %d (%d%%)", s.State, s.Step, len(s.StepPercents), stepPercent(s))
	if s.NextStepAt != nil {
		fmt.Fprintf(&b, ", next step due %s", s.NextStepAt.UTC().Format(time.RFC3339))
	}
	if s.LastGate != nil && s.LastGate.Message != "" {
		fmt.Fprintf(&b, "; last gate: %s", s.LastGate.Message)
	}
	if s.Message != "" {
		fmt.Fprintf(&b, "; %s", s.Message)
	}
	return b.String()
}

// rolloutWaitBound is how long apply waits for a rollout with
// wait_for_rollout: twice its planned length (every step's bake), plus
// ten minutes for gates that wait for requests and for operator pauses.
// Past it the apply fails; the rollout itself goes on in the registry.
func rolloutWaitBound(s *registry.RolloutStatus, spec *registry.RolloutSpec) time.Duration {
	const slack = 10 * time.Minute
	steps := len(s.StepPercents)
	if steps == 0 && spec != nil {
		steps = len(spec.Steps)
	}
	var bake time.Duration
	if spec != nil {
		bake, _ = time.ParseDuration(spec.Bake)
	}
	return 2*time.Duration(steps)*bake + slack
}

var (
	// errRolloutFailed is a rollout that ended without completing.
	errRolloutFailed = errors.New("rollout did not complete")
	// errWaitBound ends a wait that reached rolloutWaitBound.
	errWaitBound = errors.New("wait bound reached")
)

// waitForRollout polls the endpoint until its rollout is no longer
// progressing or paused, and returns the endpoint as it then is. A rollout
// rolled back or aborted is errRolloutFailed with the rollout's message
// (the failing gate, or who aborted it and why). The poll backs off from
// a tenth of a second to one second: a step is a registry-side bake of
// seconds to hours, and a fast clock in tests finishes in milliseconds.
func waitForRollout(ctx context.Context, c *client.Client, name string, e *registry.Endpoint) (*registry.Endpoint, error) {
	s := rolloutStatusOf(e)
	if !registry.RolloutActive(s) {
		return e, nil
	}
	var spec *registry.RolloutSpec
	if e.Rollout != nil {
		spec = &e.Rollout.RolloutSpec
	}
	bound := rolloutWaitBound(s, spec)
	ctx, cancel := context.WithTimeoutCause(ctx, bound, errWaitBound)
	defer cancel()
	poll := firstWaitPoll
	lastStep := -1
	for {
		if s.Step != lastStep {
			tflog.Info(ctx, "waiting for the endpoint's rollout", map[string]any{"name": name, "rollout": describeRollout(s)})
			lastStep = s.Step
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			why := "the apply was interrupted"
			if errors.Is(context.Cause(ctx), errWaitBound) {
				why = fmt.Sprintf("it did not complete within %s (twice the steps' bakes plus 10m)", bound)
			}
			return e, fmt.Errorf("stopped waiting for the rollout of endpoint %q: %s. It goes on in the registry: %s", name, why, describeRollout(s))
		case <-t.C:
		}
		poll = min(2*poll, maxWaitPoll)
		next, err := c.GetEndpoint(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				continue // reported by the select above
			}
			return e, fmt.Errorf("reading endpoint %q while waiting for its rollout: %w", name, err)
		}
		e, s = next, rolloutStatusOf(next)
		switch {
		case s == nil:
			return e, nil
		case registry.RolloutActive(s):
			continue
		case s.State == registry.RolloutCompleted:
			return e, nil
		default:
			msg := s.Message
			if msg == "" {
				msg = "rollout " + s.State
			}
			return e, fmt.Errorf("%w: %s", errRolloutFailed, msg)
		}
	}
}

func rolloutBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "Progressive delivery. With a rollout block, a later change of the routes that changes a route's `weight` or `version` " +
			"(shadow routes aside) is not put in force at once: the registry moves the traffic from the weights in force to the configured ones in `steps`, " +
			"holds each step for `bake`, and checks gates over each step on the routes gaining weight, from what the gateway observed on them. " +
			"During the rollout the old version of a route whose version changes keeps the share that has not moved yet, as an in-force route named `<name>@v<old version>`. " +
			"A gate failing (with `min_requests` met) rolls the rollout back at once: the weights in force before it are written back as the routes, " +
			"so the next plan shows the drift and a warning names the gate. A step whose gaining routes have fewer than `min_requests` requests waits past its bake. " +
			"Creating the endpoint applies its weights at once, and so does a change of `upstream_url`, `match`, shadow routes, `timeout` or `sticky_header`. " +
			"A change while a rollout runs starts a new one from the weights in force; removing the block while one runs completes it at once (the configured weights in force). " +
			"With no gate at all a rollout is timed: steps and bakes only. One registry replica (or `mlregistry gateway` process) drives every rollout; " +
			"each step is an event: " + rolloutEventsDoc + ". " +
			"Operators pause, resume and abort a rollout with `mlregistry endpoints rollout pause|resume|abort NAME` (an abort writes the previous weights back, like a rollback).",
		Attributes: map[string]schema.Attribute{
			"steps": schema.ListAttribute{
				MarkdownDescription: fmt.Sprintf("Required. Percent of the way from the weights in force to the configured weights at each step, e.g. `[10, 25, 50, 100]`: "+
					"1 to %d steps, each 1 to 100, strictly increasing, the last 100. The last step bakes too; the rollout completes when its bake has passed.", registry.MaxRolloutSteps),
				ElementType: types.Int64Type,
				// Optional only because Terraform checks a Required
				// attribute of a single block even when the block is left
				// out; ValidateConfig requires it.
				Optional:   true,
				Validators: []validator.List{listvalidator.SizeBetween(1, registry.MaxRolloutSteps), listvalidator.ValueInt64sAre(int64validator.Between(1, 100))},
			},
			"bake": schema.StringAttribute{
				MarkdownDescription: "Required. How long each step holds, a duration from `1s` to `24h` (e.g. `10m`); with a `guard`, at least its `window`.",
				Optional:            true,
				Validators:          []validator.String{durationValidator{}},
			},
			"max_error_rate": schema.NumberAttribute{
				MarkdownDescription: "Gate: the error rate (5xx answers and transport errors) of a route gaining weight, over the step so far, above which the rollout rolls back; greater than 0 and at most 1. Needs `min_requests`.",
				Optional:            true,
				PlanModifiers:       []planmodifier.Number{keepEquivalentNumbers{}},
			},
			"max_latency_p99": schema.StringAttribute{
				MarkdownDescription: "Gate: the 99th percentile of a gaining route's upstream latency over the step so far (from the gateway's per-route latency histogram), " +
					"above which the rollout rolls back; a duration from `1ms` to `10m`. Needs `min_requests`.",
				Optional:   true,
				Validators: []validator.String{durationValidator{}},
			},
			"min_requests": schema.Int64Attribute{
				MarkdownDescription: "Requests each gaining route must have served in the step before the gates judge it (at least 1); " +
					"required with `max_error_rate` or `max_latency_p99`: there is no default. Until then the step waits, past its bake if need be, and `rollout_status.last_gate` says so.",
				Optional:   true,
				Validators: []validator.Int64{int64validator.AtLeast(1)},
			},
			"min_live_metrics": schema.MapAttribute{
				MarkdownDescription: "Gate: floor of the mean of each named live metric, e.g. `{ correct = 0.9 }`, checked when a step's bake ends for each gaining route's version, " +
					"over its **trusted** feedback on this endpoint since the step began (sent by write or admin tokens; never serve tokens). " +
					"Too few values (`min_live_count`) hold the step, past its bake if need be; a lower mean rolls the rollout back. " + numbersNote,
				ElementType: types.NumberType,
				Optional:    true,
				Validators:  []validator.Map{numberRange{}, mapvalidator.SizeAtMost(registry.MaxLiveMetricNames)},
			},
			"min_live_count": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("Trusted feedback values per metric `min_live_metrics` needs in a step; unset means %d. Needs `min_live_metrics`.", registry.DefaultMinLiveCount),
				Optional:            true,
				Validators: []validator.Int64{
					int64validator.Between(1, registry.MaxMinLiveCount),
					int64validator.AlsoRequires(path.MatchRelative().AtParent().AtName("min_live_metrics")),
				},
			},
		},
		Blocks: map[string]schema.Block{
			"prometheus": schema.ListNestedBlock{
				MarkdownDescription: fmt.Sprintf("Up to %d gates against the Prometheus the registry was started with (`--prometheus-url`; without one the registry refuses them). "+
					"When a step's bake ends with the other gates passing, each query is run once per gaining route (an instant query) and its one sample compared to `threshold`; "+
					"a query that fails or returns no sample or several fails the gate and rolls the rollout back.", registry.MaxPrometheusGates),
				Validators: []validator.List{listvalidator.SizeAtMost(registry.MaxPrometheusGates)},
				NestedObject: schema.NestedBlockObject{
					Attributes: map[string]schema.Attribute{
						"query": schema.StringAttribute{
							MarkdownDescription: fmt.Sprintf("A PromQL query, 1 to %d bytes; `$endpoint`, `$route` and `$version` are replaced by the endpoint's name and the gaining route's name and version, "+
								"e.g. `sum(rate(mlregistry_gateway_upstream_errors_total{endpoint=\"$endpoint\",route=\"$route\"}[5m]))`.", registry.MaxPrometheusQueryLen),
							Required:   true,
							Validators: []validator.String{stringvalidator.LengthBetween(1, registry.MaxPrometheusQueryLen)},
						},
						"threshold": schema.NumberAttribute{
							MarkdownDescription: "The value the query's sample is compared to; a finite number.",
							Required:            true,
							Validators:          []validator.Number{numberRange{}},
							PlanModifiers:       []planmodifier.Number{keepEquivalentNumbers{}},
						},
						"comparison": schema.StringAttribute{
							MarkdownDescription: "How the gate passes: `<`, `<=`, `>` or `>=` (`value < threshold` for `<`).",
							Required:            true,
							Validators:          []validator.String{stringvalidator.OneOf(registry.PrometheusComparisons...)},
						},
					},
				},
			},
		},
	}
}

func waitForRolloutAttribute() schema.BoolAttribute {
	return schema.BoolAttribute{
		MarkdownDescription: "Whether apply waits, after a change that starts a rollout, until the rollout has completed: it then fails with the rollout's message " +
			"(the failing gate, its value and threshold) when the rollout is rolled back or aborted. Apply waits at most twice the rollout's planned length " +
			"(steps × bake) plus 10 minutes, then fails saying where the rollout stands; the rollout goes on in the registry either way. " +
			"Only Terraform reads this; it is not stored in the registry. Defaults to `false`: apply returns once the rollout has started.",
		Optional: true,
		Computed: true,
		Default:  booldefault.StaticBool(false),
	}
}

func rolloutStatusAttribute() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		MarkdownDescription: "Where the endpoint's latest rollout stands; null before its first. Unknown in a plan that starts a rollout.",
		Computed:            true,
		Attributes: map[string]schema.Attribute{
			"state": schema.StringAttribute{
				MarkdownDescription: "`progressing`, `paused`, `completed`, `rolled_back` or `aborted`.",
				Computed:            true,
			},
			"step":    schema.Int64Attribute{MarkdownDescription: "The step in force, from 1.", Computed: true},
			"percent": schema.Int64Attribute{MarkdownDescription: "That step's percent of the way to the configured weights.", Computed: true},
			"weights": schema.MapAttribute{
				MarkdownDescription: "The weights in force, by in-force route name (a route whose version changes also appears as `<name>@v<old version>` while its old version keeps a share).",
				ElementType:         types.Int64Type,
				Computed:            true,
			},
			"started_at":   schema.StringAttribute{MarkdownDescription: "When the rollout started (RFC 3339).", Computed: true},
			"next_step_at": schema.StringAttribute{MarkdownDescription: "When the step in force is due to end (RFC 3339); null when paused or ended.", Computed: true},
			"last_gate":    schema.StringAttribute{MarkdownDescription: "The latest gate result, e.g. `waiting for requests: 3 of 20`.", Computed: true},
			"message": schema.StringAttribute{
				MarkdownDescription: "The rollout's latest message: how it started (and which rollout it replaced), or why it ended: the failing gate with the route, version, value, threshold and requests, or who aborted it and why.",
				Computed:            true,
			},
		},
	}
}

func shadowAttribute() schema.BoolAttribute {
	return schema.BoolAttribute{
		MarkdownDescription: "A shadow route gets a copy of `share` of the endpoint's requests (bodies included, up to 64 KiB; larger ones are not copied) " +
			"besides the route that answers them; its answers are discarded, and its status codes and latency are recorded per version. " +
			"A slow or failing shadow never delays or fails the client's answer: copies wait in a bounded queue and are dropped (and counted) when it is full. " +
			fmt.Sprintf("A shadow route has weight 0 and no `match`; an endpoint has at most %d shadow routes and at least one other route. Changes apply at once, never by a rollout.", registry.MaxShadowRoutes),
		Optional: true,
	}
}

func shareAttribute() schema.NumberAttribute {
	return schema.NumberAttribute{
		MarkdownDescription: "Required with `shadow = true`, and only then: the share of requests copied to the shadow, greater than 0 and at most 1 (e.g. `0.1`).",
		Optional:            true,
		PlanModifiers:       []planmodifier.Number{keepEquivalentNumbers{}},
	}
}

// planRolloutStatus plans rollout_status and warns about a rollout the
// registry rolled back. The status is known in the plan only when the
// plan cannot move it: no rollout starts and none is moving (a moving one
// steps between plan and apply). Otherwise it is unknown, and the
// registry's answer says where the rollout stands.
func planRolloutStatus(ctx context.Context, req resource.ModifyPlanRequest, state, plan *endpointResourceModel, resp *resource.ModifyPlanResponse) diag.Diagnostics {
	var diags diag.Diagnostics
	var st rolloutStatusModel
	if isKnown(state.RolloutStatus) {
		diags.Append(state.RolloutStatus.As(ctx, &st, objectAsOptions)...)
	}
	starts := rolloutStarts(ctx, state, plan)
	switch current := st.State.ValueString(); {
	case resp.Plan.Raw.Equal(req.State.Raw):
		// Nothing changes (planStateWhenUnchanged planned the state).
	case plan.Rollout.IsNull() && !state.Rollout.IsNull():
		// The registry keeps no status without a configuration; removing
		// it ends a running rollout first.
	case !starts && current != registry.RolloutProgressing && current != registry.RolloutPaused:
		diags.Append(resp.Plan.SetAttribute(ctx, path.Root("rollout_status"), state.RolloutStatus)...)
	}
	if current := st.State.ValueString(); (current == registry.RolloutRolledBack || current == registry.RolloutAborted) && !plan.Route.Equal(state.Route) {
		what := "This plan sets the configured routes again at once (the endpoint has no rollout block)."
		if starts {
			what = "This plan sets the configured routes again, which starts a new rollout from the weights in force."
		}
		diags.AddAttributeWarning(path.Root("route"), fmt.Sprintf("The last rollout of endpoint %q was %s", plan.Name.ValueString(), strings.ReplaceAll(current, "_", " ")),
			fmt.Sprintf("%s\n\nThe registry wrote the weights in force before that rollout back as the endpoint's routes, which is the difference this plan shows. %s",
				st.Message.ValueString(), what))
	}
	return diags
}

// rolloutStarts: applying plan over state starts a rollout (or may: an
// unknown route or rollout block counts), which the registry does when
// the endpoint has a rollout block and a route's weight or version
// changes, shadow routes aside.
func rolloutStarts(ctx context.Context, state, plan *endpointResourceModel) bool {
	if plan.Rollout.IsNull() {
		return false
	}
	if !fullyKnown(ctx, plan.Rollout) || !fullyKnown(ctx, plan.Route) || !fullyKnown(ctx, state.Route) {
		return true
	}
	before, d := routesFrom(ctx, state.Route)
	if d.HasError() {
		return true
	}
	after, d := routesFrom(ctx, plan.Route)
	if d.HasError() {
		return true
	}
	return registry.RoutesNeedRollout(before, after)
}

// registryFieldPath is the attribute path of a registry error's field
// (routes[1].match.header, rollout.prometheus[0].query), or fallback when
// the error names none this resource has.
func registryFieldPath(err error, fallback path.Path) path.Path {
	var e *registry.Error
	if !asRegistryError(err, &e) || e.Field == "" {
		return fallback
	}
	var p path.Path
	for i, seg := range strings.Split(e.Field, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		if i == 0 {
			if name == "routes" {
				name = "route"
			}
			switch name {
			case "route", "rollout", "guard", "stage", "sticky_header", "timeout", "name", "model":
			default:
				return fallback
			}
			p = path.Root(name)
		} else {
			p = p.AtName(name)
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if !ok || err != nil {
				return fallback
			}
			p = p.AtListIndex(n)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return p
}

// ruleMessage with the rule: "route[1].share: must be ... (rule range)".
func registryRuleMessage(err error) string {
	var e *registry.Error
	if asRegistryError(err, &e) && e.Rule != "" {
		return fmt.Sprintf("%s (rule %s)", err.Error(), e.Rule)
	}
	return err.Error()
}

// validateRolloutConfig checks the rollout block and the shadow routes
// with the registry's own rules (registry.RolloutSpec.Validate,
// registry.ValidateRoutes), so `terraform plan` refuses what the registry
// would refuse at apply, naming the attribute and the rule. Values not
// known yet are left to the registry at apply.
func validateRolloutConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var rollout, guard types.Object
	var routes types.List
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("rollout"), &rollout)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("guard"), &guard)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("route"), &routes)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if isKnown(rollout) {
		var m rolloutModel
		resp.Diagnostics.Append(rollout.As(ctx, &m, objectAsOptions)...)
		// Optional in the schema only because Terraform checks a Required
		// attribute of a single block even when the block is left out.
		for _, f := range []struct {
			name string
			v    attr.Value
		}{{"steps", m.Steps}, {"bake", m.Bake}} {
			if f.v.IsNull() {
				resp.Diagnostics.AddAttributeError(path.Root("rollout").AtName(f.name), "Missing required argument",
					fmt.Sprintf("rollout.%s is required in a rollout block: a rollout needs steps and bake (rule required).", f.name))
			}
		}
		if !m.Steps.IsNull() && !m.Bake.IsNull() && fullyKnown(ctx, rollout) && (guard.IsNull() || fullyKnown(ctx, guard)) {
			spec, d := rolloutSpecFrom(ctx, rollout)
			resp.Diagnostics.Append(d...)
			g, d := guardFrom(ctx, guard)
			resp.Diagnostics.Append(d...)
			if g != nil && g.Validate("guard") != nil {
				g = nil // reported by the guard's own check; its window means nothing
			}
			if err := spec.Validate("rollout", g); err != nil && !resp.Diagnostics.HasError() {
				resp.Diagnostics.AddAttributeError(registryFieldPath(err, path.Root("rollout")), "Invalid rollout", registryRuleMessage(err))
			}
		}
	}
	if !fullyShadowKnown(ctx, routes) {
		return
	}
	rs, d := routesFrom(ctx, routes)
	resp.Diagnostics.Append(d...)
	if d.HasError() || len(rs) == 0 || len(rs) > registry.MaxRoutes {
		return
	}
	// Only the shadow rules are checked here: the attributes' own
	// validators and ValidateConfig's sum and uniqueness checks report the
	// rest, so placeholders that pass stand in for those values (and for
	// the ones not known yet) and cannot hide a shadow rule behind them.
	for i := range rs {
		rs[i].Name = fmt.Sprintf("route-%d", i)
		rs[i].Version = 1
		rs[i].UpstreamURL = "http://route.invalid"
		rs[i].Weight = min(max(rs[i].Weight, 0), 100)
		if rs[i].Match != nil {
			rs[i].Match = &registry.RouteMatch{Header: "X-Match", Value: "match"}
		}
	}
	var e *registry.Error
	err := registry.ValidateRoutes("route", rs)
	if err == nil || !asRegistryError(err, &e) || e.Rule == "weights_sum" {
		return
	}
	resp.Diagnostics.AddAttributeError(registryFieldPath(err, path.Root("route")), "Invalid route", registryRuleMessage(err))
}

// fullyShadowKnown: every route's weight, shadow, share and whether it
// has a match are known, which is what the shadow rules read.
func fullyShadowKnown(ctx context.Context, routes types.List) bool {
	if !isKnown(routes) {
		return false
	}
	var rs []routeModel
	if routes.ElementsAs(ctx, &rs, false).HasError() {
		return false
	}
	for _, rt := range rs {
		if rt.Weight.IsUnknown() || rt.Shadow.IsUnknown() || rt.Share.IsUnknown() || rt.Match.IsUnknown() {
			return false
		}
	}
	return true
}
