package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func newModelsCmd() *cobra.Command {
	r := &remote{}
	list := func(cmd *cobra.Command, _ []string) error {
		return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
			models, err := c.AllModels(ctx)
			if err != nil {
				return err
			}
			if models == nil {
				models = []registry.Model{}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), models)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "OWNER", "TAGS", "POLICIES", "UPDATED", "DESCRIPTION")
			for _, m := range models {
				t.strs(m.Name, m.Owner, fmtMap(m.Tags), strings.Join(sortedKeys(m.StagePolicies), ","), fmtTime(m.UpdatedAt), m.Description)
			}
			return t.flush()
		})
	}
	cmd := &cobra.Command{
		Use:   "models [list | show NAME]",
		Short: "List registered models, or show one",
		Example: `  mlregistry models
  mlregistry models show churn
  mlregistry models list --output json | jq -r '.[].name'`,
		Args: noArgs,
		RunE: list,
	}
	addRemoteFlags(cmd, r)
	cmd.AddCommand(&cobra.Command{
		Use:     "list",
		Short:   "List registered models",
		Example: "  mlregistry models list\n  mlregistry models list -o json",
		Args:    noArgs,
		RunE:    list,
	}, &cobra.Command{
		Use:   "show NAME",
		Short: "Show a model: owner, tags, stage policies and stage assignments",
		Example: `  mlregistry models show churn
  mlregistry models show churn -o json | jq .stage_policies`,
		Args:              exactArgs(1, "a model NAME"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				return showModel(ctx, cmd, c, args[0], asJSON)
			})
		},
	})
	return cmd
}

func showModel(ctx context.Context, cmd *cobra.Command, c *client.Client, name string, asJSON bool) error {
	m, err := c.GetModel(ctx, name)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), m)
	}
	stages, err := c.ListStages(ctx, name)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if err := fields(w,
		"Name", m.Name,
		"Owner", m.Owner,
		"Description", m.Description,
		"Tags", fmtMap(m.Tags),
		"Created", fmtTime(m.CreatedAt),
		"Updated", fmtTime(m.UpdatedAt),
		"Revision", fmt.Sprint(m.Revision),
	); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Stage policies:")
	if len(m.StagePolicies) == 0 {
		fmt.Fprintln(w, "  none: any version may be assigned to any stage")
	} else {
		t := newTable(w, "  STAGE", "REQUIRE STAGE", "MIN SOAK", "MIN METRICS", "MAX METRICS", "SIGNATURE MATCH", "MIN LIVE METRICS")
		for _, s := range sortedKeys(m.StagePolicies) {
			p := m.StagePolicies[s]
			live := fmtMap(p.MinLiveMetrics)
			if len(p.MinLiveMetrics) > 0 {
				live += fmt.Sprintf(" (at least %d trusted values each, last %s)", p.LiveCount(), registry.FormatWindow(registry.PolicyLiveWindow))
			}
			t.strs("  "+s, p.RequireStage, p.MinSoak, fmtMap(p.MinMetrics), fmtMap(p.MaxMetrics), yesNo(p.RequireSignatureMatch), live)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Stages:")
	if len(stages) == 0 {
		fmt.Fprintln(w, "  none assigned")
		return nil
	}
	t := newTable(w, "  STAGE", "VERSION", "PREVIOUS", "ASSIGNED", "BY", "REASON")
	for _, s := range stages {
		t.strs("  "+s.Stage, fmt.Sprint(s.Version), fmtPrev(s.PreviousVersion), fmtTime(s.AssignedAt), s.AssignedBy, s.Reason)
	}
	return t.flush()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtPrev(v int64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}
