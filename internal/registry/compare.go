package registry

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Bounds of GET /api/v1/models/{model}/compare?versions=.
const (
	MinCompareVersions = 2
	MaxCompareVersions = 10
)

// Comparison is the answer of GET /api/v1/models/{model}/compare: the
// versions side by side, in the order asked. Every per-version list is in
// that order; deltas are against the first version (the baseline).
type Comparison struct {
	Model    string  `json:"model"`
	Versions []int64 `json:"versions"`
	// Window is the live metrics' window.
	Window      string              `json:"window"`
	Metrics     []MetricComparison  `json:"metrics"`
	LiveMetrics []LiveComparison    `json:"live_metrics"`
	Parameters  []ValueComparison   `json:"parameters"`
	Lineage     []ValueComparison   `json:"lineage"`
	Format      ValueComparison     `json:"format"`
	Signature   SignatureComparison `json:"signature"`
	Stages      []VersionStages     `json:"stages"`
}

// MetricComparison is one offline metric: each version's value (null when
// it has none) and its difference from the baseline's (null when either is
// missing).
type MetricComparison struct {
	Name   string     `json:"name"`
	Values []*float64 `json:"values"`
	Deltas []*float64 `json:"deltas"`
}

// LiveComparison is one live metric: each version's summary (null without
// feedback in the window) and the difference of its mean from the
// baseline's.
type LiveComparison struct {
	Name   string        `json:"name"`
	Values []*LiveMetric `json:"values"`
	Deltas []*float64    `json:"deltas"`
}

// ValueComparison is one string field: each version's value (null when
// unset) and whether they all agree.
type ValueComparison struct {
	Name   string    `json:"name"`
	Values []*string `json:"values"`
	Same   bool      `json:"same"`
}

// SignatureComparison tells whether the versions share one signature, and
// lists each version's (null when it has none).
type SignatureComparison struct {
	Same   bool         `json:"same"`
	Values []*Signature `json:"values"`
}

// VersionStages is what stages one version holds now, and every change
// that gave it one or took one from it, newest first.
type VersionStages struct {
	Version int64               `json:"version"`
	Current []string            `json:"current"`
	History []StageHistoryEntry `json:"history"`
}

// ParseCompareVersions reads ?versions=3,4: MinCompareVersions to
// MaxCompareVersions distinct positive version numbers.
func ParseCompareVersions(field, v string) ([]int64, error) {
	if strings.TrimSpace(v) == "" {
		return nil, FieldError(field, "required", "name the versions to compare, e.g. versions=3,4")
	}
	parts := strings.Split(v, ",")
	if len(parts) < MinCompareVersions || len(parts) > MaxCompareVersions {
		return nil, FieldError(field, "count", "compare %d to %d versions, got %d", MinCompareVersions, MaxCompareVersions, len(parts))
	}
	out := make([]int64, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || n <= 0 {
			return nil, FieldError(field, "version", "%q is not a version number (a positive integer)", p)
		}
		if slices.Contains(out, n) {
			return nil, FieldError(field, "distinct", "version %d is named twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// CompareVersions builds the comparison of vs (in that order) from their
// live metrics (by version) and stage histories (by version).
func CompareVersions(model, window string, vs []ModelVersion, live map[int64]map[string]LiveMetric, history map[int64][]StageHistoryEntry) *Comparison {
	c := &Comparison{Model: model, Window: window}
	for _, v := range vs {
		c.Versions = append(c.Versions, v.Version)
	}

	metricNames := map[string]bool{}
	for _, v := range vs {
		for k := range v.Metrics {
			metricNames[k] = true
		}
	}
	c.Metrics = []MetricComparison{}
	for _, name := range slices.Sorted(maps.Keys(metricNames)) {
		mc := MetricComparison{Name: name}
		for _, v := range vs {
			var val *float64
			if x, ok := v.Metrics[name]; ok {
				val = &x
			}
			mc.Values = append(mc.Values, val)
		}
		mc.Deltas = deltas(mc.Values)
		c.Metrics = append(c.Metrics, mc)
	}

	liveNames := map[string]bool{}
	for _, m := range live {
		for k := range m {
			liveNames[k] = true
		}
	}
	c.LiveMetrics = []LiveComparison{}
	for _, name := range slices.Sorted(maps.Keys(liveNames)) {
		lc := LiveComparison{Name: name}
		var means []*float64
		for _, v := range vs {
			var val *LiveMetric
			var mean *float64
			if x, ok := live[v.Version][name]; ok && x.Count > 0 {
				val = &x
				mean = &x.Mean
			}
			lc.Values = append(lc.Values, val)
			means = append(means, mean)
		}
		lc.Deltas = deltas(means)
		c.LiveMetrics = append(c.LiveMetrics, lc)
	}

	paramNames := map[string]bool{}
	for _, v := range vs {
		for k := range v.Parameters {
			paramNames[k] = true
		}
	}
	c.Parameters = []ValueComparison{}
	for _, name := range slices.Sorted(maps.Keys(paramNames)) {
		c.Parameters = append(c.Parameters, compareValues(name, vs, func(v ModelVersion) (string, bool) {
			x, ok := v.Parameters[name]
			return x, ok
		}))
	}

	c.Lineage = []ValueComparison{}
	for _, f := range []struct {
		name string
		get  func(*Lineage) string
	}{
		{"run_id", func(l *Lineage) string { return l.RunID }},
		{"git_commit", func(l *Lineage) string { return l.GitCommit }},
		{"dataset", func(l *Lineage) string { return l.Dataset }},
		{"code_uri", func(l *Lineage) string { return l.CodeURI }},
	} {
		c.Lineage = append(c.Lineage, compareValues(f.name, vs, func(v ModelVersion) (string, bool) {
			if v.Lineage == nil || f.get(v.Lineage) == "" {
				return "", false
			}
			return f.get(v.Lineage), true
		}))
	}
	c.Format = compareValues("format", vs, func(v ModelVersion) (string, bool) { return v.Format, v.Format != "" })

	c.Signature.Same = true
	for i, v := range vs {
		c.Signature.Values = append(c.Signature.Values, v.Signature)
		if i > 0 && !SignaturesEqual(vs[0].Signature, v.Signature) {
			c.Signature.Same = false
		}
	}

	for _, v := range vs {
		h := history[v.Version]
		if h == nil {
			h = []StageHistoryEntry{}
		}
		cur := v.Stages
		if cur == nil {
			cur = []string{}
		}
		c.Stages = append(c.Stages, VersionStages{Version: v.Version, Current: cur, History: h})
	}
	return c
}

func deltas(values []*float64) []*float64 {
	out := make([]*float64, len(values))
	if len(values) == 0 || values[0] == nil {
		return out
	}
	for i, v := range values {
		if v != nil {
			d := *v - *values[0]
			out[i] = &d
		}
	}
	return out
}

func compareValues(name string, vs []ModelVersion, get func(ModelVersion) (string, bool)) ValueComparison {
	vc := ValueComparison{Name: name, Same: true}
	for i, v := range vs {
		var val *string
		if x, ok := get(v); ok {
			val = &x
		}
		vc.Values = append(vc.Values, val)
		if i > 0 && !sameString(vc.Values[0], val) {
			vc.Same = false
		}
	}
	return vc
}

func sameString(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// FormatDelta renders a delta with its sign, for the CLI.
func FormatDelta(d *float64) string {
	if d == nil {
		return "-"
	}
	return fmt.Sprintf("%+.4g", *d)
}
