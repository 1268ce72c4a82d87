package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func newStagesCmd() *cobra.Command {
	r := &remote{}
	var history string
	cmd := &cobra.Command{
		Use:   "stages MODEL | stages assign|unassign ...",
		Short: "Show a model's stage assignments or one stage's history; assign or unassign a stage",
		Example: `  mlregistry stages churn
  mlregistry stages churn --history production     # newest first: promotions, rollbacks, unassigns
  mlregistry stages churn -o json | jq -r '.[] | "\(.stage) \(.version)"'
  mlregistry stages assign churn production 6 --reason "rollback: v7 mislabels churners"`,
		Args:              exactArgs(1, "a MODEL"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			model := args[0]
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				w := cmd.OutOrStdout()
				if history != "" {
					hist, err := c.AllStageHistory(ctx, model, history)
					if err != nil {
						return err
					}
					if len(hist) == 0 {
						if err := checkStage(ctx, c, model, "--history", history); err != nil {
							return err
						}
					}
					if hist == nil {
						hist = []registry.StageHistoryEntry{}
					}
					if asJSON {
						return writeJSON(w, hist)
					}
					t := newTable(w, "TIME", "ACTION", "VERSION", "PREVIOUS", "BY", "REASON")
					for _, h := range hist {
						v := fmtPrev(h.Version)
						t.row(plain(fmtTime(h.AssignedAt)), actionCell(h.Action), plain(v), plain(fmtPrev(h.PreviousVersion)), plain(h.AssignedBy), plain(h.Reason))
					}
					return t.flush()
				}
				stages, err := c.ListStages(ctx, model)
				if err != nil {
					return err
				}
				if stages == nil {
					stages = []registry.StageAssignment{}
				}
				if asJSON {
					return writeJSON(w, stages)
				}
				t := newTable(w, "STAGE", "VERSION", "PREVIOUS", "ASSIGNED", "BY", "REASON")
				for _, s := range stages {
					t.strs(s.Stage, fmt.Sprint(s.Version), fmtPrev(s.PreviousVersion), fmtTime(s.AssignedAt), s.AssignedBy, s.Reason)
				}
				return t.flush()
			})
		},
	}
	addRemoteFlags(cmd, r)
	cmd.Flags().StringVar(&history, "history", "", "show this stage's history instead (newest first)")
	cmd.AddCommand(newStagesAssignCmd(r), newStagesUnassignCmd(r))
	return cmd
}

func actionCell(action string) cell {
	if action == registry.StageActionUnassign {
		return cell{text: action, color: colorYellow}
	}
	return cell{text: action, color: colorGreen}
}
