package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// defaultAddr is where client commands look without MLREGISTRY_ADDR: the
// server's default listen address.
const defaultAddr = "http://127.0.0.1:8080"

// remote holds the flags every client command shares.
type remote struct {
	addr, token, output string
}

// addRemoteFlags adds --addr, --token and --output to cmd and its
// subcommands.
func addRemoteFlags(cmd *cobra.Command, r *remote) {
	f := cmd.PersistentFlags()
	f.StringVar(&r.addr, "addr", "", "registry URL (env MLREGISTRY_ADDR, default "+defaultAddr+")")
	f.StringVar(&r.token, "token", "", "API token mlr_... (env MLREGISTRY_TOKEN)")
	f.StringVarP(&r.output, "output", "o", outputTable, "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputTable, outputJSON}, cobra.ShellCompDirectiveNoFileComp))
}

func (r *remote) address() string {
	if r.addr != "" {
		return r.addr
	}
	return envOr("MLREGISTRY_ADDR", defaultAddr)
}

func (r *remote) secret() string {
	if r.token != "" {
		return r.token
	}
	return envOr("MLREGISTRY_TOKEN", "")
}

// json reports whether --output json was asked for; an unknown format is
// a usage error.
func (r *remote) json() (bool, error) {
	switch r.output {
	case outputTable, "":
		return false, nil
	case outputJSON:
		return true, nil
	}
	return false, usageErrorf("--output %q must be table or json", r.output)
}

// client builds the API client. The CLI retries less than the provider: a
// person waits for the answer.
func (r *remote) client() (*client.Client, error) {
	c, err := client.New(client.Options{
		Address:      r.address(),
		Token:        r.secret(),
		UserAgent:    "mlregistry-cli/" + version,
		MaxRetries:   2,
		RetryWaitMin: 200 * time.Millisecond,
		RetryWaitMax: 2 * time.Second,
	})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return c, nil
}

// wrap attaches what to check (address, token) to a client error.
func (r *remote) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &remoteHint{err: err, addr: r.address(), hasToken: r.secret() != ""}
}

// runRemote checks --output, builds the client and runs f with it.
func (r *remote) run(cmd *cobra.Command, f func(ctx context.Context, c *client.Client, asJSON bool) error) error {
	asJSON, err := r.json()
	if err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	return r.wrap(f(cmd.Context(), c, asJSON))
}

// completeModels completes a model name from the registry (best effort:
// nothing when it cannot be reached).
func (r *remote) completeModels(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := r.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	models, err := c.AllModels(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, m := range models {
		if strings.HasPrefix(m.Name, prefix) {
			out = append(out, m.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeEndpoints completes an endpoint name from the registry.
func (r *remote) completeEndpoints(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := r.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	eps, err := allEndpoints(ctx, c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range eps {
		if strings.HasPrefix(e.Name, prefix) {
			out = append(out, e.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// allEndpoints walks every page of the endpoint list.
func allEndpoints(ctx context.Context, c *client.Client) ([]registry.Endpoint, error) {
	var all []registry.Endpoint
	opts := registry.ListOptions{PageSize: registry.MaxPageSize}
	for {
		page, err := c.ListEndpoints(ctx, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextPageToken == "" || page.NextPageToken == opts.PageToken {
			return all, nil
		}
		opts.PageToken = page.NextPageToken
	}
}

// parseVersion reads a version number argument.
func parseVersion(s string) (int64, error) {
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 || fmt.Sprint(n) != s {
		return 0, usageErrorf("version %q must be a positive integer", s)
	}
	return n, nil
}
