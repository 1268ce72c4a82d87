package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func newEndpointsCmd() *cobra.Command {
	r := &remote{}
	list := func(cmd *cobra.Command, _ []string) error {
		return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
			eps, err := allEndpoints(ctx, c)
			if err != nil {
				return err
			}
			if eps == nil {
				eps = []registry.Endpoint{}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), eps)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "MODEL", "STAGE", "STATUS", "ROUTES", "URL")
			for _, e := range eps {
				routes := make([]string, len(e.Routes))
				for i, rt := range e.Routes {
					routes[i] = fmt.Sprintf("%s=v%d:%d%%", rt.Name, rt.Version, rt.Weight)
				}
				t.row(plain(e.Name), plain(e.Model), plain(e.Stage), statusCell(e.Status), plain(strings.Join(routes, " ")), plain(e.URL))
			}
			return t.flush()
		})
	}
	cmd := &cobra.Command{
		Use:   "endpoints [list | show NAME]",
		Short: "List serving endpoints, or show one with its routes",
		Long: `List serving endpoints, or show one: its routes (version, weight, upstream),
status, guard and URL.

show prints each route's configured weight (what the last create or update
wrote) beside the observed one (what the gateway uses now): after the guard
moved traffic off a failing route, or a flagged version was drained, they
differ, status says why, and the next terraform plan shows the difference as
drift. The list shows observed weights.`,
		Example: `  mlregistry endpoints
  mlregistry endpoints show churn
  mlregistry endpoints show churn -o json | jq .routes`,
		Args: noArgs,
		RunE: list,
	}
	addRemoteFlags(cmd, r)
	cmd.AddCommand(&cobra.Command{
		Use:     "list",
		Short:   "List serving endpoints",
		Example: "  mlregistry endpoints list",
		Args:    noArgs,
		RunE:    list,
	}, &cobra.Command{
		Use:               "show NAME",
		Short:             "Show an endpoint: routes, weights, status, guard and URL",
		Example:           "  mlregistry endpoints show churn",
		Args:              exactArgs(1, "an endpoint NAME"),
		ValidArgsFunction: r.completeEndpoints,
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				e, err := c.GetEndpoint(ctx, args[0])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(w, e)
				}
				status := e.Status
				if e.StatusMessage != "" {
					status += ": " + e.StatusMessage
				}
				guard := "none"
				if g := e.Guard; g != nil {
					guard = fmt.Sprintf("max error rate %g over %s, at least %d requests", g.MaxErrorRate, g.Window, g.MinRequests)
				}
				if err := fields(w,
					"Name", e.Name,
					"Model", e.Model,
					"Stage", e.Stage,
					"Status", status,
					"URL", e.URL,
					"Sticky header", e.StickyHeader,
					"Guard", guard,
					"Created", fmtTime(e.CreatedAt),
					"Updated", fmtTime(e.UpdatedAt),
					"Revision", fmt.Sprint(e.Revision),
				); err != nil {
					return err
				}
				configured, err := configuredWeights(ctx, c, e)
				if err != nil {
					return err
				}
				fmt.Fprintln(w)
				fmt.Fprintln(w, "Routes:")
				t := newTable(w, "  NAME", "VERSION", "CONFIGURED", "OBSERVED", "UPSTREAM")
				for _, rt := range e.Routes {
					conf := "?"
					if c, ok := configured[rt.Name]; ok {
						conf = fmt.Sprintf("%d%%", c)
					}
					t.strs("  "+rt.Name, fmt.Sprint(rt.Version), conf, fmt.Sprintf("%d%%", rt.Weight), rt.UpstreamURL)
				}
				if err := t.flush(); err != nil {
					return err
				}
				for _, rt := range e.Routes {
					if m := rt.Match; m != nil {
						op := "is"
						if m.Prefix {
							op = "starts with"
						}
						fmt.Fprintf(w, "Route %s also takes every request whose %s %s %q, whatever the weights.\n", rt.Name, m.Header, op, m.Value)
					}
				}
				return nil
			})
		},
	})
	return cmd
}

func statusCell(status string) cell {
	if status == registry.EndpointStatusHealthy {
		return cell{text: status, color: colorGreen}
	}
	return cell{text: status, color: colorRed}
}

// configuredWeights are the route weights the newest create or update of
// the endpoint wrote, from its audit events; the endpoint itself holds the
// observed ones, which the guard or a flag may have moved. A route the
// events do not name is missing from the map.
func configuredWeights(ctx context.Context, c *client.Client, e *registry.Endpoint) (map[string]int, error) {
	var last *registry.Event
	f := registry.EventFilter{Endpoint: e.Name, Since: e.CreatedAt, ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}}
	for {
		page, err := c.ListEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		for i := range page.Items {
			switch page.Items[i].Action {
			case registry.ActionEndpointCreate, registry.ActionEndpointUpdate:
				last = &page.Items[i]
			}
		}
		if page.NextPageToken == "" {
			break
		}
		f.PageToken = page.NextPageToken
	}
	out := map[string]int{}
	if last == nil {
		return out, nil
	}
	var after struct {
		Routes []registry.Route `json:"routes"`
	}
	if err := json.Unmarshal(last.After, &after); err != nil {
		return nil, fmt.Errorf("reading the configured weights from event %d: %w", last.ID, err)
	}
	for _, rt := range after.Routes {
		out[rt.Name] = rt.Weight
	}
	return out, nil
}
