package client_test

import (
	"context"
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
