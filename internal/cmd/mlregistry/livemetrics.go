package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// fmtLive renders a live metric as "mean (n=count, 95% lo..hi)".
func fmtLive(m *registry.LiveMetric) string {
	if m == nil || m.Count == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.4g (n=%d", m.Mean, m.Count)
	if m.CILow != nil && m.CIHigh != nil {
		s += fmt.Sprintf(", 95%% %.4g..%.4g", *m.CILow, *m.CIHigh)
	}
	return s + ")"
}

// printLive prints a table of live metrics under a heading, or a line
// saying there is no feedback in the window.
func printLive(w io.Writer, heading string, m map[string]registry.LiveMetric) error {
	fmt.Fprintln(w)
	if len(m) == 0 {
		fmt.Fprintf(w, "%s: no feedback\n", heading)
		return nil
	}
	fmt.Fprintf(w, "%s:\n", heading)
	t := newTable(w, "  METRIC", "MEAN", "COUNT", "95% INTERVAL")
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v := m[name]
		ci := "-"
		if v.CILow != nil && v.CIHigh != nil {
			ci = fmt.Sprintf("%.4g..%.4g", *v.CILow, *v.CIHigh)
		}
		t.strs("  "+name, fmt.Sprintf("%.4g", v.Mean), fmt.Sprint(v.Count), ci)
	}
	return t.flush()
}

// showEndpointLive prints an endpoint's live metrics per version.
func showEndpointLive(ctx context.Context, c *client.Client, w io.Writer, endpoint string) error {
	live, err := c.EndpointLiveMetrics(ctx, endpoint, "")
	if err != nil {
		return err
	}
	if len(live.Versions) == 0 {
		return printLive(w, "Live metrics (feedback on predictions of the last "+live.Window+")", nil)
	}
	for _, v := range live.Versions {
		if err := printLive(w, fmt.Sprintf("Live metrics of version %d (last %s)", v.Version, live.Window), v.Metrics); err != nil {
			return err
		}
	}
	return nil
}

func newVersionsCompareCmd(r *remote) *cobra.Command {
	var window string
	cmd := &cobra.Command{
		Use:   "compare MODEL VERSION VERSION [VERSION...]",
		Short: "Compare versions side by side: metrics offline and live, parameters, lineage, signature, stages",
		Long: `Compare 2 to 10 versions of a model side by side. The first is the baseline:
offline metrics and live metrics (from feedback, with counts and 95%
intervals) show each later version's difference from it. Parameters,
lineage, format and signature show which differ; stages show what each
holds now and how many stage changes gave it one or took one away.`,
		Example: `  mlregistry versions compare churn 3 4
  mlregistry versions compare churn 3 4 --window 24h
  mlregistry versions compare churn 3 4 -o json | jq .live_metrics`,
		Args:              rangeArgs(3, 11, "a MODEL and 2 to 10 VERSIONs"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			var versions []int64
			for _, a := range args[1:] {
				v, err := parseVersion(a)
				if err != nil {
					return err
				}
				versions = append(versions, v)
			}
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				cmp, err := c.CompareVersions(ctx, args[0], versions, window)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), cmp)
				}
				return printComparison(cmd.OutOrStdout(), cmp)
			})
		},
	}
	addRemoteFlags(cmd, r)
	cmd.Flags().StringVar(&window, "window", "", "live metrics over predictions made in this window (default 1h), e.g. 24h")
	return cmd
}

func printComparison(w io.Writer, c *registry.Comparison) error {
	headers := []string{""}
	for i, v := range c.Versions {
		h := fmt.Sprintf("V%d", v)
		if i == 0 {
			h += " (BASE)"
		}
		headers = append(headers, h)
	}
	section := func(title string, rows [][]string) error {
		fmt.Fprintln(w)
		fmt.Fprintln(w, title)
		if len(rows) == 0 {
			fmt.Fprintln(w, "  none")
			return nil
		}
		hs := append([]string(nil), headers...)
		hs[0] = "  NAME"
		t := newTable(w, hs...)
		for _, row := range rows {
			row[0] = "  " + row[0]
			t.strs(row...)
		}
		return t.flush()
	}
	fmt.Fprintf(w, "Model %s, live metrics over %s\n", c.Model, c.Window)

	var rows [][]string
	for _, m := range c.Metrics {
		row := []string{m.Name}
		for i, v := range m.Values {
			cell := "-"
			if v != nil {
				cell = fmt.Sprintf("%.4g", *v)
				if i > 0 && m.Deltas[i] != nil {
					cell += " (" + registry.FormatDelta(m.Deltas[i]) + ")"
				}
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	if err := section("Offline metrics:", rows); err != nil {
		return err
	}
	rows = nil
	for _, m := range c.LiveMetrics {
		row := []string{m.Name}
		for i, v := range m.Values {
			cell := fmtLive(v)
			if i > 0 && v != nil && m.Deltas[i] != nil {
				cell += " " + registry.FormatDelta(m.Deltas[i])
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	if err := section("Live metrics (mean, count, 95% interval; difference of means):", rows); err != nil {
		return err
	}
	values := func(title string, vcs []registry.ValueComparison) error {
		var rows [][]string
		for _, vc := range vcs {
			name := vc.Name
			if !vc.Same {
				name += " *"
			}
			row := []string{name}
			for _, v := range vc.Values {
				row = append(row, orDash(deref(v)))
			}
			rows = append(rows, row)
		}
		return section(title, rows)
	}
	if err := values("Parameters (* differs):", c.Parameters); err != nil {
		return err
	}
	if err := values("Lineage and format (* differs):", append(append([]registry.ValueComparison(nil), c.Lineage...), c.Format)); err != nil {
		return err
	}
	sig := []string{"signature"}
	for _, s := range c.Signature.Values {
		if s == nil {
			sig = append(sig, "-")
		} else {
			sig = append(sig, fmt.Sprintf("%d in, %d out", len(s.Inputs), len(s.Outputs)))
		}
	}
	if !c.Signature.Same {
		sig[0] += " *"
	}
	stages := []string{"holds now"}
	changes := []string{"stage changes"}
	for _, s := range c.Stages {
		stages = append(stages, orDash(strings.Join(s.Current, ",")))
		changes = append(changes, fmt.Sprint(len(s.History)))
	}
	return section("Signature and stages:", [][]string{sig, stages, changes})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
