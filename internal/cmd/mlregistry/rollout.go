package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// rolloutOps are the operations of `endpoints rollout`, in the order the
// help and the usage errors list them.
var rolloutOps = []string{registry.RolloutOpPause, registry.RolloutOpResume, registry.RolloutOpAbort}

func newEndpointsRolloutCmd(r *remote) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "rollout pause|resume|abort NAME [--reason TEXT]",
		Short: "Pause, resume or abort an endpoint's running rollout",
		Long: `Pause, resume or abort the rollout an endpoint is running.

pause     holds the step in force: the weights stay, no gate is judged and
          no step is taken until resume (only a progressing rollout).
resume    continues a paused rollout; the step's bake starts again.
abort     ends a progressing or paused rollout and puts back the weights in
          force before it started, as a rollback does: the endpoint's status
          says who aborted it and why, and the next terraform plan shows the
          configured weights as a change to apply again.

Each is an event in the audit log (endpoint.rollout_paused, _resumed,
_aborted) with the token's name and --reason. A rollout that is not in a
state that allows the operation is refused (exit 5).`,
		Example: `  mlregistry endpoints rollout pause churn --reason "holding for the weekend"
  mlregistry endpoints rollout resume churn
  mlregistry endpoints rollout abort churn --reason "v7 mislabels churners"`,
		Args: exactArgs(2, "an operation (pause, resume or abort) and an endpoint NAME"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return rolloutOps, cobra.ShellCompDirectiveNoFileComp
			}
			return r.completeEndpoints(cmd, args[1:], prefix)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			op, name := args[0], args[1]
			if !slices.Contains(rolloutOps, op) {
				return usageErrorf("%q is not a rollout operation; valid choices: %s", op, strings.Join(rolloutOps, ", "))
			}
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				e, err := c.ControlRollout(ctx, name, op, strings.TrimSpace(reason))
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(w, e)
				}
				fmt.Fprintln(w, rolloutDone(e, op))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the event; an abort's reason is also the endpoint's status message)")
	return cmd
}

// rolloutDone is the line a successful operation prints.
func rolloutDone(e *registry.Endpoint, op string) string {
	verb := map[string]string{registry.RolloutOpPause: "paused", registry.RolloutOpResume: "resumed", registry.RolloutOpAbort: "aborted"}[op]
	st := rolloutStatus(e)
	if st == nil {
		return fmt.Sprintf("%s the rollout of endpoint %s", verb, e.Name)
	}
	s := fmt.Sprintf("%s rollout %d of endpoint %s at %s", verb, st.ID, e.Name, rolloutStep(st))
	if op == registry.RolloutOpAbort {
		s += "; weights in force again: " + fmtWeights(e.Routes)
	}
	return s
}

// rolloutStatus is the endpoint's latest rollout, nil before the first.
func rolloutStatus(e *registry.Endpoint) *registry.RolloutStatus {
	if e.Rollout == nil {
		return nil
	}
	return e.Rollout.RolloutStatus
}

// rolloutActive: the gateway serves the rollout's weights, not the routes.
func rolloutActive(st *registry.RolloutStatus) bool {
	return st != nil && (st.State == registry.RolloutProgressing || st.State == registry.RolloutPaused)
}

// rolloutStep is "step 2 of 4 (25%)".
func rolloutStep(st *registry.RolloutStatus) string {
	s := fmt.Sprintf("step %d of %d", st.Step, len(st.StepPercents))
	if st.Step >= 1 && st.Step <= len(st.StepPercents) {
		s += fmt.Sprintf(" (%d%%)", st.StepPercents[st.Step-1])
	}
	return s
}

// rolloutSpec describes the configuration in one line.
func rolloutSpec(sp registry.RolloutSpec) string {
	steps := make([]string, len(sp.Steps))
	for i, p := range sp.Steps {
		steps[i] = strconv.Itoa(p) + "%"
	}
	parts := []string{"steps " + strings.Join(steps, ", "), "bake " + sp.Bake + " each"}
	var gates []string
	if sp.MaxErrorRate != nil {
		gates = append(gates, "error rate at most "+strconv.FormatFloat(*sp.MaxErrorRate, 'g', -1, 64))
	}
	if sp.MaxLatencyP99 != "" {
		gates = append(gates, "p99 at most "+sp.MaxLatencyP99)
	}
	if len(gates) > 0 {
		gates[len(gates)-1] += fmt.Sprintf(" (judged from %d requests)", sp.MinRequests)
	}
	for _, g := range sp.Prometheus {
		gates = append(gates, fmt.Sprintf("prometheus %s %s %s", g.Query, g.Comparison, strconv.FormatFloat(g.Threshold, 'g', -1, 64)))
	}
	if len(gates) == 0 {
		parts = append(parts, "no gates (timed)")
	} else {
		parts = append(parts, "gates: "+strings.Join(gates, "; "))
	}
	return strings.Join(parts, "; ")
}

// fmtWeights is "stable=v1:90% canary=v2:10%".
func fmtWeights(routes []registry.Route) string {
	out := make([]string, 0, len(routes))
	for _, rt := range routes {
		if rt.Shadow {
			out = append(out, fmt.Sprintf("%s=v%d:shadow %g", rt.Name, rt.Version, rt.Share))
			continue
		}
		out = append(out, fmt.Sprintf("%s=v%d:%d%%", rt.Name, rt.Version, rt.Weight))
	}
	return strings.Join(out, " ")
}

// showRollout prints the rollout part of `endpoints show`: the
// configuration, where the latest rollout stands and, while it runs, the
// weights in force.
func showRollout(w io.Writer, e *registry.Endpoint) error {
	if e.Rollout == nil {
		return nil
	}
	kv := []string{"Rollout", rolloutSpec(e.Rollout.RolloutSpec)}
	st := rolloutStatus(e)
	if st != nil {
		state := st.State
		if rolloutActive(st) {
			state += ", " + rolloutStep(st)
		}
		kv = append(kv,
			"Rollout state", fmt.Sprintf("%s (rollout %d)", state, st.ID),
			"Rollout started", fmtTime(st.StartedAt))
		switch {
		case st.State == registry.RolloutProgressing:
			kv = append(kv, "Next step due", fmtTimePtr(st.NextStepAt))
		case st.EndedAt != nil:
			kv = append(kv, "Rollout ended", fmtTime(*st.EndedAt))
		}
		if g := st.LastGate; g != nil {
			kv = append(kv, "Last gate", g.Message)
		}
		if st.Message != "" {
			kv = append(kv, "Rollout message", st.Message)
		}
	}
	fmt.Fprintln(w)
	if err := fields(w, kv...); err != nil {
		return err
	}
	if !rolloutActive(st) {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Weights in force (%s; the routes above are the target):\n", rolloutStep(st))
	t := newTable(w, "  NAME", "VERSION", "WEIGHT", "UPSTREAM")
	for _, rt := range st.Routes {
		weight := fmt.Sprintf("%d%%", rt.Weight)
		if rt.Shadow {
			weight = fmt.Sprintf("shadow %g", rt.Share)
		}
		t.strs("  "+rt.Name, fmt.Sprint(rt.Version), weight, rt.UpstreamURL)
	}
	return t.flush()
}
