package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

func flagVersion(t *testing.T, r *apptest.Registry, version int, reason string) {
	t.Helper()
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/models/m/versions/"+strconv.Itoa(version), r.AdminToken,
		map[string]any{"flagged": true, "flag_reason": reason}), http.StatusOK)
}

func getEndpoint(t *testing.T, r *apptest.Registry) registry.Endpoint {
	t.Helper()
	resp := call(t, "GET", r.URL+"/api/v1/endpoints/ep", r.AdminToken, nil)
	mustStatus(t, resp, http.StatusOK)
	var e registry.Endpoint
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestFlagDrainsServingVersion: flagging the version behind all of an
// endpoint's traffic takes it off at once. The writer's own gateway
// applies it to the very next request (its poll is an hour away, so only
// the write's change hook can do it); the endpoint says why, the audit log
// has the drain, and a routes update may keep the flagged route at weight
// 0. Flagging the last unflagged version leaves nothing to serve: 503.
func TestFlagDrainsServingVersion(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.GatewayPollInterval = time.Hour }))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, r, blue, green)
	shiftToGreen(t, r, blue, green)
	if got := servedBy(t, r, r.AdminToken); got != "green" {
		t.Fatalf("before the flag: served by %q, want green", got)
	}

	flagVersion(t, r, 2, "leaks PII")
	for i := range 20 {
		if got := servedBy(t, r, r.AdminToken); got != "blue" {
			t.Fatalf("request %d after the flag: served by %q, want blue", i, got)
		}
	}
	e := getEndpoint(t, r)
	if e.Status != registry.EndpointStatusDrained || !strings.Contains(e.StatusMessage, "version 2") || !strings.Contains(e.StatusMessage, "leaks PII") {
		t.Errorf("status %q %q", e.Status, e.StatusMessage)
	}
	if e.Routes[0].Weight != 100 || e.Routes[1].Weight != 0 || e.Revision != 3 {
		t.Errorf("routes %+v revision %d", e.Routes, e.Revision)
	}
	resp := call(t, "GET", r.URL+"/api/v1/events?endpoint=ep", r.AdminToken, nil)
	mustStatus(t, resp, http.StatusOK)
	var evs registry.Page[registry.Event]
	if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
		t.Fatal(err)
	}
	if last := evs.Items[len(evs.Items)-1]; last.Action != registry.ActionEndpointFlagDrain || !strings.HasPrefix(last.Actor, "admin-") {
		t.Errorf("last endpoint event %+v", last)
	}

	// Weight 0 on the flagged version is accepted; any weight is not.
	routes := func(blueW, greenW int) map[string]any {
		return map[string]any{"routes": []map[string]any{
			{"name": "blue", "version": 1, "upstream_url": blue, "weight": blueW},
			{"name": "green", "version": 2, "upstream_url": green, "weight": greenW},
		}}
	}
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, routes(100, 0)), http.StatusOK)
	if e := getEndpoint(t, r); e.Status != registry.EndpointStatusHealthy {
		t.Errorf("status after setting routes %q", e.Status)
	}
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, routes(90, 10)), http.StatusUnprocessableEntity)

	// Nothing unflagged left: the gateway answers 503 at once.
	flagVersion(t, r, 1, "also bad")
	resp = call(t, "GET", r.URL+"/serve/ep/predict", r.AdminToken, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("after flagging every version: status %d, want 503: %s", resp.StatusCode, b)
	}
	if e := getEndpoint(t, r); e.Routes[0].Weight != 0 || e.Routes[1].Weight != 0 || !strings.Contains(e.StatusMessage, "503") {
		t.Errorf("endpoint after flagging every version: %+v", e)
	}
}

// TestFlagDrainReachesOtherReplicas: the drain written through replica A
// is served by replica B (which only polls) within 1 s.
func TestFlagDrainReachesOtherReplicas(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	defaultPoll := func(c *app.Config) { c.GatewayPollInterval = 0 }
	a := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	b := apptest.Start(t, apptest.WithDB(dsn), apptest.WithConfig(defaultPoll))
	blue, green := upstream(t, "blue"), upstream(t, "green")
	seedEndpoint(t, a, blue, green)
	shiftToGreen(t, a, blue, green)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := call(t, "GET", b.URL+"/serve/ep/predict", b.AdminToken, nil)
		if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Route") == "green" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B never served green (status %d)", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by the deadline
	}

	flagVersion(t, a, 2, "leaks PII")
	if got := servedBy(t, a, a.AdminToken); got != "blue" {
		t.Fatalf("replica A after the flag: served by %q", got)
	}
	start := time.Now()
	for servedBy(t, b, b.AdminToken) != "blue" {
		if time.Since(start) > time.Second {
			t.Fatalf("replica B still routes to the flagged version %s after the flag", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond) // polling the system under test, bounded by the deadline
	}
	t.Logf("replica B stopped routing to the flagged version after %s", time.Since(start).Round(time.Millisecond))
}
