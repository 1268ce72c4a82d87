package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Manual stage moves. Terraform is the usual way to move a stage; these
// are for when a reviewed plan cannot wait (a rollback at night), so they
// take the same path through the API: the stage policy, the token's stages,
// the audit log. Each move reads the stage first and writes with If-Match
// on what it read, so a move someone else made in between is refused
// rather than overwritten.

const stageWriteLong = `
Every move needs --reason: it is kept in the stage's history (stages MODEL
--history STAGE) and the audit log, next to the token's name. The registry
checks the stage policy and the token's stages as for any API write; a
refusal shows the registry's message (exit 5 for a policy, 4 for a token).
--dry-run asks the registry and writes nothing.

A stage that Terraform manages shows the move as drift in the next plan:
change the configuration to match, or apply to move it back.`

func newStagesAssignCmd(r *remote) *cobra.Command {
	var (
		reason string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "assign MODEL STAGE VERSION --reason TEXT [--dry-run]",
		Short: "Point a stage at a version: a manual promotion or rollback, under the stage policy",
		Long: `Point a stage at a version: a manual (break-glass) promotion or rollback.
` + stageWriteLong,
		Example: `  mlregistry stages assign churn production 6 --reason "rollback: v7 mislabels churners" --dry-run
  mlregistry stages assign churn production 6 --reason "rollback: v7 mislabels churners"`,
		Args:              exactArgs(3, "a MODEL, a STAGE and a VERSION"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			model, stage := args[0], args[1]
			version, err := parseVersion(args[2])
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return usageErrorf("stages assign needs --reason: say why, it is kept in the stage's history")
			}
			req := registry.StageAssign{Version: version, Reason: reason}
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				w := cmd.OutOrStdout()
				if dryRun {
					dr, err := c.DryRunAssignStage(ctx, model, stage, req)
					if err != nil {
						return err
					}
					if asJSON {
						if err := writeJSON(w, dr); err != nil {
							return err
						}
					} else {
						fmt.Fprintf(w, "dry run: %s %s: %s -> %d passes the stage policy\n", model, stage, fmtHeld(dr.PreviousVersion), dr.Version)
					}
					if !dr.Permitted {
						return &registry.Error{Code: registry.CodePermissionDenied, Rule: dr.PermissionRule, Message: "but this token may not make the move: " + dr.Permission}
					}
					return nil
				}
				rev, _, err := currentStage(ctx, c, model, stage)
				if err != nil {
					return err
				}
				a, err := c.AssignStage(ctx, model, stage, req, rev)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(w, a)
				}
				was := "unassigned"
				if a.PreviousVersion > 0 {
					was = fmt.Sprintf("version %d", a.PreviousVersion)
				}
				fmt.Fprintf(w, "assigned %s %s: version %d (was %s)\n", a.Model, a.Stage, a.Version, was)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the stage moves (required; kept in its history)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the stage policy and the token, change nothing")
	return cmd
}

func newStagesUnassignCmd(r *remote) *cobra.Command {
	var (
		reason string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "unassign MODEL STAGE --reason TEXT [--dry-run]",
		Short: "Remove a stage's assignment, so the stage points at no version",
		Long: `Remove a stage's assignment: the stage then points at no version, and
endpoints that serve the stage keep their routes.
` + stageWriteLong + `

--dry-run shows what the stage holds and which endpoints serve it; whether
the token may unassign the stage is known only when it tries.`,
		Example: `  mlregistry stages unassign churn staging --reason "staging retired" --dry-run
  mlregistry stages unassign churn staging --reason "staging retired"`,
		Args:              exactArgs(2, "a MODEL and a STAGE"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			model, stage := args[0], args[1]
			if strings.TrimSpace(reason) == "" {
				return usageErrorf("stages unassign needs --reason: say why, it is kept in the stage's history")
			}
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				w := cmd.OutOrStdout()
				cur, err := c.GetStage(ctx, model, stage)
				if err != nil {
					return err
				}
				if dryRun {
					serving, err := stageEndpoints(ctx, c, model, stage)
					if err != nil {
						return err
					}
					if asJSON {
						return writeJSON(w, struct {
							*registry.StageAssignment
							Endpoints []string `json:"endpoints"`
						}{cur, serving})
					}
					fmt.Fprintf(w, "dry run: would unassign %s %s (version %d)\n", model, stage, cur.Version)
					if len(serving) > 0 {
						fmt.Fprintf(w, "endpoints serving %s: %s\n", stage, strings.Join(serving, ", "))
					}
					return nil
				}
				if err := c.UnassignStageWithReason(ctx, model, stage, reason, cur.Revision); err != nil {
					return err
				}
				if asJSON {
					page, err := c.StageHistory(ctx, model, stage, registry.ListOptions{PageSize: 1})
					if err != nil {
						return err
					}
					if len(page.Items) == 0 {
						return fmt.Errorf("the history of stage %q of model %q is empty after an unassign", stage, model)
					}
					return writeJSON(w, page.Items[0])
				}
				fmt.Fprintf(w, "unassigned %s %s (was version %d)\n", model, stage, cur.Version)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the stage is unassigned (required; kept in its history)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be removed, change nothing")
	return cmd
}

// currentStage reads the stage's revision and version; an unassigned stage
// has neither (0, 0), and the write then has no If-Match.
func currentStage(ctx context.Context, c *client.Client, model, stage string) (rev, version int64, err error) {
	cur, err := c.GetStage(ctx, model, stage)
	switch {
	case err == nil:
		return cur.Revision, cur.Version, nil
	case errors.Is(err, registry.ErrNotFound):
		return 0, 0, nil
	}
	return 0, 0, err
}

// stageEndpoints names the endpoints of the model bound to stage.
func stageEndpoints(ctx context.Context, c *client.Client, model, stage string) ([]string, error) {
	eps, err := allEndpoints(ctx, c)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, e := range eps {
		if e.Model == model && e.Stage == stage {
			out = append(out, e.Name)
		}
	}
	return out, nil
}

func fmtHeld(version int64) string {
	if version == 0 {
		return "unassigned"
	}
	return fmt.Sprintf("version %d", version)
}
