package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

func call(t *testing.T, method, url, token string, body any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func mustStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, b)
	}
}

// upstream answers with its own name so the test sees which route served.
func upstream(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// seedEndpoint creates model m, versions 1 and 2 and endpoint "ep" sending
// all traffic to route "blue" (version 1).
func seedEndpoint(t *testing.T, r *apptest.Registry, blue, green string) {
	t.Helper()
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/models", r.AdminToken, map[string]any{"name": "m"}), http.StatusCreated)
	for i := 1; i <= 2; i++ {
		mustStatus(t, call(t, "POST", r.URL+"/api/v1/models/m/versions", r.AdminToken, map[string]any{
			"source": fmt.Sprintf("s3://b/m/%d", i), "checksum": "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i), 32), "format": "onnx",
		}), http.StatusCreated)
	}
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
		"name": "ep", "model": "m",
		"routes": []map[string]any{
			{"name": "blue", "version": 1, "upstream_url": blue, "weight": 100},
			{"name": "green", "version": 2, "upstream_url": green, "weight": 0},
		},
	}), http.StatusCreated)
}

func shiftToGreen(t *testing.T, r *apptest.Registry, blue, green string) {
	t.Helper()
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{
		"routes": []map[string]any{
			{"name": "blue", "version": 1, "upstream_url": blue, "weight": 0},
			{"name": "green", "version": 2, "upstream_url": green, "weight": 100},
		},
	}), http.StatusOK)
}

func servedBy(t *testing.T, r *apptest.Registry, token string) string {
	t.Helper()
	resp := call(t, "GET", r.URL+"/serve/ep/predict", token, nil)
	mustStatus(t, resp, http.StatusOK)
	body, _ := io.ReadAll(resp.Body)
	if want := resp.Header.Get("X-Route") + " /predict"; string(body) != want {
		t.Fatalf("body %q, want %q (X-Route and upstream disagree)", body, want)
	}
	return resp.Header.Get("X-Route")
}

// TestEndpointChangeAppliesAtOnce: on the replica that took the write, the
// very next request follows the new weights (no polling involved: the
// poll interval is set far beyond the test's duration).
func TestEndpointChangeAppliesAtOnce(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.GatewayPollInterval = time.Hour }))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, r, blue, green)
	if got := servedBy(t, r, r.AdminToken); got != "blue" {
		t.Fatalf("before the shift: served by %q, want blue", got)
	}
	shiftToGreen(t, r, blue, green)
	if got := servedBy(t, r, r.AdminToken); got != "green" {
		t.Fatalf("first request after the shift: served by %q, want green", got)
	}
}

// TestEndpointChangeReachesOtherReplicas: two replicas share one
// PostgreSQL database; a change written through replica A is served by
// replica B within 1 s (B polls with the default interval).
func TestEndpointChangeReachesOtherReplicas(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	defaultPoll := func(c *app.Config) { c.GatewayPollInterval = 0 }
	a := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	b := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, a, blue, green)

	// B learns about the new endpoint by polling too.
	deadline := time.Now().Add(time.Second)
	for {
		resp := call(t, "GET", b.URL+"/serve/ep/predict", b.AdminToken, nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B did not serve the new endpoint within 1s (status %d)", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by the deadline
	}

	shiftToGreen(t, a, blue, green)
	start := time.Now()
	for servedBy(t, b, b.AdminToken) != "green" {
		if time.Since(start) > time.Second {
			t.Fatalf("replica B still routes to blue %s after the change", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("replica B followed the change after %s", time.Since(start).Round(time.Millisecond))
}

// routeOf asks r's gateway which route and version serve ep now.
func routeOf(t *testing.T, c *http.Client, r *apptest.Registry) (route, version string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.URL+"/serve/ep/predict", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+r.AdminToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /serve/ep/predict on %s: status %d", r.URL, resp.StatusCode)
	}
	return resp.Header.Get("X-Route"), resp.Header.Get("X-Model-Version")
}

// writeLoad makes unrelated writes through r (a model, then versions of
// it, over and over) until ctx ends, and returns how many succeeded. It
// calls warm after the first.
func writeLoad(ctx context.Context, r *apptest.Registry, worker, round int, warm func()) (int, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	post := func(path string, body any) error {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		req, err := http.NewRequest(http.MethodPost, r.URL+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+r.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST %s: status %d: %s", path, resp.StatusCode, msg)
		}
		return nil
	}
	n := 0
	for i := 0; ctx.Err() == nil; i++ {
		model := fmt.Sprintf("load-%d-%d-%d", worker, round, i/4)
		var err error
		if i%4 == 0 {
			err = post("/api/v1/models", map[string]any{"name": model})
		} else {
			sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", model, i)))
			err = post("/api/v1/models/"+model+"/versions", map[string]any{
				"source": "s3://load/" + model, "checksum": "sha256:" + hex.EncodeToString(sum[:]), "format": "onnx",
			})
		}
		if err != nil {
			return n, err
		}
		if n++; n == 1 {
			warm()
		}
	}
	return n, nil
}

// TestEndpointChangesReachBothReplicasUnderLoad: two replicas on one
// PostgreSQL database; while 8 writers hammer replica A with unrelated
// writes, replica B changes the endpoint (weights flipped, a route's
// version changed). Every change must be routed by both replicas within
// 1 s, 50 times in a row. The writers stop once the change is committed,
// so a replica that missed it cannot catch up on the next unrelated write.
func TestEndpointChangesReachBothReplicasUnderLoad(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	defaultPoll := func(c *app.Config) { c.GatewayPollInterval = 0 }
	a := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	b := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, b, blue, green)
	mustStatus(t, call(t, "POST", b.URL+"/api/v1/models/m/versions", b.AdminToken, map[string]any{
		"source": "s3://b/m/3", "checksum": "sha256:" + strings.Repeat("03", 32), "format": "onnx",
	}), http.StatusCreated)
	c := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)

	type state struct {
		route        string
		greenVersion int
	}
	want := func(s state) [2]string {
		if s.route == "blue" {
			return [2]string{"blue", "1"}
		}
		return [2]string{"green", fmt.Sprint(s.greenVersion)}
	}
	// Each state routes differently from the one before it: a weight
	// flip, a version change, both at once.
	cycle := []state{{"green", 2}, {"green", 3}, {"blue", 3}}

	// A learns about the endpoint by polling.
	deadline := time.Now().Add(time.Second)
	for {
		resp := call(t, "GET", a.URL+"/serve/ep/predict", a.AdminToken, nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica A did not serve the new endpoint within 1s (status %d)", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by the deadline
	}

	const rounds, workers = 50, 8
	var took [2][]time.Duration
	totalWrites := 0
	for round := range rounds {
		s := cycle[round%len(cycle)]
		blueWeight, greenWeight := 100, 0
		if s.route == "green" {
			blueWeight, greenWeight = 0, 100
		}

		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var mu sync.Mutex
		started := make(chan struct{}, workers)
		writes, errs := 0, []error{}
		for w := range workers {
			wg.Go(func() {
				var once sync.Once
				warm := func() { once.Do(func() { started <- struct{}{} }) }
				defer warm() // also when the first write fails
				n, err := writeLoad(ctx, a, w, round, warm)
				mu.Lock()
				defer mu.Unlock()
				writes += n
				if err != nil && ctx.Err() == nil {
					errs = append(errs, err)
				}
			})
		}
		for range workers { // every writer is past its first write and busy
			<-started
		}
		mustStatus(t, call(t, "PATCH", b.URL+"/api/v1/endpoints/ep", b.AdminToken, map[string]any{
			"routes": []map[string]any{
				{"name": "blue", "version": 1, "upstream_url": blue, "weight": blueWeight},
				{"name": "green", "version": s.greenVersion, "upstream_url": green, "weight": greenWeight},
			},
		}), http.StatusOK)
		changed := time.Now()
		stop()
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: unrelated writes failed: %v", round, errs)
		}
		totalWrites += writes

		pending := map[int]*apptest.Registry{0: a, 1: b}
		for len(pending) > 0 {
			for i, r := range pending {
				route, version := routeOf(t, c, r)
				if [2]string{route, version} == want(s) {
					took[i] = append(took[i], time.Since(changed))
					delete(pending, i)
				}
			}
			if len(pending) > 0 && time.Since(changed) > time.Second {
				t.Fatalf("round %d: replicas %v still route the previous state %s after the change to %v",
					round, slices.Collect(maps.Keys(pending)), time.Since(changed), want(s))
			}
		}
	}
	for i, name := range []string{"A (other replica)", "B (writer)"} {
		d := slices.Clone(took[i])
		slices.Sort(d)
		t.Logf("replica %s converged: median %s, p90 %s, max %s over %d rounds", name,
			d[len(d)/2].Round(time.Millisecond), d[len(d)*9/10].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond), len(d))
	}
	t.Logf("%d unrelated writes on replica A during the changes", totalWrites)
}
