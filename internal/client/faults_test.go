package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/faultproxy"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestCreatesThroughLossyNetwork: a proxy loses the answer on about half
// of the connections after the request reached the registry. 1,000
// version creates through the client, with its retries and one
// Idempotency-Key per create, leave exactly 1,000 versions: a lost answer
// is replayed on retry, never applied twice.
func TestCreatesThroughLossyNetwork(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(u.Host, 0.5, 42)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c, err := client.New(client.Options{
		Address: p.URL(), Token: r.AdminToken, MaxRetries: 20,
		// One request per connection, so about half of all answers are lost.
		HTTPClient:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	direct := newClient(t, r, r.AdminToken)
	if _, err := direct.CreateModel(ctx, registry.ModelCreate{Name: "lossy"}); err != nil {
		t.Fatal(err)
	}

	const creates, workers = 1000, 8
	jobs := make(chan int)
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				v, err := c.CreateVersion(ctx, "lossy", registry.ModelVersionCreate{
					Source: "s3://b/m.onnx", Checksum: checksum(i + 1), Format: "onnx",
				})
				if err != nil {
					t.Errorf("create %d: %v", i, err)
					continue
				}
				mu.Lock()
				if prev, dup := seen[v.Version]; dup {
					t.Errorf("creates %d and %d both answered version %d", prev, i, v.Version)
				}
				seen[v.Version] = i
				mu.Unlock()
			}
		}()
	}
	for i := range creates {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	n := 0
	opts := registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}}
	for {
		page, err := direct.ListVersions(ctx, "lossy", opts)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Items)
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}
	if n != creates {
		t.Errorf("%d versions stored after %d creates", n, creates)
	}
	if d := p.Dropped.Load(); d < creates/4 {
		t.Errorf("the proxy lost only %d answers; the test did not exercise retries", d)
	}
	t.Logf("%d creates, %d connections, %d answers lost, %d versions stored", creates, p.Connections.Load(), p.Dropped.Load(), n)
}

// lossyClient is a client that reaches r through a proxy losing the
// answer on about half of the connections (one request per connection).
func lossyClient(t *testing.T, r *apptest.Registry, seed uint64) (*client.Client, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(u.Host, 0.5, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c, err := client.New(client.Options{
		Address: p.URL(), Token: r.AdminToken, MaxRetries: 20,
		HTTPClient:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// TestConditionalWritesThroughLossyNetwork: updates, stage assignments
// and deletes with If-Match through a proxy that loses about half of the
// answers. The first attempt of a write whose answer was lost was applied
// and moved the revision, so a plain retry would fail its own If-Match;
// with the client's Idempotency-Key on every write the retry gets the
// first answer. Every write succeeds and is applied exactly once (one
// audit event each, revisions advance by one).
func TestConditionalWritesThroughLossyNetwork(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	c, p := lossyClient(t, r, 7)
	direct := newClient(t, r, r.AdminToken)
	ctx := context.Background()

	m, err := direct.CreateModel(ctx, registry.ModelCreate{Name: "cond"})
	if err != nil {
		t.Fatal(err)
	}
	const updates = 100
	for i := range updates {
		desc := fmt.Sprintf("update %d", i)
		got, err := c.UpdateModel(ctx, "cond", registry.ModelPatch{Description: &desc}, m.Revision)
		if err != nil {
			t.Fatalf("update %d (If-Match %d): %v", i, m.Revision, err)
		}
		if got.Revision != m.Revision+1 || got.Description != desc {
			t.Fatalf("update %d answered revision %d %q, want %d %q", i, got.Revision, got.Description, m.Revision+1, desc)
		}
		m = got
	}

	const versions = 3
	for i := range versions {
		if _, err := direct.CreateVersion(ctx, "cond", registry.ModelVersionCreate{Source: "s3://b/m.onnx", Checksum: checksum(i + 1), Format: "onnx"}); err != nil {
			t.Fatal(err)
		}
	}
	const assigns = 60
	var stageRev int64
	for i := range assigns {
		want := int64(i%versions + 1)
		a, err := c.AssignStage(ctx, "cond", "production", registry.StageAssign{Version: want}, stageRev)
		if err != nil {
			t.Fatalf("assignment %d (If-Match %d): %v", i, stageRev, err)
		}
		if a.Version != want || a.Revision != stageRev+1 {
			t.Fatalf("assignment %d answered version %d revision %d, want %d %d", i, a.Version, a.Revision, want, stageRev+1)
		}
		stageRev = a.Revision
	}
	if err := c.UnassignStage(ctx, "cond", "production", stageRev); err != nil {
		t.Fatalf("unassign: %v", err)
	}

	const deletes = 40
	for i := range deletes {
		v, err := direct.CreateVersion(ctx, "cond", registry.ModelVersionCreate{Source: "s3://b/d.onnx", Checksum: checksum(1000 + i), Format: "onnx"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteVersion(ctx, "cond", v.Version, v.Revision); err != nil {
			t.Fatalf("delete version %d: %v", v.Version, err)
		}
	}

	counts := map[string]int{}
	f := registry.EventFilter{Model: "cond", ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}}
	for {
		page, err := direct.ListEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			counts[e.Action]++
		}
		if page.NextPageToken == "" {
			break
		}
		f.PageToken = page.NextPageToken
	}
	for action, want := range map[string]int{
		registry.ActionModelUpdate:   updates,
		registry.ActionStageAssign:   assigns,
		registry.ActionStageUnassign: 1,
		registry.ActionVersionDelete: deletes,
	} {
		if counts[action] != want {
			t.Errorf("%d %s events, want %d (each write applied once)", counts[action], action, want)
		}
	}
	if d := p.Dropped.Load(); d < (updates+assigns+deletes)/4 {
		t.Errorf("the proxy lost only %d answers; the test did not exercise retries", d)
	}
	t.Logf("%d conditional writes, %d connections, %d answers lost", updates+assigns+1+deletes, p.Connections.Load(), p.Dropped.Load())
}
