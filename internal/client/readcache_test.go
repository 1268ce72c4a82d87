package client_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Routes of the version reads, as the registry's metrics label them.
const (
	routeListVersions = "/api/v1/models/{model}/versions"
	routeGetVersion   = "/api/v1/models/{model}/versions/{version}"
)

// requestCount is how many GETs of route the registry has answered, from
// its own /metrics (mlregistry_http_requests_total, every status).
func requestCount(t *testing.T, r *apptest.Registry, route string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+r.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	n := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "mlregistry_http_requests_total{") ||
			!strings.Contains(line, `method="GET"`) || !strings.Contains(line, `route="`+route+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		n += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// readCounter counts the version reads the registry answers between two
// calls of expect.
type readCounter struct {
	t           *testing.T
	r           *apptest.Registry
	lists, gets int
}

func newReadCounter(t *testing.T, r *apptest.Registry) *readCounter {
	t.Helper()
	return &readCounter{t: t, r: r, lists: requestCount(t, r, routeListVersions), gets: requestCount(t, r, routeGetVersion)}
}

// expect checks the list and get calls since the last expect. The server
// counts a request once its handler returns, which may be just after the
// client has the answer, so a count below the expected one is read again
// for a while; a count above it fails at once.
func (c *readCounter) expect(what string, lists, gets int) {
	c.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		l := requestCount(c.t, c.r, routeListVersions) - c.lists
		g := requestCount(c.t, c.r, routeGetVersion) - c.gets
		if l == lists && g == gets {
			c.lists += l
			c.gets += g
			return
		}
		if l > lists || g > gets || time.Now().After(deadline) {
			c.t.Fatalf("%s: the registry answered %d version lists and %d version GETs, want %d and %d", what, l, g, lists, gets)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func createVersions(t *testing.T, c *client.Client, model string, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreateModel(ctx, registry.ModelCreate{Name: model}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		_, err := c.CreateVersion(ctx, model, registry.ModelVersionCreate{
			Source: "s3://b/" + model + "/" + strconv.Itoa(i), Checksum: checksum(i), Format: "onnx",
			Metrics: map[string]float64{"auc": 0.8}, Tags: map[string]string{"n": strconv.Itoa(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadVersionServesAModelFromOneList: the reads of a model's versions
// on one client cost one list call, in sequence and concurrently, and
// answer exactly what GetVersion answers.
func TestReadVersionServesAModelFromOneList(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	admin := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	createVersions(t, admin, "a", 12)
	createVersions(t, admin, "b", 3)
	if _, err := admin.AssignStage(ctx, "a", "staging", registry.StageAssign{Version: 4}, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]*registry.ModelVersion, 13)
	for i := 1; i <= 12; i++ {
		v, err := admin.GetVersion(ctx, "a", int64(i))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = v
	}
	count := newReadCounter(t, r)

	c := newClient(t, r, r.AdminToken)
	var wg sync.WaitGroup
	got := make([]*registry.ModelVersion, 13)
	errs := make([]error, 13)
	for i := 1; i <= 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = c.ReadVersion(ctx, "a", int64(i))
		}()
	}
	wg.Wait()
	count.expect("12 concurrent reads of one model", 1, 0)
	for i := 1; i <= 12; i++ {
		if errs[i] != nil {
			t.Fatalf("read %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("ReadVersion(a, %d) = %+v, GetVersion = %+v", i, got[i], want[i])
		}
	}
	for i := 1; i <= 3; i++ {
		if _, err := c.ReadVersion(ctx, "b", int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 12; i >= 1; i-- {
		if _, err := c.ReadVersion(ctx, "a", int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	count.expect("3 reads of another model, then a again", 1, 0)

	// A client of its own (a new provider run) lists again.
	if _, err := newClient(t, r, r.AdminToken).ReadVersion(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	count.expect("a new client", 1, 0)
}

// TestReadVersionMissesAreExact: a version the snapshot does not hold is
// the registry's own answer for it: deleted is not found, created after
// the snapshot is found, a missing model is not found.
func TestReadVersionMissesAreExact(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	admin := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	createVersions(t, admin, "a", 3)
	c := newClient(t, r, r.AdminToken)
	if _, err := c.ReadVersion(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	count := newReadCounter(t, r)

	if _, err := c.ReadVersion(ctx, "a", 9); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("version 9 never existed: %v", err)
	}
	count.expect("a version the list did not hold", 0, 1)

	// Created by someone else after the snapshot: found by its own GET.
	v4, err := admin.CreateVersion(ctx, "a", registry.ModelVersionCreate{Source: "s3://b/4", Checksum: checksum(4), Format: "onnx"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadVersion(ctx, "a", v4.Version)
	if err != nil || got.Checksum != checksum(4) {
		t.Fatalf("version created after the snapshot: %+v, %v", got, err)
	}

	if _, err := c.ReadVersion(ctx, "nope", 1); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("missing model: %v", err)
	}
	if _, err := c.ReadVersion(ctx, "nope", 2); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("missing model: %v", err)
	}
	count.expect("a late version, then two versions of a missing model", 1, 3)
}

// TestReadVersionWriteInvalidates: within one client a snapshot is kept
// (a change made elsewhere is not seen until this client writes), and
// every write of this client to the model's versions or stages drops it,
// so the next read lists again and sees every change.
func TestReadVersionWriteInvalidates(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	admin := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	createVersions(t, admin, "a", 3)
	createVersions(t, admin, "b", 2)
	c := newClient(t, r, r.AdminToken)
	read := func(version int64) *registry.ModelVersion {
		t.Helper()
		v, err := c.ReadVersion(ctx, "a", version)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	read(1)
	if _, err := c.ReadVersion(ctx, "b", 1); err != nil {
		t.Fatal(err)
	}
	count := newReadCounter(t, r)

	byHand := "by hand"
	if _, err := admin.UpdateVersion(ctx, "a", 2, registry.ModelVersionPatch{Description: &byHand}, 0); err != nil {
		t.Fatal(err)
	}
	if got := read(2); got.Description != "" {
		t.Fatalf("the snapshot should still hold version 2 as listed, got description %q", got.Description)
	}
	count.expect("a read from the snapshot", 0, 0)

	writes := []struct {
		name  string
		write func() error
		check func(v1, v2, v3 *registry.ModelVersion) bool
	}{
		{"update of another version", func() error {
			d := "mine"
			_, err := c.UpdateVersion(ctx, "a", 3, registry.ModelVersionPatch{Description: &d}, 0)
			return err
		}, func(_, v2, v3 *registry.ModelVersion) bool {
			return v2.Description == byHand && v3.Description == "mine"
		}},
		{"stage assignment", func() error {
			_, err := c.AssignStage(ctx, "a", "staging", registry.StageAssign{Version: 1}, 0)
			return err
		}, func(v1, _, _ *registry.ModelVersion) bool { return reflect.DeepEqual(v1.Stages, []string{"staging"}) }},
		{"stage removal", func() error { return c.UnassignStage(ctx, "a", "staging", 0) },
			func(v1, _, _ *registry.ModelVersion) bool { return len(v1.Stages) == 0 }},
		{"version create", func() error {
			_, err := c.CreateVersion(ctx, "a", registry.ModelVersionCreate{Source: "s3://b/9", Checksum: checksum(9), Format: "onnx"})
			return err
		}, func(_, _, _ *registry.ModelVersion) bool { return true }},
		{"failed version update", func() error {
			d := "stale"
			_, err := c.UpdateVersion(ctx, "a", 2, registry.ModelVersionPatch{Description: &d}, 1)
			if !errors.Is(err, registry.ErrPreconditionFailed) {
				return errors.New("expected precondition failed, got " + errorString(err))
			}
			return nil
		}, func(_, v2, _ *registry.ModelVersion) bool { return v2.Description == byHand }},
		{"model update", func() error {
			o := "me"
			_, err := c.UpdateModel(ctx, "a", registry.ModelPatch{Owner: &o}, 0)
			return err
		}, func(_, _, _ *registry.ModelVersion) bool { return true }},
	}
	for _, w := range writes {
		// Someone else changes version 2 between this client's reads.
		d := "by hand before " + w.name
		if _, err := admin.UpdateVersion(ctx, "a", 2, registry.ModelVersionPatch{Description: &d}, 0); err != nil {
			t.Fatal(err)
		}
		byHand = d
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		v1, v2, v3 := read(1), read(2), read(3)
		if v2.Description != byHand || !w.check(v1, v2, v3) {
			t.Fatalf("after this client's %s the reads are stale: %+v %+v %+v", w.name, v1, v2, v3)
		}
		count.expect("three reads after a "+w.name, 1, 0)
	}

	// Model b was never written: still its snapshot.
	if _, err := c.ReadVersion(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	count.expect("a model this client did not write", 0, 0)

	// Deleting a version drops the snapshot: the deleted one is not found.
	if err := c.DeleteVersion(ctx, "a", 3, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadVersion(ctx, "a", 3); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("deleted version: %v", err)
	}
	count.expect("a read of a version this client deleted", 1, 1)
}

func errorString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// pagedClient is a client whose ReadVersion lists pages of size versions.
func pagedClient(t *testing.T, r *apptest.Registry, size int) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Address: r.URL, Token: r.AdminToken, MaxRetries: -1, ReadPageSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReadVersionPagesThroughTheHistory: a model with more versions than
// one page is read from its list pages: all its versions at once cost one
// list call per page and no GET, whatever the order; the answers are
// GetVersion's.
func TestReadVersionPagesThroughTheHistory(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	admin := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	createVersions(t, admin, "a", 25)
	if _, err := admin.AssignStage(ctx, "a", "staging", registry.StageAssign{Version: 3}, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]*registry.ModelVersion, 26)
	for i := 1; i <= 25; i++ {
		v, err := admin.GetVersion(ctx, "a", int64(i))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = v
	}
	count := newReadCounter(t, r)

	// Ten readers at a time, as Terraform's -parallelism, oldest first.
	c := pagedClient(t, r, 10)
	got := make([]*registry.ModelVersion, 26)
	errs := make([]error, 26)
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	for i := 1; i <= 25; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got[i], errs[i] = c.ReadVersion(ctx, "a", int64(i))
		}()
	}
	wg.Wait()
	count.expect("25 reads of 25 versions, 10 at a time, in pages of 10", 3, 0)
	for i := 1; i <= 25; i++ {
		if errs[i] != nil {
			t.Fatalf("read %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("ReadVersion(a, %d) = %+v, GetVersion = %+v", i, got[i], want[i])
		}
	}

	// Newest first, one at a time: each page is listed when a read
	// reaches past the last one.
	c = pagedClient(t, r, 10)
	for i := 25; i >= 1; i-- {
		v, err := c.ReadVersion(ctx, "a", int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v, want[i]) {
			t.Fatalf("ReadVersion(a, %d) = %+v, GetVersion = %+v", i, v, want[i])
		}
	}
	count.expect("25 reads newest first", 3, 0)

	// Oldest first, one at a time: a read lists at most one page more than
	// there were reads before it, so the first two reads list a page each
	// and, not reaching their version yet, GET it.
	c = pagedClient(t, r, 10)
	for i := 1; i <= 25; i++ {
		v, err := c.ReadVersion(ctx, "a", int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v, want[i]) {
			t.Fatalf("ReadVersion(a, %d) = %+v, GetVersion = %+v", i, v, want[i])
		}
	}
	count.expect("25 reads oldest first", 3, 2)
}

// TestReadVersionPageBudget: one read of an old version of a long history
// costs one page and a GET, not every page down to it; the pages listed
// stay and serve the reads they cover.
func TestReadVersionPageBudget(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	admin := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	createVersions(t, admin, "a", 40)
	count := newReadCounter(t, r)

	c := pagedClient(t, r, 5)
	v, err := c.ReadVersion(ctx, "a", 2)
	if err != nil || v.Version != 2 || v.Checksum != checksum(2) {
		t.Fatalf("ReadVersion(a, 2) = %+v, %v", v, err)
	}
	count.expect("one read of version 2 of 40, pages of 5", 1, 1)
	for i := 40; i > 35; i-- {
		if _, err := c.ReadVersion(ctx, "a", int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	count.expect("reads of the first page's versions", 0, 0)
	// Six reads so far against one page: the next read past the first
	// page lists the page it needs.
	if _, err := c.ReadVersion(ctx, "a", 33); err != nil {
		t.Fatal(err)
	}
	count.expect("a read on the second page", 1, 0)
}

// TestReadVersionBetweenPages: what changes between two list calls of one
// snapshot is read exactly: a version deleted elsewhere before its page is
// listed is not found, one created elsewhere after the first page is
// found by its own GET; a write through the client while pages remain
// starts the model's list again from its first page.
func TestReadVersionBetweenPages(t *testing.T) {
	t.Parallel()
	r := apptest.Start(t)
	admin := newClient(t, r, r.AdminToken)
	ctx := context.Background()
	createVersions(t, admin, "a", 20)
	c := pagedClient(t, r, 5)
	if _, err := c.ReadVersion(ctx, "a", 20); err != nil {
		t.Fatal(err)
	}
	count := newReadCounter(t, r)

	if err := admin.DeleteVersion(ctx, "a", 14, 0); err != nil {
		t.Fatal(err)
	}
	byHand := "by hand"
	if _, err := admin.UpdateVersion(ctx, "a", 13, registry.ModelVersionPatch{Description: &byHand}, 0); err != nil {
		t.Fatal(err)
	}
	v21, err := admin.CreateVersion(ctx, "a", registry.ModelVersionCreate{Source: "s3://b/21", Checksum: checksum(21), Format: "onnx"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.ReadVersion(ctx, "a", 13); err != nil || v.Description != byHand {
		t.Fatalf("version 13 changed before its page was listed: %+v, %v", v, err)
	}
	count.expect("a read on the second page", 1, 0)
	// Version 14 was on no page (deleted first); version 21 is newer than
	// the first page.
	if _, err := c.ReadVersion(ctx, "a", 14); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("version 14 deleted before its page was listed: %v", err)
	}
	if v, err := c.ReadVersion(ctx, "a", v21.Version); err != nil || v.Checksum != checksum(21) {
		t.Fatalf("version created after the first page: %+v, %v", v, err)
	}
	count.expect("a deleted version and a new one", 0, 2)

	// This client's write drops the snapshot with pages left: the next
	// read lists from the newest version again and sees the write.
	mine := "mine"
	if _, err := c.UpdateVersion(ctx, "a", 2, registry.ModelVersionPatch{Description: &mine}, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := c.ReadVersion(ctx, "a", 21); err != nil || v.Checksum != checksum(21) {
		t.Fatalf("version 21 after the write: %+v, %v", v, err)
	}
	count.expect("a read after this client's write", 1, 0)
	for i := 21; i >= 1; i-- {
		v, err := c.ReadVersion(ctx, "a", int64(i))
		switch {
		case i == 14:
			if !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("deleted version 14: %v", err)
			}
		case err != nil:
			t.Fatalf("version %d: %v", i, err)
		case i == 2 && v.Description != mine:
			t.Fatalf("version 2 after this client's update: %+v", v)
		}
	}
	count.expect("every version after the write, newest first: the other three pages", 3, 1)
}
