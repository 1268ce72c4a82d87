package registry

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func rt(name string, version int64, weight int) Route {
	return Route{Name: name, Version: version, UpstreamURL: fmt.Sprintf("http://10.0.0.%d:8080", version), Weight: weight}
}

func weightsOf(rs []Route) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s/v%d=%d", r.Name, r.Version, r.Weight)
		if r.Shadow {
			b.WriteString("(shadow)")
		}
		if r.Match != nil {
			b.WriteString("(match)")
		}
	}
	return b.String()
}

func TestRolloutWeights(t *testing.T) {
	match := &RouteMatch{Header: "X-Canary", Value: "always"}
	withMatch := func(r Route) Route { r.Match = match; return r }
	shadow := Route{Name: "shadow", Version: 3, UpstreamURL: "http://10.0.0.3:8080", Shadow: true, Share: 0.5}
	tests := []struct {
		name    string
		from    []Route
		to      []Route
		percent int
		want    string
	}{
		{"weights only, step 1", []Route{rt("stable", 1, 90), rt("canary", 2, 10)}, []Route{rt("stable", 1, 50), rt("canary", 2, 50)}, 10,
			"stable/v1=86 canary/v2=14"},
		{"weights only, step 50", []Route{rt("stable", 1, 90), rt("canary", 2, 10)}, []Route{rt("stable", 1, 50), rt("canary", 2, 50)}, 50,
			"stable/v1=70 canary/v2=30"},
		{"weights only, 100", []Route{rt("stable", 1, 90), rt("canary", 2, 10)}, []Route{rt("stable", 1, 50), rt("canary", 2, 50)}, 100,
			"stable/v1=50 canary/v2=50"},
		{"version change keeps the old share under name@v", []Route{rt("main", 1, 100)}, []Route{rt("main", 2, 100)}, 25,
			"main/v2=25 main@v1/v1=75"},
		{"version change at 100 drops the old share", []Route{rt("main", 1, 100)}, []Route{rt("main", 2, 100)}, 100,
			"main/v2=100"},
		{"removed route keeps its own name", []Route{rt("a", 1, 50), rt("b", 2, 50)}, []Route{rt("a", 1, 100)}, 10,
			"a/v1=55 b/v2=45"},
		{"new route from nothing", []Route{rt("a", 1, 100)}, []Route{rt("a", 1, 80), rt("b", 2, 20)}, 10,
			"a/v1=98 b/v2=2"},
		{"to-route at weight 0 stays", []Route{rt("a", 1, 100)}, []Route{rt("a", 1, 100), withMatch(rt("t", 2, 0))}, 50,
			"a/v1=100 t/v2=0(match)"},
		{"largest remainder: thirds", []Route{rt("a", 1, 100)}, []Route{rt("a", 1, 34), rt("b", 2, 33), rt("c", 3, 33)}, 50,
			"a/v1=67 b/v2=17 c/v3=16"},
		{"old share carries no match", []Route{withMatch(rt("main", 1, 100))}, []Route{rt("main", 2, 100)}, 50,
			"main/v2=50 main@v1/v1=50"},
		{"superseding rollout: name@v takes its identity back", []Route{rt("main", 2, 40), rt("main@v1", 1, 60)}, []Route{rt("main", 1, 100)}, 50,
			"main/v1=80 main@v2/v2=20"},
		{"old share of a route gone from to keeps name@v", []Route{rt("x", 2, 40), rt("x@v1", 1, 60)}, []Route{rt("y", 3, 100)}, 50,
			"y/v3=50 x/v2=20 x@v1/v1=30"},
		{"shadow of to kept in place, of from dropped", []Route{rt("a", 1, 100), {Name: "old", Version: 9, Shadow: true, Share: 1}}, []Route{shadow, rt("a", 2, 100)}, 10,
			"shadow/v3=0(shadow) a/v2=10 a@v1/v1=90"},
		{"route turned shadow keeps its share renamed", []Route{rt("a", 1, 90), rt("shadow", 3, 10)}, []Route{rt("a", 1, 100), shadow}, 50,
			"a/v1=95 shadow/v3=0(shadow) shadow@v3/v3=5"},
		{"percent 0 is from", []Route{rt("main", 1, 100)}, []Route{rt("main", 2, 100)}, 0,
			"main/v2=0 main@v1/v1=100"},
		{"from without weight: to at once", []Route{rt("a", 1, 0)}, []Route{rt("a", 2, 100)}, 10,
			"a/v2=100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RolloutWeights(tt.from, tt.to, tt.percent)
			if s := weightsOf(got); s != tt.want {
				t.Errorf("RolloutWeights(%s -> %s, %d%%)\n got %s\nwant %s", weightsOf(tt.from), weightsOf(tt.to), tt.percent, s, tt.want)
			}
		})
	}
}

func TestRolloutWeightsUpstreamFromTarget(t *testing.T) {
	from := []Route{rt("a", 1, 100)}
	to := []Route{{Name: "a", Version: 1, UpstreamURL: "http://10.9.9.9:8080", Weight: 50}, rt("b", 2, 50)}
	got := RolloutWeights(from, to, 10)
	if got[0].UpstreamURL != "http://10.9.9.9:8080" {
		t.Fatalf("route a serves %s, want the configured upstream", got[0].UpstreamURL)
	}
}

// FuzzRolloutWeights checks the invariants on any from and to: weights sum
// to 100, each in force between its from and its to weight, names unique,
// and at 100 percent the configured routes exactly.
func FuzzRolloutWeights(f *testing.F) {
	f.Add([]byte{3, 90, 10, 0, 2, 50, 50}, uint8(10))
	f.Add([]byte{1, 100, 0, 1, 100}, uint8(50))
	f.Add([]byte{4, 25, 25, 25, 25, 3, 1, 1, 98}, uint8(99))
	f.Fuzz(func(t *testing.T, data []byte, p uint8) {
		percent := int(p) % 101
		from, rest := fuzzRoutes(data, "f")
		to, _ := fuzzRoutes(rest, "t")
		if len(from) == 0 || len(to) == 0 {
			return
		}
		got := RolloutWeights(from, to, percent)
		sum := 0
		names := map[string]bool{}
		for _, r := range got {
			if names[r.Name] {
				t.Fatalf("name %q twice in %s", r.Name, weightsOf(got))
			}
			names[r.Name] = true
			sum += r.Weight
			wf, wt := 0, 0
			for _, x := range from {
				if keyOf(x) == keyOf(r) {
					wf += x.Weight
				}
			}
			for _, x := range to {
				if keyOf(x) == keyOf(r) && x.Name == r.Name {
					wt = x.Weight
				}
			}
			if lo, hi := min(wf, wt), max(wf, wt); r.Weight < lo || r.Weight > hi {
				t.Fatalf("%s at %d not within [%d, %d]: %s -> %s at %d%% gave %s", r.Name, r.Weight, lo, hi, weightsOf(from), weightsOf(to), percent, weightsOf(got))
			}
		}
		if sum != 100 {
			t.Fatalf("weights sum to %d: %s -> %s at %d%% gave %s", sum, weightsOf(from), weightsOf(to), percent, weightsOf(got))
		}
		if percent == 100 && !reflect.DeepEqual(got, to) {
			t.Fatalf("at 100%%: got %s, want %s", weightsOf(got), weightsOf(to))
		}
	})
}

// fuzzRoutes reads a valid route list from data: a count n (1..6), then n
// weights (each taken modulo what is left; the last takes the rest) and
// n versions (1..3), names drawn from a small set so identities collide.
func fuzzRoutes(data []byte, prefix string) ([]Route, []byte) {
	if len(data) == 0 {
		return nil, nil
	}
	n := int(data[0])%6 + 1
	data = data[1:]
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	left := 100
	var rs []Route
	used := map[string]bool{}
	for i := 0; i < n; i++ {
		w := int(next()) % (left + 1)
		if i == n-1 {
			w = left
		}
		left -= w
		name := []string{"a", "b", "c", prefix + "x", prefix + "y", "d"}[(int(next())+i)%6]
		for used[name] {
			name += "z"
		}
		used[name] = true
		rs = append(rs, Route{Name: name, Version: int64(next()%3) + 1, UpstreamURL: "http://10.0.0.1:80", Weight: w})
	}
	return rs, data
}

func TestRoutesNeedRollout(t *testing.T) {
	base := []Route{rt("stable", 1, 90), rt("canary", 2, 10)}
	up := func(r Route, u string) Route { r.UpstreamURL = u; return r }
	tests := []struct {
		name string
		next []Route
		want bool
	}{
		{"same", []Route{rt("stable", 1, 90), rt("canary", 2, 10)}, false},
		{"reordered", []Route{rt("canary", 2, 10), rt("stable", 1, 90)}, false},
		{"upstream", []Route{up(rt("stable", 1, 90), "http://10.1.1.1:80"), rt("canary", 2, 10)}, false},
		{"match", []Route{rt("stable", 1, 90), {Name: "canary", Version: 2, UpstreamURL: "http://10.0.0.2:8080", Weight: 10, Match: &RouteMatch{Header: "X-A", Value: "b"}}}, false},
		{"shadow added", append([]Route{rt("stable", 1, 90), rt("canary", 2, 10)}, Route{Name: "s", Version: 3, Shadow: true, Share: 1}), false},
		{"weight", []Route{rt("stable", 1, 50), rt("canary", 2, 50)}, true},
		{"version", []Route{rt("stable", 1, 90), rt("canary", 3, 10)}, true},
		{"route gone", []Route{rt("stable", 1, 100)}, true},
		{"renamed", []Route{rt("stable", 1, 90), rt("canary2", 2, 10)}, true},
	}
	for _, tt := range tests {
		if got := RoutesNeedRollout(base, tt.next); got != tt.want {
			t.Errorf("%s: RoutesNeedRollout = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStartAndEndRollout(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	spec := RolloutSpec{Steps: []int{10, 50, 100}, Bake: "1m"}
	from := []Route{rt("main", 1, 100)}
	to := []Route{rt("main", 2, 100)}
	st := StartRollout(spec, from, to, &RolloutStatus{ID: 4, Step: 2}, 5, 7, now)
	if st.ID != 5 || st.Seq != 8 || st.Step != 1 || st.State != RolloutProgressing {
		t.Fatalf("started %+v", st)
	}
	if weightsOf(st.Routes) != "main/v2=10 main@v1/v1=90" {
		t.Fatalf("step 1 in force: %s", weightsOf(st.Routes))
	}
	if st.NextStepAt == nil || !st.NextStepAt.Equal(now.Add(time.Minute)) || !st.StepStarted.Equal(now) {
		t.Fatalf("bake: step started %v, next %v", st.StepStarted, st.NextStepAt)
	}
	if !strings.Contains(st.Message, "replacing rollout 4") {
		t.Fatalf("message %q does not name the superseded rollout", st.Message)
	}
	end := EndRollout(st, RolloutRolledBack, "gate failed", now.Add(time.Second))
	if weightsOf(end.Routes) != weightsOf(from) || end.NextStepAt != nil || end.EndedAt == nil || end.Seq != 9 {
		t.Fatalf("rolled back %+v", end)
	}
	if RolloutActive(&end) || !RolloutActive(&st) {
		t.Fatal("RolloutActive wrong")
	}
	e := Endpoint{Routes: to, Rollout: &EndpointRollout{RolloutSpec: spec, RolloutStatus: &st}}
	if weightsOf(e.RoutesInForce()) != weightsOf(st.Routes) {
		t.Fatal("in force while progressing must be the rollout's routes")
	}
	e.Rollout.RolloutStatus = &end
	if weightsOf(e.RoutesInForce()) != weightsOf(to) {
		t.Fatal("in force after the rollout ended must be the endpoint's routes")
	}
}

func TestRolloutOnUpdate(t *testing.T) {
	spec := &EndpointRollout{RolloutSpec: RolloutSpec{Steps: []int{50, 100}, Bake: "1m"}}
	running := &RolloutStatus{ID: 1, State: RolloutProgressing, Step: 1, StepPercents: []int{50, 100},
		From: []Route{rt("main", 1, 100)}, Routes: []Route{rt("main", 2, 50), rt("main@v1", 1, 50)}}
	ended := &RolloutStatus{ID: 1, State: RolloutCompleted}
	ep := func(routes []Route, r *EndpointRollout, st *RolloutStatus) *Endpoint {
		e := &Endpoint{Routes: routes}
		if r != nil {
			cp := *r
			cp.RolloutStatus = st
			e.Rollout = &cp
		}
		return e
	}
	v1, v2, v3 := []Route{rt("main", 1, 100)}, []Route{rt("main", 2, 100)}, []Route{rt("main", 3, 100)}
	moved := []Route{{Name: "main", Version: 2, UpstreamURL: "http://10.9.9.9:80", Weight: 100}}
	drained := []Route{rt("main", 1, 0)}
	tests := []struct {
		name      string
		before    *Endpoint
		after     *Endpoint
		routesSet bool
		want      RolloutUpdate
	}{
		{"no configuration: at once", ep(v1, nil, nil), ep(v2, nil, nil), true, RolloutUnchanged},
		{"version change starts", ep(v1, spec, nil), ep(v2, spec, nil), true, RolloutStart},
		{"version change after an ended rollout starts", ep(v2, spec, ended), ep(v3, spec, ended), true, RolloutStart},
		{"configuration added with the change starts", ep(v1, nil, nil), ep(v2, spec, nil), true, RolloutStart},
		{"change while running starts a new one", ep(v2, spec, running), ep(v3, spec, running), true, RolloutStart},
		{"upstream change while running refreshes", ep(v2, spec, running), ep(moved, spec, running), true, RolloutRefresh},
		{"same routes while running refreshes", ep(v2, spec, running), ep(v2, spec, running), true, RolloutRefresh},
		{"no routes set while running", ep(v2, spec, running), ep(v2, spec, running), false, RolloutUnchanged},
		{"configuration removed while running completes", ep(v2, spec, running), ep(v2, nil, nil), false, RolloutCompleteNow},
		{"configuration removed with a change completes", ep(v2, spec, running), ep(v3, nil, nil), true, RolloutCompleteNow},
		{"configuration removed after it ended", ep(v2, spec, ended), ep(v2, nil, nil), false, RolloutUnchanged},
		{"nothing served: at once", ep(drained, spec, nil), ep(v2, spec, nil), true, RolloutUnchanged},
		{"upstream change without a rollout", ep(v2, spec, nil), ep(moved, spec, nil), true, RolloutUnchanged},
	}
	for _, tt := range tests {
		if got := RolloutOnUpdate(tt.before, tt.after, tt.routesSet); got != tt.want {
			t.Errorf("%s: RolloutOnUpdate = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestRefreshRollout(t *testing.T) {
	st := RolloutStatus{ID: 1, State: RolloutProgressing, Step: 1, StepPercents: []int{50, 100}, Seq: 4,
		From: []Route{rt("main", 1, 100)}, Routes: []Route{rt("main", 2, 50), rt("main@v1", 1, 50)}}
	same := RefreshRollout(st, []Route{rt("main", 2, 100)})
	if same.Seq != 4 || weightsOf(same.Routes) != weightsOf(st.Routes) {
		t.Errorf("an unchanged target moved the status: %+v", same)
	}
	moved := RefreshRollout(st, []Route{{Name: "main", Version: 2, UpstreamURL: "http://10.9.9.9:80", Weight: 100, Match: &RouteMatch{Header: "X-A", Value: "b"}}})
	if moved.Seq != 5 || moved.Routes[0].UpstreamURL != "http://10.9.9.9:80" || moved.Routes[0].Match == nil || weightsOf(moved.Routes) != "main/v2=50(match) main@v1/v1=50" {
		t.Errorf("refreshed: seq %d, %s", moved.Seq, weightsOf(moved.Routes))
	}
}
