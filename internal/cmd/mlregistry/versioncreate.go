package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// formatByExtension: the formats a source's file name says unambiguously.
// Others (a directory, .bin, .joblib, .json) need --format.
var formatByExtension = map[string]string{
	".onnx":        "onnx",
	".safetensors": "safetensors",
	".pt":          "pytorch",
	".pth":         "pytorch",
	".pkl":         "pickle",
	".pickle":      "pickle",
}

var lineageKeys = []string{"run_id", "git_commit", "dataset", "code_uri"}

func newVersionsCreateCmd(r *remote) *cobra.Command {
	var (
		in                          registry.ModelVersionCreate
		metricsFile, idempotencyKey string
		params, tags, lineage       []string
	)
	cmd := &cobra.Command{
		Use:   "create MODEL --source URI --checksum sha256:HEX [--format F] [--metrics-file FILE] [--param k=v ...] [--tag k=v ...] [--lineage k=v ...] [--description TEXT]",
		Short: "Register a new version of a model (a training pipeline's last step)",
		Long: `Register a new version of a model and print its number on stdout (the
message goes to stderr, so v=$(mlregistry versions create ...) captures just
the number). The registry assigns the number; the artifact (source and
checksum) must not be registered already.

--format defaults to what the source's extension says (.onnx, .safetensors,
.pt/.pth for pytorch, .pkl/.pickle for pickle); otherwise give it.
--metrics-file is a JSON object of metric names to numbers, e.g.
{"auc": 0.91, "f1": 0.72}. --param, --tag and --lineage repeat; lineage keys
are run_id, git_commit, dataset and code_uri.

The request carries an Idempotency-Key: one generated for this run, or
--idempotency-key. A pipeline that may run the same step twice passes a key
of its own (its run id): the second run then prints the version the first
registered, and the same key with other values is refused (exit 5).

To manage the version with Terraform afterwards, import it: see the guide
"Promotion and rollback" (import { to = ... id = "MODEL/VERSION" }).`,
		Example: `  mlregistry versions create churn --source s3://models/churn/8/model.onnx \
    --checksum sha256:$(sha256sum model.onnx | cut -d' ' -f1) \
    --metrics-file metrics.json --param lr=0.05 --lineage run_id=run-88 \
    --idempotency-key "$CI_PIPELINE_ID-churn"
  mlregistry versions create churn --source s3://models/churn/9/ --format tensorflow --checksum sha256:... -o json`,
		Args:              exactArgs(1, "a MODEL"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			model := args[0]
			if in.Source == "" || in.Checksum == "" {
				return usageErrorf("versions create needs --source and --checksum: the artifact's URI and its sha256")
			}
			if in.Format == "" {
				f, err := formatOf(in.Source)
				if err != nil {
					return err
				}
				in.Format = f
			} else if !slices.Contains(registry.Formats, in.Format) {
				return usageErrorf("--format %q must be one of %s", in.Format, strings.Join(registry.Formats, ", "))
			}
			var err error
			if in.Parameters, err = keyValues("--param", params, nil); err != nil {
				return err
			}
			if in.Tags, err = keyValues("--tag", tags, nil); err != nil {
				return err
			}
			lin, err := keyValues("--lineage", lineage, lineageKeys)
			if err != nil {
				return err
			}
			if len(lin) > 0 {
				in.Lineage = &registry.Lineage{RunID: lin["run_id"], GitCommit: lin["git_commit"], Dataset: lin["dataset"], CodeURI: lin["code_uri"]}
			}
			if metricsFile != "" {
				if in.Metrics, err = readMetrics(metricsFile); err != nil {
					return err
				}
			}
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				if idempotencyKey != "" {
					ctx = client.WithIdempotencyKey(ctx, idempotencyKey)
				}
				v, err := c.CreateVersion(ctx, model, in)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintln(cmd.OutOrStdout(), v.Version)
				fmt.Fprintf(cmd.ErrOrStderr(), "registered %s version %d (%s, %s) by %s\n", v.Model, v.Version, v.Format, v.Source, orDash(v.CreatedBy))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Source, "source", "", "artifact URI: s3://, gs://, https://, file://, ... (required)")
	f.StringVar(&in.Checksum, "checksum", "", "sha256:<64 hex digits> of the artifact (required)")
	f.StringVar(&in.Format, "format", "", "one of "+strings.Join(registry.Formats, ", ")+" (default: from the source's extension)")
	f.StringVar(&metricsFile, "metrics-file", "", `JSON object of metric names to numbers, e.g. {"auc": 0.91}`)
	f.StringArrayVar(&params, "param", nil, "training parameter key=value (repeat)")
	f.StringArrayVar(&tags, "tag", nil, "tag key=value (repeat)")
	f.StringArrayVar(&lineage, "lineage", nil, "lineage key=value: run_id, git_commit, dataset, code_uri (repeat)")
	f.StringVar(&in.Description, "description", "", "what this version is")
	f.StringVar(&idempotencyKey, "idempotency-key", "", "Idempotency-Key to send (default: a new one for this run)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(registry.Formats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// formatOf reads the format from the source's file extension.
func formatOf(source string) (string, error) {
	p := source
	if u, err := url.Parse(source); err == nil && u.Path != "" {
		p = u.Path
	}
	if f, ok := formatByExtension[strings.ToLower(path.Ext(p))]; ok {
		return f, nil
	}
	return "", usageErrorf("--format is needed: the source %q does not say it by its extension; one of %s", source, strings.Join(registry.Formats, ", "))
}

// keyValues reads repeated key=value flags; with allowed, only those keys.
func keyValues(flag string, kvs, allowed []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("%s %q must be key=value", flag, kv)
		}
		if allowed != nil && !slices.Contains(allowed, k) {
			return nil, usageErrorf("%s %q: the key must be one of %s", flag, kv, strings.Join(allowed, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, usageErrorf("%s %q: key %q is given twice", flag, kv, k)
		}
		out[k] = v
	}
	return out, nil
}

// readMetrics reads --metrics-file: a JSON object of numbers. Each error
// names the file and the metric.
func readMetrics(file string) (map[string]float64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageErrorf("--metrics-file %s does not exist", file)
		}
		return nil, usageErrorf("--metrics-file: %v", err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, usageErrorf("--metrics-file %s is not JSON: %v", file, err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, usageErrorf(`--metrics-file %s must hold a JSON object of metric names to numbers, e.g. {"auc": 0.91}`, file)
	}
	out := make(map[string]float64, len(obj))
	for k, v := range obj {
		n, ok := v.(float64)
		if !ok {
			got, _ := json.Marshal(v)
			return nil, usageErrorf("--metrics-file %s: metric %q must be a number, got %s", file, k, got)
		}
		out[k] = n
	}
	return out, nil
}
