package registry

import (
	"reflect"
	"testing"
)

func TestDrainFlagged(t *testing.T) {
	r := func(name string, version int64, weight int) Route {
		return Route{Name: name, Version: version, UpstreamURL: "http://" + name, Weight: weight}
	}
	for _, c := range []struct {
		name    string
		in      FlagDrain
		changed bool
		weights []int
		msg     string
	}{
		{
			name:    "canary flagged: its weight goes to stable",
			in:      FlagDrain{Routes: []Route{r("stable", 1, 90), r("canary", 2, 10)}, Version: 2, FlagReason: "bias"},
			changed: true, weights: []int{100, 0},
			msg: `version 2 flagged (bias): route "canary" lost weight 10, moved to route "stable"`,
		},
		{
			name:    "no weight on the flagged version: nothing changes",
			in:      FlagDrain{Routes: []Route{r("stable", 1, 100), r("canary", 2, 0)}, Version: 2},
			changed: false, weights: []int{100, 0},
		},
		{
			name:    "a version the endpoint does not route to: nothing changes",
			in:      FlagDrain{Routes: []Route{r("stable", 1, 100)}, Version: 7},
			changed: false, weights: []int{100},
		},
		{
			name:    "the heaviest unflagged route takes it, the first of equals",
			in:      FlagDrain{Routes: []Route{r("a", 1, 20), r("b", 2, 40), r("c", 3, 40)}, Version: 1},
			changed: true, weights: []int{0, 60, 40},
			msg: `version 1 flagged: route "a" lost weight 20, moved to route "b"`,
		},
		{
			name:    "other flagged versions never take traffic",
			in:      FlagDrain{Routes: []Route{r("a", 1, 50), r("b", 2, 40), r("c", 3, 10)}, Version: 1, Flagged: map[int64]bool{2: true}},
			changed: true, weights: []int{0, 40, 60},
			msg: `version 1 flagged: route "a" lost weight 50, moved to route "c"`,
		},
		{
			name:    "several routes to the flagged version",
			in:      FlagDrain{Routes: []Route{r("a", 1, 30), r("b", 1, 30), r("c", 2, 40)}, Version: 1},
			changed: true, weights: []int{0, 0, 100},
			msg: `version 1 flagged: routes "a", "b" lost weight 60, moved to route "c"`,
		},
		{
			name:    "an idle route may take traffic",
			in:      FlagDrain{Routes: []Route{r("a", 1, 100), r("spare", 2, 0)}, Version: 1},
			changed: true, weights: []int{0, 100},
			msg: `version 1 flagged: route "a" lost weight 100, moved to route "spare"`,
		},
		{
			name:    "an idle route blocked by the stage's policy does not",
			in:      FlagDrain{Routes: []Route{r("a", 1, 100), r("spare", 2, 0), r("vetted", 3, 0)}, Version: 1, IdleBlocked: map[int64]bool{2: true}},
			changed: true, weights: []int{0, 0, 100},
			msg: `version 1 flagged: route "a" lost weight 100, moved to route "vetted"`,
		},
		{
			name:    "a blocked version with weight already serves: it takes the rest",
			in:      FlagDrain{Routes: []Route{r("a", 1, 60), r("b", 2, 40)}, Version: 1, IdleBlocked: map[int64]bool{2: true}},
			changed: true, weights: []int{0, 100},
			msg: `version 1 flagged: route "a" lost weight 60, moved to route "b"`,
		},
		{
			name:    "nothing left: every weight 0",
			in:      FlagDrain{Routes: []Route{r("a", 1, 100), r("b", 2, 0)}, Version: 1, Flagged: map[int64]bool{2: true}},
			changed: true, weights: []int{0, 0},
			msg: `version 1 flagged: route "a" lost weight 100; no route to an unflagged version is left, so the endpoint answers 503 until its routes are set`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := append([]Route(nil), c.in.Routes...)
			got := DrainFlagged(c.in)
			if !reflect.DeepEqual(c.in.Routes, before) {
				t.Errorf("input routes modified: %+v", c.in.Routes)
			}
			if got.Changed != c.changed {
				t.Errorf("changed %v, want %v", got.Changed, c.changed)
			}
			var weights []int
			for i, rt := range got.Routes {
				weights = append(weights, rt.Weight)
				if rt.Name != before[i].Name || rt.Version != before[i].Version || rt.UpstreamURL != before[i].UpstreamURL {
					t.Errorf("route %d changed beyond its weight: %+v", i, rt)
				}
			}
			if !reflect.DeepEqual(weights, c.weights) {
				t.Errorf("weights %v, want %v", weights, c.weights)
			}
			if got.Message != c.msg {
				t.Errorf("message\n got %q\nwant %q", got.Message, c.msg)
			}
		})
	}
}

// A route matched by header serves its version whatever its weight, so
// flagging that version must take the match away too: matched requests
// then go by weight like the others.
func TestDrainFlaggedMatchedRoute(t *testing.T) {
	canary := Route{Name: "canary", Version: 2, UpstreamURL: "http://canary", Weight: 0,
		Match: &RouteMatch{Header: "X-Canary", Value: "always"}}
	stable := Route{Name: "stable", Version: 1, UpstreamURL: "http://stable", Weight: 100}
	got := DrainFlagged(FlagDrain{Routes: []Route{stable, canary}, Version: 2, FlagReason: "bias"})
	if !got.Changed {
		t.Fatal("a matched weight-0 route to the flagged version left the endpoint unchanged")
	}
	if got.Routes[1].Match != nil || got.Routes[1].Weight != 0 || got.Routes[0].Weight != 100 {
		t.Errorf("routes after the drain: %+v", got.Routes)
	}
	if want := `version 2 flagged (bias): route "canary" lost its header match`; got.Message != want {
		t.Errorf("message %q, want %q", got.Message, want)
	}
	if canary.Match == nil {
		t.Error("the drain modified its input")
	}

	canary.Weight, stable.Weight = 10, 90
	got = DrainFlagged(FlagDrain{Routes: []Route{stable, canary}, Version: 2})
	if got.Routes[1].Match != nil || got.Routes[0].Weight != 100 {
		t.Errorf("routes after the drain: %+v", got.Routes)
	}
	if want := `version 2 flagged: route "canary" lost weight 10 and its header match, moved to route "stable"`; got.Message != want {
		t.Errorf("message %q, want %q", got.Message, want)
	}
}

// A shadow route gets a copy of real requests: flagging its version is an
// emergency stop for it too, so the drain removes the shadow (a shadow's
// weight is always 0, and a shadow cannot be kept without a share).
func TestDrainFlaggedShadowRoute(t *testing.T) {
	stable := Route{Name: "stable", Version: 1, UpstreamURL: "http://stable", Weight: 100}
	shadow := Route{Name: "shadow", Version: 2, UpstreamURL: "http://shadow", Shadow: true, Share: 0.5}
	got := DrainFlagged(FlagDrain{Routes: []Route{stable, shadow}, Version: 2, FlagReason: "leaks"})
	if !got.Changed {
		t.Fatal("a shadow route to the flagged version left the endpoint unchanged")
	}
	if len(got.Routes) != 1 || got.Routes[0].Name != "stable" || got.Routes[0].Weight != 100 {
		t.Errorf("routes after the drain: %+v", got.Routes)
	}
	if want := `version 2 flagged (leaks): shadow route "shadow" removed`; got.Message != want {
		t.Errorf("message %q, want %q", got.Message, want)
	}

	canary := Route{Name: "canary", Version: 2, UpstreamURL: "http://canary", Weight: 10}
	stable.Weight = 90
	got = DrainFlagged(FlagDrain{Routes: []Route{stable, canary, shadow}, Version: 2})
	if len(got.Routes) != 2 || got.Routes[0].Weight != 100 || got.Routes[1].Weight != 0 {
		t.Errorf("routes after the drain: %+v", got.Routes)
	}
	if want := `version 2 flagged: route "canary" lost weight 10, moved to route "stable"; shadow route "shadow" removed`; got.Message != want {
		t.Errorf("message %q, want %q", got.Message, want)
	}
}
