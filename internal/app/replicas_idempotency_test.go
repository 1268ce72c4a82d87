package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/faultproxy"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

type keyedAnswer struct {
	status   int
	replayed bool
	etag     string
	body     []byte
}

// keyed sends one request with an Idempotency-Key (and If-Match when
// ifMatch is set). A transport error (the answer was lost) is returned,
// not fatal.
func keyed(c *http.Client, method, url, token, key, ifMatch string, body any) (*keyedAnswer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &keyedAnswer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true", etag: resp.Header.Get("ETag"), body: b}, nil
}

// TestIdempotentRetryOnOtherReplica: two replicas on one PostgreSQL. A
// write whose answer was lost on its way back from replica A (a proxy
// drops every answer) is retried with the same Idempotency-Key against
// replica B, as a load balancer would send it: B replays A's answer and
// nothing is applied twice. Creates, and conditional updates, stage
// assignments and deletes (whose plain retry would fail its If-Match).
// Then the same keyed creates sent to both replicas at once: each is
// applied once, and every answer is the one create's or 409 while it is
// in flight.
func TestIdempotentRetryOnOtherReplica(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	a := apptest.Start(t, apptest.WithDB(dsn))
	b := apptest.Start(t, apptest.WithDB(dsn))
	u, err := url.Parse(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	lossy, err := faultproxy.Start(u.Host, 1, 1) // every answer from A is lost
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lossy.Close() })
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	tok := a.AdminToken // one client, one token, whichever replica answers

	mustStatus(t, call(t, "POST", b.URL+"/api/v1/models", tok, map[string]any{"name": "m"}), http.StatusCreated)
	steps := []struct {
		name, method, path, ifMatch string
		body                        any
		status                      int
	}{
		{"create version", "POST", "/api/v1/models/m/versions", "", map[string]any{"source": "s3://b/1", "checksum": "sha256:" + strings.Repeat("01", 32), "format": "onnx"}, http.StatusCreated},
		{"create version 2", "POST", "/api/v1/models/m/versions", "", map[string]any{"source": "s3://b/2", "checksum": "sha256:" + strings.Repeat("02", 32), "format": "onnx"}, http.StatusCreated},
		{"update model", "PATCH", "/api/v1/models/m", `"1"`, map[string]any{"description": "retried"}, http.StatusOK},
		{"assign stage", "PUT", "/api/v1/models/m/stages/staging", "", map[string]any{"version": 1}, http.StatusOK},
		{"promote", "PUT", "/api/v1/models/m/stages/staging", `"1"`, map[string]any{"version": 2}, http.StatusOK},
		{"delete version", "DELETE", "/api/v1/models/m/versions/1", `"1"`, nil, http.StatusNoContent},
	}
	for _, s := range steps {
		key := "replica-retry " + s.name
		if _, err := keyed(hc, s.method, lossy.URL()+s.path, tok, key, s.ifMatch, s.body); err == nil {
			t.Fatalf("%s: the answer from A was not lost", s.name)
		}
		events := countEvents(t, b, tok)
		retry, err := keyed(hc, s.method, b.URL+s.path, tok, key, s.ifMatch, s.body)
		if err != nil {
			t.Fatal(err)
		}
		if retry.status != s.status || !retry.replayed {
			t.Fatalf("%s: retry on B answered %d (replayed %v), want %d replayed: %s", s.name, retry.status, retry.replayed, s.status, retry.body)
		}
		if got := countEvents(t, b, tok); got != events {
			t.Errorf("%s: the retry on B wrote %d events", s.name, got-events)
		}
	}
	var vs registry.Page[registry.ModelVersion]
	decode(t, call(t, "GET", b.URL+"/api/v1/models/m/versions", tok, nil), &vs)
	if len(vs.Items) != 1 || vs.Items[0].Version != 2 {
		t.Errorf("versions after the retries: %+v, want only version 2", vs.Items)
	}
	var m registry.Model
	decode(t, call(t, "GET", a.URL+"/api/v1/models/m", tok, nil), &m)
	if m.Revision != 2 || m.Description != "retried" {
		t.Errorf("model after the retried update: revision %d %q, want 2 \"retried\"", m.Revision, m.Description)
	}

	// The same keyed create to both replicas at once.
	const creates = 20
	type pair struct{ a, b *keyedAnswer }
	answers := make([]pair, creates)
	var wg sync.WaitGroup
	for i := range creates {
		body := map[string]any{"source": fmt.Sprintf("s3://c/%d", i), "checksum": fmt.Sprintf("sha256:%064x", 1000+i), "format": "onnx"}
		key := fmt.Sprintf("both-%d", i)
		for j, r := range []*apptest.Registry{a, b} {
			wg.Go(func() {
				ans, err := keyed(http.DefaultClient, "POST", r.URL+"/api/v1/models/m/versions", tok, key, "", body)
				if err != nil {
					t.Error(err)
					return
				}
				if j == 0 {
					answers[i].a = ans
				} else {
					answers[i].b = ans
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	inFlight := 0
	for i, p := range answers {
		var created []*keyedAnswer
		for _, ans := range []*keyedAnswer{p.a, p.b} {
			switch ans.status {
			case http.StatusCreated:
				created = append(created, ans)
			case http.StatusConflict:
				inFlight++
			default:
				t.Errorf("create %d: %d %s", i, ans.status, ans.body)
			}
		}
		if len(created) == 0 {
			t.Errorf("create %d: neither replica answered 201", i)
		}
		if len(created) == 2 && (!bytes.Equal(created[0].body, created[1].body) || created[0].replayed == created[1].replayed) {
			t.Errorf("create %d: two different 201 answers:\n%s\n%s", i, created[0].body, created[1].body)
		}
	}
	decode(t, call(t, "GET", b.URL+"/api/v1/models/m/versions?page_size=1000", tok, nil), &vs)
	if len(vs.Items) != 1+creates {
		t.Errorf("%d versions after %d keyed creates sent to both replicas, want %d", len(vs.Items), creates, 1+creates)
	}
	t.Logf("%d creates sent to both replicas at once: %d answered 409 in flight", creates, inFlight)
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	mustStatus(t, resp, http.StatusOK)
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func countEvents(t *testing.T, r *apptest.Registry, token string) int {
	t.Helper()
	var page registry.Page[registry.Event]
	decode(t, call(t, "GET", r.URL+"/api/v1/events?page_size=1000", token, nil), &page)
	return len(page.Items)
}
