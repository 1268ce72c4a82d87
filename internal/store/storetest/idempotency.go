package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var idempotencyCases = []testCase{
	{"Idempotency", testIdempotency},
	{"IdempotencyExpiry", testIdempotencyExpiry},
	{"IdempotencyBeginRace", testIdempotencyBeginRace},
	{"IdempotentCreate", testIdempotentCreate},
	{"IdempotentUpdate", testIdempotentUpdate},
}

const ttl = 24 * time.Hour

func idemKey(key, hash string) registry.IdempotencyKey {
	return registry.IdempotencyKey{TokenID: 1, Key: key, Method: "POST", Path: "/api/v1/models", RequestHash: hash}
}

func testIdempotency(e *env) {
	t := e.t
	k := idemKey("k1", "h1")
	rec, err := e.s.BeginIdempotent(e.ctx, k, ttl)
	ok(t, err)
	if rec != nil {
		t.Fatalf("first begin must claim the key, got %+v", rec)
	}
	claimed := at(e.clock.Now())

	e.clock.Advance(time.Second)
	rec, err = e.s.BeginIdempotent(e.ctx, k, ttl)
	ok(t, err)
	if rec == nil || rec.Completed || rec.RequestHash != "h1" || !rec.CreatedAt.Equal(claimed) {
		t.Fatalf("second begin while in flight: %+v", rec)
	}

	// The same key of another token is that token's own.
	other := registry.IdempotencyKey{TokenID: 2, Key: "k1", Method: "POST", Path: "/api/v1/models", RequestHash: "h1"}
	rec, err = e.s.BeginIdempotent(e.ctx, other, ttl)
	ok(t, err)
	if rec != nil {
		t.Errorf("another token's key must be its own, got record %+v", rec)
	}
	// The same token's key with another method or path gets the record
	// that holds the key, so the caller sees it was another request.
	for _, reuse := range []registry.IdempotencyKey{
		{TokenID: 1, Key: "k1", Method: "PUT", Path: "/api/v1/models", RequestHash: "h1"},
		{TokenID: 1, Key: "k1", Method: "POST", Path: "/api/v1/endpoints", RequestHash: "h1"},
	} {
		rec, err := e.s.BeginIdempotent(e.ctx, reuse, ttl)
		ok(t, err)
		if rec == nil || rec.Method != "POST" || rec.Path != "/api/v1/models" || rec.RequestHash != "h1" {
			t.Errorf("%+v reuses k1: got record %+v, want the POST /api/v1/models one", reuse, rec)
		}
		// Neither completing nor abandoning it touches the holder's claim.
		err = e.s.CompleteIdempotent(e.ctx, reuse, registry.IdempotencyRecord{StatusCode: 200})
		wantCode(t, err, registry.CodeNotFound)
		ok(t, e.s.AbandonIdempotent(e.ctx, reuse))
	}

	resp := registry.IdempotencyRecord{
		StatusCode: 201,
		Headers:    map[string]string{"Content-Type": "application/json", "ETag": `"1"`, "Location": "/api/v1/models/churn"},
		Body:       []byte(`{"name":"churn"}`),
	}
	ok(t, e.s.CompleteIdempotent(e.ctx, k, resp))
	rec, err = e.s.BeginIdempotent(e.ctx, k, ttl)
	ok(t, err)
	want := &registry.IdempotencyRecord{Completed: true, Method: "POST", Path: "/api/v1/models", RequestHash: "h1", StatusCode: 201, Headers: resp.Headers, Body: resp.Body, CreatedAt: claimed}
	equal(t, "replayed record", rec, want)

	// A different body under the same key gets the stored record, so the
	// caller can see the hashes differ.
	rec, err = e.s.BeginIdempotent(e.ctx, idemKey("k1", "h2"), ttl)
	ok(t, err)
	if rec == nil || rec.RequestHash != "h1" || !rec.Completed {
		t.Fatalf("begin with another body: %+v", rec)
	}

	err = e.s.CompleteIdempotent(e.ctx, k, resp)
	wantCode(t, err, registry.CodeNotFound)
	err = e.s.CompleteIdempotent(e.ctx, idemKey("never", "h"), resp)
	wantCode(t, err, registry.CodeNotFound)

	// Abandon frees an in-flight key and leaves a completed one alone.
	k2 := idemKey("k2", "h1")
	rec, err = e.s.BeginIdempotent(e.ctx, k2, ttl)
	ok(t, err)
	if rec != nil {
		t.Fatalf("claim k2: %+v", rec)
	}
	ok(t, e.s.AbandonIdempotent(e.ctx, k2))
	rec, err = e.s.BeginIdempotent(e.ctx, k2, ttl)
	ok(t, err)
	if rec != nil {
		t.Fatalf("an abandoned key must be claimable again, got %+v", rec)
	}
	ok(t, e.s.AbandonIdempotent(e.ctx, k))
	rec, err = e.s.BeginIdempotent(e.ctx, k, ttl)
	ok(t, err)
	if rec == nil || !rec.Completed {
		t.Fatalf("abandon must not drop a completed record: %+v", rec)
	}
	ok(t, e.s.AbandonIdempotent(e.ctx, idemKey("never", "h")))

	// Empty headers and body replay as empty, not nil maps.
	k3 := idemKey("k3", "h")
	_, err = e.s.BeginIdempotent(e.ctx, k3, ttl)
	ok(t, err)
	ok(t, e.s.CompleteIdempotent(e.ctx, k3, registry.IdempotencyRecord{StatusCode: 204}))
	rec, err = e.s.BeginIdempotent(e.ctx, k3, ttl)
	ok(t, err)
	if rec == nil || rec.StatusCode != 204 || rec.Headers == nil || len(rec.Body) != 0 {
		t.Fatalf("empty response: %+v", rec)
	}
}

func testIdempotencyExpiry(e *env) {
	t := e.t
	begin := func(k registry.IdempotencyKey) *registry.IdempotencyRecord {
		t.Helper()
		rec, err := e.s.BeginIdempotent(e.ctx, k, ttl)
		ok(t, err)
		return rec
	}
	done := idemKey("done", "h1")
	inflight := idemKey("inflight", "h1")
	if begin(done) != nil || begin(inflight) != nil {
		t.Fatal("fresh keys must be claimed")
	}
	ok(t, e.s.CompleteIdempotent(e.ctx, done, registry.IdempotencyRecord{StatusCode: 201}))

	// An in-flight record holds its key for a minute, then counts as
	// abandoned and is claimed again.
	e.clock.Advance(59 * time.Second)
	if rec := begin(inflight); rec == nil || rec.Completed {
		t.Fatalf("in flight for 59s: %+v", rec)
	}
	e.clock.Advance(2 * time.Second)
	retry := idemKey("inflight", "h2")
	if rec := begin(retry); rec != nil {
		t.Fatalf("in flight for 61s must be reclaimed, got %+v", rec)
	}
	if rec := begin(inflight); rec == nil || rec.RequestHash != "h2" || !rec.CreatedAt.Equal(at(e.clock.Now())) {
		t.Fatalf("the reclaimed record starts now, with the retry's hash: %+v", rec)
	}
	// The request that lost its claim can no longer complete or drop it.
	err := e.s.CompleteIdempotent(e.ctx, inflight, registry.IdempotencyRecord{StatusCode: 500})
	wantCode(t, err, registry.CodeNotFound)
	ok(t, e.s.AbandonIdempotent(e.ctx, inflight))
	if rec := begin(retry); rec == nil || rec.Completed || rec.RequestHash != "h2" {
		t.Fatalf("the retry's claim must survive the loser: %+v", rec)
	}
	if rec := begin(done); rec == nil || !rec.Completed {
		t.Fatalf("a completed record outlives a minute: %+v", rec)
	}

	// Records older than the ttl are replaced.
	e.clock.Advance(ttl)
	if rec := begin(idemKey("done", "h2")); rec != nil {
		t.Fatalf("an expired record must be replaced, got %+v", rec)
	}
	if rec := begin(idemKey("done", "h3")); rec == nil || rec.Completed || rec.RequestHash != "h2" {
		t.Fatalf("the replacement is in flight with the new hash: %+v", rec)
	}

	// Purge deletes what was created before the cut-off.
	e.clock.Advance(time.Hour)
	fresh := idemKey("fresh", "h")
	if begin(fresh) != nil {
		t.Fatal("claim fresh")
	}
	n, err := e.s.PurgeIdempotency(e.ctx, e.clock.Now().Add(-time.Minute))
	ok(t, err)
	equal(t, "purged records", n, int64(2)) // inflight and done, both claimed over an hour ago
	if rec := begin(inflight); rec != nil {
		t.Fatalf("a purged key is free, got %+v", rec)
	}
	if rec := begin(fresh); rec == nil {
		t.Fatal("a record newer than the cut-off must stay")
	}
	n, err = e.s.PurgeIdempotency(e.ctx, Epoch)
	ok(t, err)
	equal(t, "nothing older than the epoch", n, int64(0))
}

func testIdempotencyBeginRace(e *env) {
	t := e.t
	const workers = 8
	for round := range 3 {
		k := idemKey("race-"+string(rune('a'+round)), "h")
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			recs  = make([]*registry.IdempotencyRecord, workers)
			errs  = make([]error, workers)
		)
		for i := range workers {
			wg.Go(func() {
				<-start
				recs[i], errs[i] = e.s.BeginIdempotent(e.ctx, k, ttl)
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i := range workers {
			ok(t, errs[i])
			if recs[i] == nil {
				winners++
			} else if recs[i].Completed || recs[i].RequestHash != "h" {
				t.Errorf("loser %d got %+v, want the winner's in-flight record", i, recs[i])
			}
		}
		equal(t, "winners of a concurrent begin", winners, 1)
	}
}

// idempotentCreate claims key k and returns a ctx whose create completes
// the claim, answering with the created object as JSON.
func (e *env) idempotentCreate(k registry.IdempotencyKey) (context.Context, *registry.IdempotentWrite, *int) {
	e.t.Helper()
	rec, err := e.s.BeginIdempotent(e.ctx, k, ttl)
	ok(e.t, err)
	if rec != nil {
		e.t.Fatalf("claim %s: %+v", k.Key, rec)
	}
	calls := new(int)
	c := &registry.IdempotentWrite{Key: k, Response: func(created any) (registry.IdempotencyRecord, error) {
		*calls++
		body, err := json.Marshal(created)
		return registry.IdempotencyRecord{
			StatusCode: 201,
			Headers:    map[string]string{"Content-Type": "application/json", "X-Type": fmt.Sprintf("%T", created)},
			Body:       body,
		}, err
	}}
	return registry.WithIdempotentWrite(e.ctx, c), c, calls
}

// testIdempotentCreate: a create whose ctx carries an IdempotentWrite
// completes the claim in its own transaction, so the record is complete
// the moment the create returns; a failed create leaves the claim in
// flight; a create whose claim is gone writes nothing.
func testIdempotentCreate(e *env) {
	t := e.t
	completed := func(k registry.IdempotencyKey, typ string, created any) {
		t.Helper()
		rec, err := e.s.BeginIdempotent(e.ctx, k, ttl)
		ok(t, err)
		body, _ := json.Marshal(created)
		if rec == nil || !rec.Completed || rec.StatusCode != 201 || rec.Headers["X-Type"] != typ || string(rec.Body) != string(body) {
			t.Fatalf("%s: record after the create: %+v", k.Key, rec)
		}
		// Nothing is left for the caller to complete.
		wantCode(t, e.s.CompleteIdempotent(e.ctx, k, registry.IdempotencyRecord{StatusCode: 500}), registry.CodeNotFound)
	}

	ctx, c, _ := e.idempotentCreate(idemKey("model", "h"))
	m, err := e.s.CreateModel(ctx, e.actor, registry.ModelCreate{Name: "churn"})
	ok(t, err)
	if !c.Committed() {
		t.Fatal("CreateModel did not mark the claim committed")
	}
	completed(idemKey("model", "h"), "*registry.Model", m)

	ctx, c, _ = e.idempotentCreate(idemKey("version", "h"))
	v, err := e.s.CreateVersion(ctx, e.actor, "churn", e.versionCreate())
	ok(t, err)
	if !c.Committed() {
		t.Fatal("CreateVersion did not mark the claim committed")
	}
	completed(idemKey("version", "h"), "*registry.ModelVersion", v)

	// A dry run completes nothing; the real create does.
	in := registry.EndpointCreate{Name: "api", Model: "churn", Routes: []registry.Route{{Name: "a", Version: v.Version, UpstreamURL: "http://a:1", Weight: 100}}}
	ctx, c, _ = e.idempotentCreate(idemKey("endpoint", "h"))
	if checker, isChecker := e.s.(interface {
		CheckEndpointCreate(context.Context, registry.Actor, registry.EndpointCreate) (*registry.Endpoint, error)
	}); isChecker {
		_, err = checker.CheckEndpointCreate(ctx, e.actor, in)
		ok(t, err)
		if rec, err := e.s.BeginIdempotent(e.ctx, idemKey("endpoint", "h"), ttl); err != nil || rec == nil || rec.Completed || c.Committed() {
			t.Fatalf("a dry run touched the claim: %+v %v", rec, err)
		}
	}
	ep, err := e.s.CreateEndpoint(ctx, e.actor, in)
	ok(t, err)
	if !c.Committed() {
		t.Fatal("CreateEndpoint did not mark the claim committed")
	}
	completed(idemKey("endpoint", "h"), "*registry.Endpoint", ep)

	// A create that fails leaves the claim in flight, for the caller to
	// record the 4xx answer or abandon it.
	ctx, c, calls := e.idempotentCreate(idemKey("dup", "h"))
	_, err = e.s.CreateModel(ctx, e.actor, registry.ModelCreate{Name: "churn"})
	wantCode(t, err, registry.CodeAlreadyExists)
	if c.Committed() || *calls != 0 {
		t.Fatalf("failed create: committed %v, response rendered %d times", c.Committed(), *calls)
	}
	if rec, err := e.s.BeginIdempotent(e.ctx, idemKey("dup", "h"), ttl); err != nil || rec == nil || rec.Completed {
		t.Fatalf("failed create: claim %+v %v, want in flight", rec, err)
	}

	// A create whose claim is no longer in flight (completed, or taken over
	// by a retry after a minute) must not write a second object.
	events := len(e.events(registry.EventFilter{}))
	for _, k := range []registry.IdempotencyKey{
		idemKey("model", "h"),         // already completed
		idemKey("never-claimed", "h"), // no record at all
	} {
		c := &registry.IdempotentWrite{Key: k, Response: func(any) (registry.IdempotencyRecord, error) {
			return registry.IdempotencyRecord{StatusCode: 201}, nil
		}}
		_, err := e.s.CreateModel(registry.WithIdempotentWrite(e.ctx, c), e.actor, registry.ModelCreate{Name: "fraud"})
		wantCode(t, err, registry.CodeConflict, k.Key)
		if c.Committed() {
			t.Errorf("%s: marked committed", k.Key)
		}
	}
	e.clock.Advance(2 * time.Minute)
	ctx, _, _ = e.idempotentCreate(idemKey("slow", "h"))
	e.clock.Advance(2 * time.Minute)
	if rec, err := e.s.BeginIdempotent(e.ctx, idemKey("slow", "h"), ttl); err != nil || rec != nil {
		t.Fatalf("the retry must take over the abandoned claim: %+v %v", rec, err)
	}
	ok(t, e.s.CompleteIdempotent(e.ctx, idemKey("slow", "h"), registry.IdempotencyRecord{StatusCode: 201}))
	_, err = e.s.CreateModel(ctx, e.actor, registry.ModelCreate{Name: "fraud"})
	wantCode(t, err, registry.CodeConflict)
	_, err = e.s.GetModel(e.ctx, "fraud")
	wantCode(t, err, registry.CodeNotFound)
	equal(t, "events after refused creates", len(e.events(registry.EventFilter{})), events)
}

// testIdempotentUpdate: every other write a client may retry (updates,
// deletes, stage changes) completes the claim its ctx carries in its own
// transaction, with the object as the write left it (nil after a
// delete), so a retried conditional write replays instead of failing its
// own If-Match. A dry run completes nothing; a failed write leaves the
// claim in flight; a write whose claim is gone changes nothing.
func testIdempotentUpdate(e *env) {
	t := e.t
	e.model("churn")
	v1 := e.version("churn")
	v2 := e.version("churn")
	ep, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "api", Model: "churn",
		Routes: []registry.Route{{Name: "a", Version: v1.Version, UpstreamURL: "http://a:1", Weight: 100}}})
	ok(t, err)

	n := 0
	claim := func() (context.Context, *registry.IdempotentWrite, registry.IdempotencyKey, *int) {
		n++
		k := idemKey(fmt.Sprintf("write-%d", n), "h")
		k.Method = "PATCH"
		ctx, c, calls := e.idempotentCreate(k)
		return ctx, c, k, calls
	}
	completed := func(what string, k registry.IdempotencyKey, c *registry.IdempotentWrite, calls *int, typ string, written any) {
		t.Helper()
		if !c.Committed() || *calls == 0 {
			t.Fatalf("%s: committed %v, rendered %d times", what, c.Committed(), *calls)
		}
		rec, err := e.s.BeginIdempotent(e.ctx, k, ttl)
		ok(t, err)
		body, _ := json.Marshal(written)
		if rec == nil || !rec.Completed || rec.Headers["X-Type"] != typ || string(rec.Body) != string(body) {
			t.Fatalf("%s: record after the write: %+v", what, rec)
		}
		wantCode(t, e.s.CompleteIdempotent(e.ctx, k, registry.IdempotencyRecord{StatusCode: 500}), registry.CodeNotFound)
	}

	desc := "churn model"
	ctx, c, k, calls := claim()
	m, err := e.s.UpdateModel(ctx, e.actor, "churn", registry.ModelPatch{Description: &desc}, registry.Precondition{IfRevision: 1})
	ok(t, err)
	equal(t, "model revision", m.Revision, int64(2))
	completed("UpdateModel", k, c, calls, "*registry.Model", m)

	// A patch that changes nothing answers too: the retry gets that answer.
	ctx, c, k, calls = claim()
	m, err = e.s.UpdateModel(ctx, e.actor, "churn", registry.ModelPatch{Description: &desc}, registry.Precondition{})
	ok(t, err)
	completed("UpdateModel (no change)", k, c, calls, "*registry.Model", m)

	ctx, c, k, calls = claim()
	v, err := e.s.UpdateVersion(ctx, e.actor, "churn", v2.Version, registry.ModelVersionPatch{Description: &desc}, registry.Precondition{IfRevision: v2.Revision})
	ok(t, err)
	completed("UpdateVersion", k, c, calls, "*registry.ModelVersion", v)

	// A dry run completes nothing; the assignment does.
	ctx, c, k, calls = claim()
	_, err = e.s.AssignStage(ctx, e.actor, "churn", "staging", registry.StageAssign{Version: v1.Version}, registry.AssignOptions{DryRun: true})
	ok(t, err)
	if rec, err := e.s.BeginIdempotent(e.ctx, k, ttl); err != nil || rec == nil || rec.Completed || c.Committed() || *calls != 0 {
		t.Fatalf("a stage dry run touched the claim: %+v %v", rec, err)
	}
	a, err := e.s.AssignStage(ctx, e.actor, "churn", "staging", registry.StageAssign{Version: v1.Version}, registry.AssignOptions{})
	ok(t, err)
	completed("AssignStage", k, c, calls, "*registry.StageAssignment", a)

	routes := []registry.Route{{Name: "a", Version: v1.Version, UpstreamURL: "http://a:1", Weight: 50}, {Name: "b", Version: v2.Version, UpstreamURL: "http://b:1", Weight: 50}}
	ctx, c, k, calls = claim()
	if checker, isChecker := e.s.(interface {
		CheckEndpointUpdate(context.Context, registry.Actor, string, registry.EndpointPatch, registry.Precondition) (*registry.Endpoint, error)
	}); isChecker {
		_, err = checker.CheckEndpointUpdate(ctx, e.actor, "api", registry.EndpointPatch{Routes: &routes}, registry.Precondition{})
		ok(t, err)
		if rec, err := e.s.BeginIdempotent(e.ctx, k, ttl); err != nil || rec == nil || rec.Completed || c.Committed() {
			t.Fatalf("an endpoint dry run touched the claim: %+v %v", rec, err)
		}
	}
	ep, err = e.s.UpdateEndpoint(ctx, e.actor, "api", registry.EndpointPatch{Routes: &routes}, registry.Precondition{IfRevision: ep.Revision})
	ok(t, err)
	completed("UpdateEndpoint", k, c, calls, "*registry.Endpoint", ep)

	// A write that fails (here its If-Match) leaves the claim in flight,
	// for the caller to record the 4xx answer.
	events := len(e.events(registry.EventFilter{}))
	ctx, c, k, calls = claim()
	_, err = e.s.UpdateModel(ctx, e.actor, "churn", registry.ModelPatch{Description: &desc}, registry.Precondition{IfRevision: 1})
	wantCode(t, err, registry.CodePreconditionFailed)
	if c.Committed() || *calls != 0 {
		t.Fatalf("failed update: committed %v, rendered %d times", c.Committed(), *calls)
	}
	if rec, err := e.s.BeginIdempotent(e.ctx, k, ttl); err != nil || rec == nil || rec.Completed {
		t.Fatalf("failed update: claim %+v %v, want in flight", rec, err)
	}

	// A write whose claim is no longer in flight changes nothing.
	gone := &registry.IdempotentWrite{Key: idemKey("never-claimed", "h"), Response: func(any) (registry.IdempotencyRecord, error) {
		return registry.IdempotencyRecord{StatusCode: 200}, nil
	}}
	other := "other"
	_, err = e.s.UpdateModel(registry.WithIdempotentWrite(e.ctx, gone), e.actor, "churn", registry.ModelPatch{Description: &other}, registry.Precondition{})
	wantCode(t, err, registry.CodeConflict)
	err = e.s.DeleteEndpoint(registry.WithIdempotentWrite(e.ctx, gone), e.actor, "api", registry.Precondition{})
	wantCode(t, err, registry.CodeConflict)
	if m, err := e.s.GetModel(e.ctx, "churn"); err != nil || m.Description != desc {
		t.Fatalf("an update without its claim was applied: %+v %v", m, err)
	}
	equal(t, "events after refused writes", len(e.events(registry.EventFilter{})), events)

	// Deletes complete with nil (the server answers 204).
	ctx, c, k, calls = claim()
	ok(t, e.s.DeleteEndpoint(ctx, e.actor, "api", registry.Precondition{IfRevision: ep.Revision}))
	completed("DeleteEndpoint", k, c, calls, "<nil>", nil)

	ctx, c, k, calls = claim()
	ok(t, e.s.UnassignStage(ctx, e.actor, "churn", "staging", "", registry.Precondition{IfRevision: a.Revision}))
	completed("UnassignStage", k, c, calls, "<nil>", nil)

	ctx, c, k, calls = claim()
	ok(t, e.s.DeleteVersion(ctx, e.actor, "churn", v2.Version, registry.Precondition{IfRevision: v.Revision}))
	completed("DeleteVersion", k, c, calls, "<nil>", nil)

	ctx, c, k, calls = claim()
	ok(t, e.s.DeleteModel(ctx, e.actor, "churn", registry.DeleteModelOptions{Force: true}))
	completed("DeleteModel", k, c, calls, "<nil>", nil)
}
