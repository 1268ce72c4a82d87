package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// followSlack: each poll asks again for events this far before the newest
// seen, since on PostgreSQL a transaction may commit an event with an
// earlier time (and id) after a later one; ids seen already are skipped.
const followSlack = 10 * time.Second

func newEventsCmd() *cobra.Command {
	r := &remote{}
	var (
		model, endpoint, since string
		limit                  int
		follow                 bool
		interval               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the audit log, optionally following new events",
		Long: `Show the audit log: who changed what, when, oldest first. Without --since
the last --limit events are shown; with --since, every event since then (or
the last --limit of them, when --limit is given).

--since takes an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02,
UTC) or a duration back from now: 90m, 24h, 7d.

--follow keeps polling and prints new events as they are written, until
interrupted (Ctrl-C, exit code 0). With --output json, --follow prints one
JSON object per line; without --follow, a JSON array.`,
		Example: `  mlregistry events --model churn
  mlregistry events --endpoint churn --since 2026-01-02T00:00:00Z
  mlregistry events --model churn --since 24h
  mlregistry events --follow
  mlregistry events --follow -o json | jq -c 'select(.action == "endpoint.guard_rollback")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := registry.EventFilter{Model: model, Endpoint: endpoint}
			if since != "" {
				t, err := registry.ParseSince("--since", since, time.Now())
				if err != nil {
					return usageErrorf("--since %q must be an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02) or a positive duration back from now (90m, 24h, 7d)", since)
				}
				f.Since = t
			}
			if limit < 0 {
				return usageErrorf("--limit must be 0 (all) or more")
			}
			// Without --since the default limit applies; with it, only
			// one the caller gave.
			keepLast := limit
			if since != "" && !cmd.Flags().Changed("limit") {
				keepLast = 0
			}
			if cmd.Flags().Changed("interval") && !follow {
				return usageErrorf("--interval is how often --follow polls; give --follow too")
			}
			if interval <= 0 {
				return usageErrorf("--interval must be positive")
			}
			return r.run(cmd, func(ctx context.Context, c *client.Client, asJSON bool) error {
				evs, err := allEvents(ctx, c, f)
				if err != nil {
					return err
				}
				// Following may wait for a model or endpoint to be created.
				if len(evs) == 0 && !follow {
					if err := checkSubject(ctx, c, model, endpoint); err != nil {
						return err
					}
				}
				fetched := evs
				if keepLast > 0 && len(evs) > keepLast {
					evs = evs[len(evs)-keepLast:]
				}
				w := cmd.OutOrStdout()
				if !follow {
					if asJSON {
						if evs == nil {
							evs = []registry.Event{}
						}
						return writeJSON(w, evs)
					}
					t := newTable(w, eventHeaders...)
					for _, e := range evs {
						t.row(eventRow(e)...)
					}
					return t.flush()
				}
				return followEvents(ctx, c, f, fetched, evs, interval, w, asJSON)
			})
		},
	}
	addRemoteFlags(cmd, r)
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "only events about this model (its versions, stages and endpoints too)")
	fl.StringVar(&endpoint, "endpoint", "", "only events about this endpoint")
	fl.StringVar(&since, "since", "", "only events at or after this time: RFC 3339, a date, or a duration back from now (24h, 7d)")
	fl.IntVar(&limit, "limit", 50, "show only the last N events (0: all); with --since, only when given")
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	fl.DurationVar(&interval, "interval", 2*time.Second, "with --follow, how often to poll")
	return cmd
}

var eventHeaders = []string{"ID", "TIME", "ACTOR", "ACTION", "SUBJECT", "REQUEST"}

func eventRow(e registry.Event) []cell {
	color := ""
	switch {
	case strings.HasSuffix(e.Action, ".delete"), strings.HasSuffix(e.Action, ".revoke"), strings.Contains(e.Action, "rollback"):
		color = colorRed
	case strings.HasSuffix(e.Action, ".create"):
		color = colorGreen
	case e.Action == registry.ActionStageAssign, e.Action == registry.ActionStageUnassign:
		color = colorYellow
	}
	return []cell{plain(fmt.Sprint(e.ID)), plain(fmtTime(e.Time)), plain(e.Actor), {text: e.Action, color: color},
		plain(e.SubjectType + " " + e.Subject), plain(e.RequestID)}
}

func allEvents(ctx context.Context, c *client.Client, f registry.EventFilter) ([]registry.Event, error) {
	var all []registry.Event
	f.PageSize = registry.MaxPageSize
	for {
		page, err := c.ListEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextPageToken == "" || page.NextPageToken == f.PageToken {
			return all, nil
		}
		f.PageToken = page.NextPageToken
	}
}

// followEvents prints shown (the tail of fetched, what --limit kept), then
// polls for events written after fetched and prints each once, ids
// ascending. Every event fetched before following is old: the look-back
// of each poll finds them again, and they are never printed then. The one
// exception to ascending ids is an event a slower transaction commits
// after a later one was printed (PostgreSQL assigns ids before commit): it
// is printed when it appears, rather than lost.
func followEvents(ctx context.Context, c *client.Client, f registry.EventFilter, fetched, shown []registry.Event, interval time.Duration, w io.Writer, asJSON bool) error {
	var floor int64
	var newest time.Time
	for _, e := range fetched {
		floor = max(floor, e.ID)
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	seen := map[int64]time.Time{}
	// Fixed-width lines, not a table: rows arrive over time.
	printEvent := func(e registry.Event) error {
		seen[e.ID] = e.Time
		if e.Time.After(newest) {
			newest = e.Time
		}
		if asJSON {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "%s\n", b)
			return err
		}
		return fixedRow(w, useColor(w), eventRow(e))
	}
	if !asJSON {
		hs := make([]cell, len(eventHeaders))
		for i, h := range eventHeaders {
			hs[i] = cell{text: h, color: colorBold}
		}
		if err := fixedRow(w, useColor(w), hs); err != nil {
			return err
		}
	}
	for _, e := range shown {
		if err := printEvent(e); err != nil {
			return err
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		q := f
		if !newest.IsZero() {
			q.Since = newest.Add(-followSlack)
		}
		evs, err := allEvents(ctx, c, q)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		slices.SortFunc(evs, func(a, b registry.Event) int { return cmp.Compare(a.ID, b.ID) })
		for _, e := range evs {
			if _, ok := seen[e.ID]; ok || e.ID <= floor {
				continue
			}
			if err := printEvent(e); err != nil {
				return err
			}
		}
		for id, t := range seen {
			if t.Before(newest.Add(-2 * followSlack)) {
				delete(seen, id)
			}
		}
	}
}

// followWidths are the columns of followed events (ID, TIME, ACTOR, ACTION,
// SUBJECT); longer values push the line, as in any log.
var followWidths = []int{6, 20, 14, 24, 28}

func fixedRow(w io.Writer, color bool, cells []cell) error {
	var b strings.Builder
	for i, c := range cells {
		text := orDash(c.text)
		if i < len(followWidths) {
			text = fmt.Sprintf("%-*s", followWidths[i], text)
		}
		if color && c.color != "" {
			text = c.color + text + colorReset
		}
		if i > 0 {
			b.WriteString("  ")
		}
		b.WriteString(text)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
