package client

import (
	"context"
	"sync"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Read cache.
//
// Terraform refreshes every resource of a plan with one Read each: 1,000
// versions of 50 models are 1,000 GETs. ReadVersion serves them from one
// list call per model instead: the first ReadVersion of a model lists the
// model's versions (one page of up to registry.MaxPageSize, newest first,
// full version objects, stages included) and keeps them; later
// ReadVersions of that model on the same Client are answered from that
// snapshot. Concurrent first reads of a model share one list call.
//
// What makes it exact for Terraform:
//   - A Client lives for one provider configuration, i.e. one Terraform
//     command's plan or apply walk, so a snapshot is never older than the
//     walk that reads it.
//   - A version the snapshot does not hold (deleted, or beyond the first
//     page, or a list that failed) is read with GetVersion, so not found
//     is always the registry's own answer to that version.
//   - Every write through this Client to a model's versions or stages
//     (create, update or delete of a version, a stage assignment or its
//     removal, a model's update or delete) drops the model's snapshot when
//     it returns, whatever its outcome, so a read after it lists again.
//
// GetVersion is never cached.

// versionSnapshots holds the snapshots of one Client.
type versionSnapshots struct {
	mu     sync.Mutex
	models map[string]*versionSnapshot
}

// versionSnapshot is one model's versions as one list call saw them.
// done is closed once versions is set; versions is nil when the list
// failed (its readers then GET each version).
type versionSnapshot struct {
	done     chan struct{}
	versions map[int64]*registry.ModelVersion
}

// ReadVersion returns one version like GetVersion, served from a snapshot
// of the model's versions listed by the first ReadVersion of the model on
// this Client (see above). The returned value shares its maps and slices
// with the snapshot: callers must not modify them.
func (c *Client) ReadVersion(ctx context.Context, model string, version int64) (*registry.ModelVersion, error) {
	if v := c.snapshot(ctx, model)[version]; v != nil {
		cp := *v
		return &cp, nil
	}
	return c.GetVersion(ctx, model, version)
}

// snapshot returns the model's snapshot, listing it if this Client has
// none; nil when the list failed or ctx ended while waiting for another
// caller's list.
func (c *Client) snapshot(ctx context.Context, model string) map[int64]*registry.ModelVersion {
	c.reads.mu.Lock()
	if c.reads.models == nil {
		c.reads.models = map[string]*versionSnapshot{}
	}
	s, ok := c.reads.models[model]
	if !ok {
		s = &versionSnapshot{done: make(chan struct{})}
		c.reads.models[model] = s
	}
	c.reads.mu.Unlock()
	if ok {
		select {
		case <-s.done:
			return s.versions
		case <-ctx.Done():
			return nil
		}
	}
	defer close(s.done)
	page, err := c.ListVersions(ctx, model, registry.VersionFilter{
		ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize},
		OrderBy:     "version desc",
	})
	if err != nil {
		c.log(ctx, "listing versions for reads failed, reading them one by one", map[string]any{"model": model, "error": err.Error()})
		return nil
	}
	versions := make(map[int64]*registry.ModelVersion, len(page.Items))
	for i := range page.Items {
		if v := &page.Items[i]; v.Model == model {
			versions[v.Version] = v
		}
	}
	s.versions = versions
	return versions
}

// forget drops the model's snapshot: the next ReadVersion lists again. A
// list under way keeps serving the callers already waiting for it.
func (c *Client) forget(model string) {
	c.reads.mu.Lock()
	delete(c.reads.models, model)
	c.reads.mu.Unlock()
}
