package main

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// A filter the registry would answer with "nothing matches" is checked
// against what the model really has, so a misspelt metric or stage is a
// usage error listing the valid choices rather than an empty list.

// orderBy is a parsed --order-by: "version" or a metric, and a direction.
type orderBy struct {
	metric string // "" orders by version
	desc   bool
}

// parseOrderBy reads --order-by: "version" or a metric name (optionally
// "metrics.<name>"), then optionally asc or desc. A metric defaults to
// desc (best first), version to asc.
func parseOrderBy(s string) (*orderBy, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, nil
	}
	if len(fields) > 2 {
		return nil, usageErrorf("--order-by %q must be \"version\" or a metric name, then optionally asc or desc", s)
	}
	o := &orderBy{}
	if fields[0] != "version" {
		o.metric = strings.TrimPrefix(fields[0], "metrics.")
		o.desc = true
	}
	if len(fields) == 2 {
		switch fields[1] {
		case "asc":
			o.desc = false
		case "desc":
			o.desc = true
		default:
			return nil, usageErrorf("--order-by %q: the direction %q must be asc or desc", s, fields[1])
		}
	}
	return o, nil
}

// api is the order as the API's order_by takes it.
func (o *orderBy) api() string {
	if o == nil {
		return ""
	}
	key := "version"
	if o.metric != "" {
		key = "metrics." + o.metric
	}
	if o.desc {
		return key + " desc"
	}
	return key
}

// checkMetric fails when no version of the model has the metric. listed
// are versions already fetched; filtered says whether a filter narrowed
// them, so the others must be looked at too.
func checkMetric(ctx context.Context, c *client.Client, model, flag, metric string, listed []registry.ModelVersion, filtered bool) error {
	if metric == "" || hasMetric(listed, metric) {
		return nil
	}
	all := listed
	if filtered {
		var err error
		if all, err = c.AllVersions(ctx, model, registry.VersionFilter{}); err != nil {
			return err
		}
		if hasMetric(all, metric) {
			return nil
		}
	}
	names := map[string]bool{}
	for _, v := range all {
		for k := range v.Metrics {
			names[k] = true
		}
	}
	valid := append([]string{"version"}, slices.Sorted(maps.Keys(names))...)
	return usageErrorf("%s %q: no version of model %q has a metric %q; valid choices: %s", flag, metric, model, metric, strings.Join(valid, ", "))
}

func hasMetric(vs []registry.ModelVersion, metric string) bool {
	for _, v := range vs {
		if _, ok := v.Metrics[metric]; ok {
			return true
		}
	}
	return false
}

// checkStage fails when stage is not a stage of the model: not assigned
// now, never assigned before (no history), not named by a stage policy
// (as a stage or as a required one) and not served by an endpoint of the
// model. Callers ask only after a filter by stage found nothing.
func checkStage(ctx context.Context, c *client.Client, model, flag, stage string) error {
	known, err := modelStages(ctx, c, model)
	if err != nil {
		return err
	}
	if known[stage] {
		return nil
	}
	hist, err := c.StageHistory(ctx, model, stage, registry.ListOptions{PageSize: 1})
	if err != nil {
		return err
	}
	if len(hist.Items) > 0 {
		return nil
	}
	if len(known) == 0 {
		return usageErrorf("%s %q: model %q has no stages yet (none assigned, none named by a stage policy or an endpoint)", flag, stage, model)
	}
	return usageErrorf("%s %q is not a stage of model %q; valid choices: %s (assigned now, held before, or named by a stage policy or an endpoint)",
		flag, stage, model, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
}

// modelStages are the stages a model's assignments, stage policies and
// endpoints name.
func modelStages(ctx context.Context, c *client.Client, model string) (map[string]bool, error) {
	known := map[string]bool{}
	m, err := c.GetModel(ctx, model)
	if err != nil {
		return nil, err
	}
	for s, p := range m.StagePolicies {
		known[s] = true
		if p.RequireStage != "" {
			known[p.RequireStage] = true
		}
	}
	assigned, err := c.ListStages(ctx, model)
	if err != nil {
		return nil, err
	}
	for _, a := range assigned {
		known[a.Stage] = true
	}
	eps, err := allEndpoints(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, e := range eps {
		if e.Model == model && e.Stage != "" {
			known[e.Stage] = true
		}
	}
	return known, nil
}

// checkTag fails when no version of the model has the tag's key (the
// value may legitimately match none). Callers ask only after a filter by
// tag found nothing.
func checkTag(ctx context.Context, c *client.Client, model, flag, tag string) error {
	key, _, _ := strings.Cut(tag, "=")
	all, err := c.AllVersions(ctx, model, registry.VersionFilter{})
	if err != nil {
		return err
	}
	keys := map[string]bool{}
	for _, v := range all {
		for k := range v.Tags {
			keys[k] = true
		}
	}
	if keys[key] {
		return nil
	}
	if len(keys) == 0 {
		return usageErrorf("%s %q: no version of model %q has tags", flag, tag, model)
	}
	return usageErrorf("%s %q: no version of model %q has a tag %q; tag keys: %s", flag, tag, model, key, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
}

// checkSubject fails with not_found when the model or endpoint an empty
// audit-log filter named does not exist. One that was deleted still has
// its events, so only a name that never existed gets here.
func checkSubject(ctx context.Context, c *client.Client, model, endpoint string) error {
	if model != "" {
		if _, err := c.GetModel(ctx, model); err != nil {
			return err
		}
	}
	if endpoint != "" {
		if _, err := c.GetEndpoint(ctx, endpoint); err != nil {
			return err
		}
	}
	return nil
}
