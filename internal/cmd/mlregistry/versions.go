package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func newVersionsCmd() *cobra.Command {
	r := &remote{}
	var (
		stage, tag, orderBy string
		flagged, unflagged  bool
	)
	cmd := &cobra.Command{
		Use:   "versions MODEL [VERSION] | versions create MODEL ...",
		Short: "List a model's versions, show one, or register a new one",
		Long: `List a model's versions (filtered by stage, tag or flag, ordered by version
or by a metric), or show one version with its artifact, metrics, lineage
and signature.

--order-by takes "version" or a metric name; a metric orders the best
(highest) first unless followed by " asc". A metric no version of the model
has, or a stage the model does not have, is an error that lists the valid
choices.`,
		Example: `  mlregistry versions churn
  mlregistry versions churn --stage production
  mlregistry versions churn --order-by auc          # highest auc first
  mlregistry versions churn --flagged
  mlregistry versions churn 7
  mlregistry versions churn -o json | jq '.[] | {version, metrics}'
  mlregistry versions create churn --source s3://models/churn/8/model.onnx --checksum sha256:... --metrics-file metrics.json`,
		Args:              rangeArgs(1, 2, "a MODEL and optionally a VERSION"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			if flagged && unflagged {
				return usageErrorf("--flagged and --unflagged exclude each other")
			}
			if len(args) == 2 {
				v, err := parseVersion(args[1])
				if err != nil {
					return err
				}
				if stage != "" || tag != "" || orderBy != "" || flagged || unflagged {
					return usageErrorf("filters (--stage, --tag, --order-by, --flagged) apply to the list, not to one VERSION")
				}
				return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
					return showVersion(ctx, cmd, c, args[0], v, asJSON)
				})
			}
			order, err := parseOrderBy(orderBy)
			if err != nil {
				return err
			}
			f := registry.VersionFilter{Stage: stage, Tag: tag, OrderBy: order.api()}
			if flagged || unflagged {
				f.Flagged = &flagged
			}
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				vs, err := c.AllVersions(ctx, args[0], f)
				if err != nil {
					return err
				}
				if stage != "" && len(vs) == 0 {
					if err := checkStage(ctx, c, args[0], "--stage", stage); err != nil {
						return err
					}
				}
				if tag != "" && len(vs) == 0 {
					if err := checkTag(ctx, c, args[0], "--tag", tag); err != nil {
						return err
					}
				}
				if order != nil {
					filtered := stage != "" || tag != "" || f.Flagged != nil
					if err := checkMetric(ctx, c, args[0], "--order-by", order.metric, vs, filtered); err != nil {
						return err
					}
				}
				if vs == nil {
					vs = []registry.ModelVersion{}
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), vs)
				}
				t := newTable(cmd.OutOrStdout(), "VERSION", "STAGES", "FLAGGED", "FORMAT", "METRICS", "CREATED", "BY", "SOURCE")
				for _, v := range vs {
					fl := plain("no")
					if v.Flagged {
						fl = cell{text: "yes: " + v.FlagReason, color: colorRed}
					}
					t.row(plain(fmt.Sprint(v.Version)), cell{text: strings.Join(v.Stages, ","), color: colorGreen}, fl, plain(v.Format),
						plain(fmtMap(v.Metrics)), plain(fmtTime(v.CreatedAt)), plain(v.CreatedBy), plain(v.Source))
				}
				return t.flush()
			})
		},
	}
	addRemoteFlags(cmd, r)
	fl := cmd.Flags()
	fl.StringVar(&stage, "stage", "", "only the version holding this stage")
	fl.StringVar(&tag, "tag", "", "only versions with this tag (key or key=value)")
	fl.StringVar(&orderBy, "order-by", "", `"version" or a metric name, e.g. auc (best first; add " asc" for lowest first)`)
	fl.BoolVar(&flagged, "flagged", false, "only flagged versions")
	fl.BoolVar(&unflagged, "unflagged", false, "only versions that are not flagged")
	cmd.AddCommand(newVersionsCreateCmd(r), newVersionsCompareCmd(r))
	return cmd
}

func showVersion(ctx context.Context, cmd *cobra.Command, c *client.Client, model string, version int64, asJSON bool) error {
	v, err := c.GetVersion(ctx, model, version)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(w, v)
	}
	flag := "no"
	if v.Flagged {
		flag = "yes: " + v.FlagReason
	}
	kv := []string{
		"Model", v.Model,
		"Version", fmt.Sprint(v.Version),
		"Stages", strings.Join(v.Stages, ", "),
		"Flagged", flag,
		"Source", v.Source,
		"Checksum", v.Checksum,
		"Format", v.Format,
		"Metrics", fmtMap(v.Metrics),
		"Parameters", fmtMap(v.Parameters),
		"Description", v.Description,
		"Tags", fmtMap(v.Tags),
		"Created", fmtTime(v.CreatedAt) + " by " + orDash(v.CreatedBy),
		"Updated", fmtTime(v.UpdatedAt),
		"Revision", fmt.Sprint(v.Revision),
	}
	if l := v.Lineage; l != nil {
		lin := map[string]string{}
		for k, v := range map[string]string{"run_id": l.RunID, "git_commit": l.GitCommit, "dataset": l.Dataset, "code_uri": l.CodeURI} {
			if v != "" {
				lin[k] = v
			}
		}
		kv = append(kv, "Lineage", fmtMap(lin))
	}
	if s := v.Signature; s != nil {
		kv = append(kv, "Inputs", fmtTensors(s.Inputs), "Outputs", fmtTensors(s.Outputs))
	}
	if err := fields(w, kv...); err != nil {
		return err
	}
	live, err := c.VersionLiveMetrics(ctx, model, version, "")
	if err != nil {
		return err
	}
	return printLive(w, "Live metrics (feedback on predictions of the last "+live.Window+")", live.Metrics)
}

func fmtTensors(ts []registry.TensorSpec) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		dims := make([]string, len(t.Shape))
		for j, d := range t.Shape {
			dims[j] = fmt.Sprint(d)
		}
		parts[i] = fmt.Sprintf("%s %s[%s]", t.Name, t.DType, strings.Join(dims, ","))
	}
	return strings.Join(parts, ", ")
}
