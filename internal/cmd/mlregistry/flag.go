package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func newFlagCmd() *cobra.Command {
	r := &remote{}
	var reason string
	cmd := &cobra.Command{
		Use:   "flag MODEL VERSION --reason TEXT",
		Short: "Flag a version: it cannot be promoted and \"latest\" look-ups skip it",
		Long: `Flag a version, with a reason. A flagged version cannot be assigned to a
stage nor receive endpoint traffic, and the provider's "latest" look-ups skip
it. Any write token may flag; clearing a flag (unflag) needs a write token
without a stage restriction.`,
		Example:           `  mlregistry flag churn 7 --reason "label leak in training data"`,
		Args:              exactArgs(2, "a MODEL and a VERSION"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageErrorf("flag needs --reason: say why, it is shown wherever the version is")
			}
			return setFlag(cmd, r, args, true, reason)
		},
	}
	addRemoteFlags(cmd, r)
	cmd.Flags().StringVar(&reason, "reason", "", "why the version is flagged (required)")
	return cmd
}

func newUnflagCmd() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:               "unflag MODEL VERSION",
		Short:             "Clear a version's flag",
		Example:           `  mlregistry unflag churn 7`,
		Args:              exactArgs(2, "a MODEL and a VERSION"),
		ValidArgsFunction: r.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			return setFlag(cmd, r, args, false, "")
		},
	}
	addRemoteFlags(cmd, r)
	return cmd
}

func setFlag(cmd *cobra.Command, r *remote, args []string, flagged bool, reason string) error {
	v, err := parseVersion(args[1])
	if err != nil {
		return err
	}
	return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
		p := registry.ModelVersionPatch{Flagged: &flagged}
		if flagged {
			p.FlagReason = &reason
		}
		out, err := c.UpdateVersion(ctx, args[0], v, p, 0)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), out)
		}
		if flagged {
			fmt.Fprintf(cmd.OutOrStdout(), "flagged %s version %d: %s\n", out.Model, out.Version, out.FlagReason)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "unflagged %s version %d\n", out.Model, out.Version)
		}
		return nil
	})
}
