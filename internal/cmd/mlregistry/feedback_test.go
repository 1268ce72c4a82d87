package main

import (
	"context"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/receipt"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// feedBack signs receipts with the registry's own key (read from its
// database, as a second replica would) and sends one item per value.
func (f *fixture) feedBack(t *testing.T, version int64, values ...float64) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, f.db, sqlstore.Options{NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kr, err := receipt.Open(ctx, st, receipt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	route := map[int64]string{1: "stable", 2: "canary"}[version]
	var items []map[string]any
	for i, v := range values {
		rc := kr.Sign(registry.Receipt{Endpoint: "churn", Route: route, Model: "churn", Version: version,
			RequestID: "req-" + route + "-" + strings.Repeat("x", i+1)})
		items = append(items, map[string]any{"receipt": rc, "metrics": map[string]any{"correct": v}})
	}
	if st, out := do(t, "POST", f.srv.url+"/api/v1/endpoints/churn/feedback", f.admin, map[string]any{"items": items}); st != 200 || out["accepted"] != float64(len(values)) {
		t.Fatalf("feedback: %d %v", st, out)
	}
}

// TestLiveMetricsInShowAndCompare: versions show, endpoints show and
// versions compare print the live metrics feedback gave each version.
func TestLiveMetricsInShowAndCompare(t *testing.T) {
	f := newFixture(t)
	f.feedBack(t, 1, 1, 0, 1, 1)
	f.feedBack(t, 2, 1, 1)

	out := f.ok(t, "versions", "churn", "1")
	if !strings.Contains(out, "Live metrics (feedback on predictions of the last 1h):") {
		t.Fatalf("versions churn 1 lacks live metrics:\n%s", out)
	}
	live := rows(t, out[strings.Index(out, "  METRIC"):], "MEAN", "COUNT", "95% INTERVAL")
	if f := strings.Fields(live[1]); len(f) != 4 || f[0] != "correct" || f[1] != "0.75" || f[2] != "4" {
		t.Errorf("version 1 live row %q", live[1])
	}
	if out := f.ok(t, "versions", "churn", "3"); !strings.Contains(out, "Live metrics (feedback on predictions of the last 1h): no feedback") {
		t.Errorf("version 3 without feedback:\n%s", out)
	}

	out = f.ok(t, "endpoints", "show", "churn")
	for _, want := range []string{"Live metrics of version 1 (last 1h):", "Live metrics of version 2 (last 1h):"} {
		if !strings.Contains(out, want) {
			t.Errorf("endpoints show churn lacks %q:\n%s", want, out)
		}
	}

	out = f.ok(t, "versions", "compare", "churn", "1", "2")
	for _, want := range []string{"V1 (BASE)", "0.81", "0.93 (+0.12)", "0.75 (n=4, 95%", "1 (n=2", "+0.25", "run_id *", "run-1", "run-2", "holds now"} {
		if !strings.Contains(out, want) {
			t.Errorf("versions compare lacks %q:\n%s", want, out)
		}
	}
	cmp := decodeJSON[registry.Comparison](t, f.ok(t, "versions", "compare", "churn", "1", "2", "-o", "json"))
	if len(cmp.LiveMetrics) != 1 || cmp.LiveMetrics[0].Values[0].Count != 4 || cmp.LiveMetrics[0].Values[1].Count != 2 {
		t.Errorf("compare JSON live metrics: %+v", cmp.LiveMetrics)
	}
	if r := f.run(t, "versions", "compare", "churn", "1"); r.code == 0 || !strings.Contains(r.stderr, "2 to 10") {
		t.Errorf("compare of one version: exit %d, %s", r.code, r.stderr)
	}
}
