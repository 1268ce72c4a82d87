package client

import (
	"context"
	"math"
	"sync"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Read cache.
//
// Terraform refreshes every resource of a plan with one Read each: 3,000
// versions of one model are 3,000 GETs. ReadVersion serves them from the
// model's version list instead, so a plan's requests grow with its models
// and list pages, not with its versions. The first ReadVersion of a model
// on a Client lists the model's first page (newest first, full version
// objects, stages included) and keeps it as the model's snapshot; a later
// read of a version older than everything listed so far lists the next
// page, following next_page_token, until the snapshot reaches that
// version or the list ends. Reads of versions the snapshot covers are
// answered from it. One list call is under way per model at a time: the
// readers that need it wait for it, and readers of versions already
// covered do not.
//
// The consistency rule, and what makes it exact for Terraform:
//   - A Client lives for one provider configuration, i.e. one Terraform
//     command's plan or apply walk, so a snapshot is never older than the
//     walk that reads it. Each page is as fresh as the moment it was
//     listed; pages follow each other by version number, so a version is
//     on one page only.
//   - A version the snapshot should hold but does not (deleted, created
//     after the first page, or skipped because a page changed between two
//     list calls) and a version it does not cover (the list failed or
//     the page budget below is spent) are read with GetVersion, so not
//     found is always the registry's own answer to that version.
//   - Every write through this Client to a model's versions or stages
//     (create, update or delete of a version, a stage assignment or its
//     removal, a model's create, update or delete) drops the model's
//     snapshot when it returns, whatever its outcome, so a read after it
//     lists again. Reads that started before the write may still be
//     answered from the snapshot they started on.
//   - A snapshot lists no more pages than the model has had reads on this
//     Client: one old version of a long history is then one page and a
//     GET, not every page down to it. A model costs at most one list call
//     per read, and at most its number of pages.
//
// GetVersion is never cached.

// versionSnapshots holds the snapshots of one Client.
type versionSnapshots struct {
	// mu guards the map and every field of every snapshot.
	mu     sync.Mutex
	models map[string]*versionSnapshot
}

// versionSnapshot is one model's versions as the list calls so far saw
// them.
type versionSnapshot struct {
	versions map[int64]*registry.ModelVersion
	// floor is the oldest version the snapshot covers: every version
	// from floor up that existed when its page was listed is in versions
	// (math.MaxInt64 before the first page, math.MinInt64 once the list
	// has ended).
	floor int64
	// next is the page token of the next page.
	next string
	// ended: no more pages will be listed (the last page came or a list
	// call failed).
	ended bool
	// reads and lists count the ReadVersion calls on this snapshot and
	// the list calls it made (the page budget).
	reads, lists int
	// listing is closed when the list call under way returns; nil when
	// none is.
	listing chan struct{}
}

// ReadVersion returns one version like GetVersion, served from the model's
// snapshot of list pages on this Client (see above). The returned value
// shares its maps and slices with the snapshot: callers must not modify
// them.
func (c *Client) ReadVersion(ctx context.Context, model string, version int64) (*registry.ModelVersion, error) {
	c.reads.mu.Lock()
	if c.reads.models == nil {
		c.reads.models = map[string]*versionSnapshot{}
	}
	s := c.reads.models[model]
	if s == nil {
		s = &versionSnapshot{versions: map[int64]*registry.ModelVersion{}, floor: math.MaxInt64}
		c.reads.models[model] = s
	}
	s.reads++
	for {
		if version >= s.floor {
			v := s.versions[version]
			c.reads.mu.Unlock()
			if v != nil {
				cp := *v
				return &cp, nil
			}
			return c.GetVersion(ctx, model, version)
		}
		if s.ended {
			break
		}
		if s.listing != nil {
			// The page under way may cover this version.
			listing := s.listing
			c.reads.mu.Unlock()
			select {
			case <-listing:
			case <-ctx.Done():
				return c.GetVersion(ctx, model, version)
			}
			c.reads.mu.Lock()
			continue
		}
		if s.lists >= s.reads {
			break
		}
		c.listPage(ctx, model, s)
	}
	c.reads.mu.Unlock()
	return c.GetVersion(ctx, model, version)
}

// listPage lists s's next page into s. It is called with c.reads.mu held
// and returns with it held; the lock is released during the call.
func (c *Client) listPage(ctx context.Context, model string, s *versionSnapshot) {
	listing := make(chan struct{})
	s.listing = listing
	s.lists++
	token := s.next
	c.reads.mu.Unlock()
	page, err := c.ListVersions(ctx, model, registry.VersionFilter{
		ListOptions: registry.ListOptions{PageSize: c.readPageSize, PageToken: token},
		OrderBy:     "version desc",
	})
	c.reads.mu.Lock()
	s.listing = nil
	close(listing)
	if err != nil {
		c.log(ctx, "listing versions for reads failed, reading the rest one by one", map[string]any{"model": model, "error": err.Error()})
		s.ended = true
		return
	}
	for i := range page.Items {
		if v := &page.Items[i]; v.Model == model {
			s.versions[v.Version] = v
		}
	}
	switch {
	case page.NextPageToken == "":
		s.ended = true
		s.floor = math.MinInt64
	case len(page.Items) == 0:
		// A next page after an empty one would not move the floor.
		s.ended = true
	default:
		s.floor = min(s.floor, page.Items[len(page.Items)-1].Version)
		s.next = page.NextPageToken
	}
}

// forget drops the model's snapshot: the next ReadVersion lists again. A
// list under way keeps serving the callers already waiting for it.
func (c *Client) forget(model string) {
	c.reads.mu.Lock()
	delete(c.reads.models, model)
	c.reads.mu.Unlock()
}
