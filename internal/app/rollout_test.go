package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/rollout"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/rollout/promtest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// The rollout tests drive real registries (SQLite files, PostgreSQL)
// with real upstreams. Time is the registry's injected clock: the test
// moves it past a bake, and the driver, ticking every few milliseconds,
// takes the step. Nothing here sleeps to wait for a condition.

const bake = time.Minute

// rolloutConfig is the registry configuration of the rollout tests: a
// driver that ticks often, gateways that flush observations and poll
// often, and a clock that runs.
func rolloutConfig(c *app.Config) {
	c.RolloutTick = 10 * time.Millisecond
	c.GatewayPollInterval = 50 * time.Millisecond
	c.ObservationFlushInterval = 20 * time.Millisecond
	c.Now = running(c.Now)
}

// running is a clock that runs with real time from base's reading and
// jumps when base is moved: the test moves time past bakes, and the
// gateway, which times upstreams with the same clock, measures their real
// latency.
func running(base func() time.Time) func() time.Time {
	start := time.Now()
	return func() time.Time { return base().Add(time.Since(start)) }
}

// flushed waits until the gateways' observations of the endpoint's
// current step, as the driver reads them, hold want requests on route.
func flushed(t *testing.T, r *apptest.Registry, route string, want int) {
	t.Helper()
	st := status(getEndpoint(t, r))
	deadline := time.Now().Add(10 * time.Second)
	for {
		obs, err := r.Store.RolloutObservations(t.Context(), "ep", st.ID, st.Step)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, o := range obs {
			if o.Route == route {
				n += o.Requests
			}
		}
		if n >= int64(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %d: observations of %s hold %d requests, want %d", st.Step, route, n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// model is an upstream that answers with its name; fail makes it answer
// 500, delay makes it slow.
type model struct {
	url   string
	fail  atomic.Bool
	delay atomic.Int64
	hits  atomic.Int64
}

func newModel(t *testing.T, name string) *model {
	m := &model{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		if d := time.Duration(m.delay.Load()); d > 0 {
			select {
			case <-time.After(d): // the model's own latency, what the gate measures
			case <-r.Context().Done():
				return
			}
		}
		if m.fail.Load() {
			http.Error(w, name+" crashed", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	m.url = srv.URL
	return m
}

// seedRollout creates model m with versions 1 and 2 and endpoint "ep"
// serving route "main" from v1, with rollout spec.
func seedRollout(t *testing.T, r *apptest.Registry, v1 *model, spec map[string]any) {
	t.Helper()
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/models", r.AdminToken, map[string]any{"name": "m"}), http.StatusCreated)
	for i := 1; i <= 2; i++ {
		mustStatus(t, call(t, "POST", r.URL+"/api/v1/models/m/versions", r.AdminToken, map[string]any{
			"source": fmt.Sprintf("s3://b/m/%d", i), "checksum": "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i), 32), "format": "onnx",
		}), http.StatusCreated)
	}
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
		"name": "ep", "model": "m",
		"routes":  []map[string]any{{"name": "main", "version": 1, "upstream_url": v1.url, "weight": 100}},
		"rollout": spec,
	}), http.StatusCreated)
}

// toV2 configures route "main" on version 2: it starts a rollout.
func toV2(t *testing.T, r *apptest.Registry, v2 *model) registry.Endpoint {
	t.Helper()
	resp := call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{
		"routes": []map[string]any{{"name": "main", "version": 2, "upstream_url": v2.url, "weight": 100}},
	})
	mustStatus(t, resp, http.StatusOK)
	var e registry.Endpoint
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if st := status(e); st == nil || st.State != registry.RolloutProgressing || st.Step != 1 {
		t.Fatalf("after the change: rollout %+v, want progressing at step 1", st)
	}
	return e
}

func status(e registry.Endpoint) *registry.RolloutStatus {
	if e.Rollout == nil {
		return nil
	}
	return e.Rollout.RolloutStatus
}

// waitRollout polls the endpoint on r until cond holds (10 s at most).
func waitRollout(t *testing.T, r *apptest.Registry, what string, cond func(*registry.RolloutStatus) bool) registry.Endpoint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e := getEndpoint(t, r)
		if st := status(e); st != nil && cond(st) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout never %s: %+v", what, status(e))
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for a condition
	}
}

func atStep(n int) func(*registry.RolloutStatus) bool {
	return func(st *registry.RolloutStatus) bool { return st.Step == n && st.State == registry.RolloutProgressing }
}

func inState(state string) func(*registry.RolloutStatus) bool {
	return func(st *registry.RolloutStatus) bool { return st.State == state }
}

// traffic sends n requests to ep through base and counts the answers by
// X-Route; every answer must come from the route it names.
func traffic(t *testing.T, base, token string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		req, _ := http.NewRequest("POST", base+"/serve/ep/predict", strings.NewReader(`{"x":1}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Route")+" v"+resp.Header.Get("X-Model-Version")]++
	}
	return seen
}

// rolloutEvents are the endpoint's rollout events, oldest first.
func rolloutEvents(t *testing.T, r *apptest.Registry) []registry.Event {
	t.Helper()
	resp := call(t, "GET", r.URL+"/api/v1/events?endpoint=ep&page_size=1000", r.AdminToken, nil)
	mustStatus(t, resp, http.StatusOK)
	var page struct {
		Items []registry.Event `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	var out []registry.Event
	for _, e := range page.Items {
		if strings.HasPrefix(e.Action, "endpoint.rollout_") {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b registry.Event) int { return int(a.ID - b.ID) })
	return out
}

func actions(evs []registry.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Action
	}
	return out
}

// TestRolloutTwoReplicasSQLite and TestRolloutTwoReplicasPostgres: two
// registries on one database elect one rollout leader between them; every
// rollout walks each step exactly once, and a step falling due is served
// by the other replica within 1 s (the default driver tick and gateway
// poll). When the leader stops, the other takes the rollouts over.
func TestRolloutTwoReplicasSQLite(t *testing.T) {
	testRolloutReplicas(t, "sqlite://"+filepath.Join(t.TempDir(), "registry.db"))
}

func TestRolloutTwoReplicasPostgres(t *testing.T) {
	testRolloutReplicas(t, storetest.PostgresDSN(t))
}

func testRolloutReplicas(t *testing.T, db string) {
	replica := func(now func() time.Time) *apptest.Registry {
		return apptest.Start(t, apptest.WithDB(db), apptest.WithConfig(func(c *app.Config) {
			if now != nil {
				c.Now = now
			}
			rolloutConfig(c)
			// The defaults: what the 1 s promise stands on.
			c.RolloutTick = 0
			c.GatewayPollInterval = 250 * time.Millisecond
			c.ObservationFlushInterval = 0
		}))
	}
	a := replica(nil)
	b := replica(a.Clock.Now)
	leader := func() (lead, other *apptest.Registry) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			la, lb := a.Main.RolloutLeader(), b.Main.RolloutLeader()
			switch {
			case la && lb:
				t.Fatal("both replicas lead the rollouts")
			case la:
				return a, b
			case lb:
				return b, a
			}
			if time.Now().After(deadline) {
				t.Fatal("no replica leads the rollouts")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	lead, other := leader()

	models := []*model{newModel(t, "v1"), newModel(t, "v2")}
	seedRollout(t, a, models[0], map[string]any{"steps": []int{50, 100}, "bake": "1m"})
	const rounds = 5
	var took []time.Duration
	for round := range rounds {
		// Back and forth between v1 and v2, changed on the replica that
		// does not lead.
		version := 2 - round%2
		mustStatus(t, call(t, "PATCH", other.URL+"/api/v1/endpoints/ep", other.AdminToken, map[string]any{
			"routes": []map[string]any{{"name": "main", "version": version, "upstream_url": models[version-1].url, "weight": 100}},
		}), http.StatusOK)
		served := fmt.Sprintf("main v%d", version)

		// The step to 100%: the other replica serves the new version alone
		// once it has it. The time counts from the moment the step fell
		// due: the leader's tick, its write and the other replica's poll
		// are all in it.
		due := time.Now()
		a.Clock.Advance(bake)
		var inForce time.Duration
		for run := 0; run < 20; {
			seen := traffic(t, other.URL, other.AdminToken, 1)
			switch {
			case seen[served] == 0:
				run = 0
			case run == 0:
				inForce = time.Since(due)
				run++
			default:
				run++
			}
			if time.Since(due) > 10*time.Second {
				t.Fatalf("round %d: the other replica never served step 2", round)
			}
		}
		waitRollout(t, lead, "reached step 2", atStep(2))
		took = append(took, inForce)
		a.Clock.Advance(bake)
		waitRollout(t, other, "completed", inState(registry.RolloutCompleted))
	}
	slices.Sort(took)
	t.Logf("step in force on the other replica after it fell due, %d rounds: median %s, max %s",
		rounds, took[rounds/2].Round(time.Millisecond), took[rounds-1].Round(time.Millisecond))
	if took[rounds-1] > time.Second {
		t.Errorf("a step was in force on the other replica %s after it fell due, want within 1s", took[rounds-1])
	}

	// Each step exactly once, whoever led.
	var want []string
	for range rounds {
		want = append(want, registry.ActionEndpointRolloutStarted, registry.ActionEndpointRolloutStep, registry.ActionEndpointRolloutCompleted)
	}
	if got := actions(rolloutEvents(t, a)); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// The leader stops: it releases the lease and the other one leads.
	if err := lead.Main.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !other.Main.RolloutLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the remaining replica never took the lease over")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRolloutPrometheusGate: a rollout gated by a PromQL query against a
// real Prometheus scraping the registry's /metrics. While v2 answers, the
// query finds no upstream error on it and the step advances; once v2
// fails and Prometheus has scraped the errors, the next bake's end rolls
// the rollout back, naming the gate and the value.
func TestRolloutPrometheusGate(t *testing.T) {
	metricsAddr := freeAddr(t)
	prom := promtest.Start(t, 250*time.Millisecond, metricsAddr)
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		rolloutConfig(c)
		c.MetricsListen = metricsAddr
		c.PrometheusURL = prom.URL
	}))
	v1, v2 := newModel(t, "v1"), newModel(t, "v2")
	seedRollout(t, r, v1, map[string]any{"steps": []int{25, 50, 100}, "bake": "1m", "prometheus": []map[string]any{{
		"query":      `sum(mlregistry_gateway_upstream_errors_total{endpoint="$endpoint",route="$route",version="$version"}) or vector(0)`,
		"comparison": "<", "threshold": 1,
	}}})
	toV2(t, r, v2)
	client, err := rollout.NewPrometheus(prom.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// scraped waits until Prometheus has scraped at least n of v2's
	// answers of class.
	scraped := func(q string, n float64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			v, err := client.Query(t.Context(), q)
			if err == nil && v >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("prometheus never saw %s >= %v: %v %v", q, n, v, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	seen := traffic(t, r.URL, r.AdminToken, 40)
	scraped(`sum(mlregistry_gateway_requests_total{endpoint="ep",route="main",version="2"})`, float64(seen["main v2"]))
	r.Clock.Advance(bake)
	e := waitRollout(t, r, "reached step 2", atStep(2))
	if g := e.Rollout.LastGate; g == nil || !g.Passed || !strings.Contains(g.Message, "prometheus[0] value 0 < 1") {
		t.Fatalf("step 2: last gate %+v", g)
	}

	v2.fail.Store(true)
	seen = traffic(t, r.URL, r.AdminToken, 20)
	scraped(`sum(mlregistry_gateway_upstream_errors_total{endpoint="ep",route="main",version="2"})`, float64(seen["main v2"]))
	if st := status(getEndpoint(t, r)); st.State != registry.RolloutProgressing {
		t.Fatalf("rolled back before the bake ended: %+v", st)
	}
	r.Clock.Advance(bake)
	e = waitRollout(t, r, "rolled back", inState(registry.RolloutRolledBack))
	want := fmt.Sprintf("rollout rolled back at step 2 (50%%): route main (v2): prometheus[0] value %d is not < 1", seen["main v2"])
	if st := status(e); st.Message != want {
		t.Fatalf("message\n got %q\nwant %q", st.Message, want)
	}
}

// freeAddr is a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRolloutGatewayProcessLeads: an 'mlregistry gateway' process runs a
// rollout driver too. With the registry stopped mid-rollout, the gateway
// takes the lease over and completes the rollout on its own, serving each
// step as it takes it.
func TestRolloutGatewayProcessLeads(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "registry.db")
	r := apptest.Start(t, apptest.WithDB(db), apptest.WithConfig(rolloutConfig))
	gw := app.New(app.Config{
		Listen: "127.0.0.1:0", DB: db, DataPlaneOnly: true, Now: running(r.Clock.Now),
		RolloutTick: 10 * time.Millisecond, GatewayPollInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gw.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })

	v1, v2 := newModel(t, "v1"), newModel(t, "v2")
	seedRollout(t, r, v1, map[string]any{"steps": []int{50, 100}, "bake": "1m"})
	toV2(t, r, v2)
	if err := r.Main.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !gw.RolloutLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the gateway never took the rollouts lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Clock.Advance(bake)
	for _, want := range []string{registry.RolloutProgressing, registry.RolloutCompleted} {
		for {
			e, err := gw.Store().GetEndpoint(ctx, "ep")
			if err != nil {
				t.Fatal(err)
			}
			if st := e.Rollout.RolloutStatus; st.State == want && (want != registry.RolloutProgressing || st.Step == 2) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the gateway never moved the rollout to %s: %+v", want, e.Rollout.RolloutStatus)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if seen := traffic(t, gw.URL(), r.AdminToken, 10); seen["main v2"] != 10 {
			t.Fatalf("gateway serves %v at %s, want v2 only", seen, want)
		}
		r.Clock.Advance(bake)
	}
}
