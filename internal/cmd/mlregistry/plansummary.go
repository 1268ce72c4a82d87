package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/plansummary"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// newPlanSummaryCmd is `mlregistry plan-summary`; the work is in
// internal/plansummary.
func newPlanSummaryCmd() *cobra.Command {
	var (
		format, addr, token string
		failOn              []string
	)
	cmd := &cobra.Command{
		Use:   "plan-summary [FILE]",
		Short: "Summarise a saved Terraform plan for review (Markdown or JSON)",
		Long: `Summarise the JSON of 'terraform show -json PLANFILE' (FILE, or stdin when
FILE is absent or -) for a pull-request review: per model, stage moves with
metric deltas and stage policy verdicts (the registry's dry run, and a
whole-plan check that counts the plan's own earlier moves and says what
ordering or second apply a move needs); versions added, changed in place,
replaced (an artifact change) and destroyed; endpoint weight shifts with a
bar per route; warnings; and the drift Terraform found at refresh, joined
with the registry's stage history and audit log.

With MLREGISTRY_ADDR and MLREGISTRY_TOKEN (or --addr/--token; a read token
is enough) it asks the registry; without them it says what it could not
fetch.

The summary ends in a whole-plan verdict: an error, with its fix, when the
plan cannot apply as Terraform orders it (a version destroyed before its
stage or route moves away, a stage left empty by a renamed assignment, a
move the stage policy or a flag refuses).

--fail-on error|warning|drift exits 5 when the summary has an error, a
warning (or an error), or drift, for CI gates; otherwise the exit code is 0
however the plan looks.`,
		Example: `  terraform plan -out=tfplan && terraform show -json tfplan > plan.json
  mlregistry plan-summary plan.json > summary.md
  terraform show -json tfplan | mlregistry plan-summary --format json
  mlregistry plan-summary --fail-on error plan.json
  mlregistry plan-summary --fail-on drift plan.json`,
		Args: rangeArgs(0, 1, "at most one FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "markdown" && format != "json" {
				return usageErrorf("--format takes markdown or json, not %q", format)
			}
			var conds []string
			for _, v := range failOn {
				c, err := plansummary.ParseFailOn(v)
				if err != nil {
					return usageErrorf("%v", err)
				}
				conds = append(conds, c...)
			}
			in, name := cmd.InOrStdin(), "stdin"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }()
				in, name = f, args[0]
			}
			if addr == "" {
				addr = os.Getenv("MLREGISTRY_ADDR")
			}
			if token == "" {
				token = os.Getenv("MLREGISTRY_TOKEN")
			}
			s, err := plansummary.Run(cmd.Context(), in, cmd.OutOrStdout(), plansummary.Options{Format: format, Address: addr, Token: token})
			if err != nil {
				return &plansummaryInputError{name: name, err: err}
			}
			if hit := plansummary.FailOnHits(s, conds); len(hit) > 0 {
				// Exit code 5, "refused", like a stage policy refusal.
				return registry.Errorf(registry.CodePolicyViolation, "plan-summary --fail-on: %s", strings.Join(hit, " and "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "markdown", "markdown (for a PR comment) or json")
	f.StringSliceVar(&failOn, "fail-on", nil, "exit 5 when the summary has: error, warning (or error), drift (repeatable or comma-separated)")
	f.StringVar(&addr, "addr", "", "registry URL (env MLREGISTRY_ADDR; none: nothing is fetched)")
	f.StringVar(&token, "token", "", "registry token, a read token is enough (env MLREGISTRY_TOKEN)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"markdown", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("fail-on", cobra.FixedCompletions([]string{"error", "warning", "drift"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// plansummaryInputError names the input that could not be summarised
// (exit code 1).
type plansummaryInputError struct {
	name string
	err  error
}

func (e *plansummaryInputError) Error() string {
	return "plan-summary: " + e.name + ": " + e.err.Error()
}
func (e *plansummaryInputError) Unwrap() error { return e.err }
