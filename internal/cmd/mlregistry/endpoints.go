package main

import (
	"context"
	"encoding/json"
	"fmt"

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
				status := statusCell(e.Status)
				routes := e.Routes
				// While a rollout runs, the gateway serves its weights.
				if st := rolloutStatus(&e); rolloutActive(st) {
					routes = st.Routes
					status.text += fmt.Sprintf(", rollout %s %d/%d", st.State, st.Step, len(st.StepPercents))
				}
				t.row(plain(e.Name), plain(e.Model), plain(e.Stage), status, plain(fmtWeights(routes)), plain(e.URL))
			}
			return t.flush()
		})
	}
	cmd := &cobra.Command{
		Use:   "endpoints [list | show NAME | rollout pause|resume|abort NAME]",
		Short: "List serving endpoints, or show one with its routes",
		Long: `List serving endpoints, or show one: its routes (version, weight, upstream),
status, guard, rollout and URL.

show prints each route's configured weight (what the last create or update
wrote) beside the observed one (what the gateway uses now): after the guard
moved traffic off a failing route, or a flagged version was drained, they
differ, status says why, and the next terraform plan shows the difference as
drift. The list shows observed weights.

While a rollout runs, the routes are its target and the gateway serves the
weights of the step in force: show prints the rollout (state, step, next
step due, the last gate judged) and those weights, and the list shows them.
'endpoints rollout pause|resume|abort NAME' controls a running rollout.`,
		Example: `  mlregistry endpoints
  mlregistry endpoints show churn
  mlregistry endpoints show churn -o json | jq .routes
  mlregistry endpoints show churn -o json | jq .rollout.state
  mlregistry endpoints rollout pause churn --reason "holding for the weekend"`,
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
	}, newEndpointsRolloutCmd(r), &cobra.Command{
		Use:               "show NAME",
		Short:             "Show an endpoint: routes, weights, status, guard, rollout and URL",
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
					if rt.Shadow {
						shadow := fmt.Sprintf("shadow %g", rt.Share)
						t.strs("  "+rt.Name, fmt.Sprint(rt.Version), shadow, shadow, rt.UpstreamURL)
						continue
					}
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
					if rt.Shadow {
						fmt.Fprintf(w, "Route %s is a shadow: it gets a copy of %g of the requests; its answers are discarded.\n", rt.Name, rt.Share)
					}
				}
				if err := showRollout(w, e); err != nil {
					return err
				}
				return showEndpointLive(ctx, c, w, e.Name)
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
