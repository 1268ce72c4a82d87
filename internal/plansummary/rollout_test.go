package plansummary

import (
	"reflect"
	"testing"
)

// TestPlanRollout: the steps an update starts are the registry's
// RolloutWeights from the weights in force (the running rollout's when one
// runs) to the configured routes, one row per step; an update that moves
// no traffic starts none.
func TestPlanRollout(t *testing.T) {
	route := func(name string, version, weight int64) routeVals {
		return routeVals{Name: name, Version: &version, Weight: &weight}
	}
	spec := &rolloutVals{Steps: []int64{25, 50, 100}, Bake: ptr("1m")}
	progressing := "progressing"
	cases := []struct {
		name          string
		before, after []routeVals
		status        *rolloutStatusVals
		columns       []string
		rows          [][]int
	}{
		{"weights", []routeVals{route("stable", 1, 90), route("canary", 2, 10)}, []routeVals{route("stable", 1, 50), route("canary", 2, 50)}, nil,
			[]string{"stable", "canary"}, [][]int{{90, 10}, {80, 20}, {70, 30}, {50, 50}}},
		{"new version", []routeVals{route("stable", 1, 100)}, []routeVals{route("stable", 2, 100)}, nil,
			[]string{"stable", "stable@v1"}, [][]int{{0, 100}, {25, 75}, {50, 50}, {100, -1}}},
		{"from a running rollout", []routeVals{route("stable", 2, 100)}, []routeVals{route("stable", 1, 100)},
			&rolloutStatusVals{State: &progressing, Step: ptr(int64(1)), Percent: ptr(int64(25)), Weights: map[string]float64{"stable": 25, "stable@v1": 75}},
			// v1 keeps the share the running rollout had not moved yet.
			[]string{"stable", "stable@v2"}, [][]int{{75, 25}, {81, 19}, {88, 12}, {100, -1}}},
	}
	for _, c := range cases {
		before := &endpointVals{Name: "churn", Routes: c.before, RolloutStatus: c.status}
		after := &endpointVals{Name: "churn", Routes: c.after}
		p := planRollout(before, after, spec, standing("mlregistry_endpoint.churn", "churn", c.status), nil, nil)
		if p == nil {
			t.Errorf("%s: no rollout planned", c.name)
			continue
		}
		var cols []string
		for _, col := range p.Columns {
			cols = append(cols, col.Name)
		}
		var rows [][]int
		for _, r := range p.Rows {
			rows = append(rows, r.Weights)
		}
		if !reflect.DeepEqual(cols, c.columns) || !reflect.DeepEqual(rows, c.rows) {
			t.Errorf("%s: columns %v rows %v, want %v %v", c.name, cols, rows, c.columns, c.rows)
		}
	}
	same := []routeVals{route("stable", 1, 90), route("canary", 2, 10)}
	if p := planRollout(&endpointVals{Routes: same}, &endpointVals{Routes: same}, spec, nil, nil, nil); p != nil {
		t.Errorf("an update that moves no traffic plans a rollout: %+v", p)
	}
}
