package storetest

import (
	"fmt"
	"sync"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var concurrencyCases = []testCase{
	{"ConcurrentCreateVersion", testConcurrentCreateVersion},
	{"ConcurrentAssignStage", testConcurrentAssignStage},
	{"ConcurrentCreateModel", testConcurrentCreateModel},
}

// testConcurrentCreateVersion: 8 writers x 10 versions of one model get
// 80 distinct numbers, 1 to 80.
func testConcurrentCreateVersion(e *env) {
	t := e.t
	e.model("churn")
	const workers, each = 8, 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		numbers []int64
		errs    []error
		start   = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range each {
				vc := e.versionCreate()
				vc.Checksum = checksum(fmt.Sprintf("worker-%d-%d", w, i))
				v, err := e.s.CreateVersion(e.ctx, e.actor, "churn", vc)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					numbers = append(numbers, v.Version)
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("concurrent create: %v", err)
	}
	equal(t, "version numbers", sortedInts(numbers), seq(1, workers*each))
	equal(t, "stored versions", e.versionNumbers("churn", registry.VersionFilter{}), seq(1, workers*each))
	equal(t, "events", len(e.events(registry.EventFilter{Model: "churn"})), 1+workers*each)
}

// testConcurrentAssignStage: writers moving one stage at once leave a
// history in which every entry's previous_version is the entry before it,
// and a stage whose revision counts the entries.
func testConcurrentAssignStage(e *env) {
	t := e.t
	e.model("churn")
	const versions, workers, each = 4, 8, 6
	for range versions {
		e.version("churn")
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		start = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range each {
				v := int64((w+i)%versions + 1)
				_, err := e.s.AssignStage(e.ctx, e.actor, "churn", "staging", registry.StageAssign{Version: v, Reason: fmt.Sprintf("w%d-%d", w, i)}, registry.AssignOptions{})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("concurrent assign: %v", err)
	}

	h := e.history("churn", "staging") // newest first
	if len(h) == 0 {
		t.Fatal("no history")
	}
	for i := range h {
		older := int64(0)
		if i+1 < len(h) {
			older = h[i+1].Version
		}
		if h[i].PreviousVersion != older {
			t.Errorf("history entry %d: previous_version %d, but the entry before assigned %d", h[i].ID, h[i].PreviousVersion, older)
		}
		if h[i].Version == h[i].PreviousVersion {
			t.Errorf("history entry %d re-assigns the holder %d: no-ops must not be recorded", h[i].ID, h[i].Version)
		}
	}
	a, err := e.s.GetStage(e.ctx, "churn", "staging")
	ok(t, err)
	equal(t, "the stage holds the newest entry's version", a.Version, h[0].Version)
	equal(t, "revision counts the changes", a.Revision, int64(len(h)))
	assigns := 0
	for _, ev := range e.events(registry.EventFilter{Model: "churn"}) {
		if ev.Action == registry.ActionStageAssign {
			assigns++
		}
	}
	equal(t, "one event per change", assigns, len(h))
	held := 0
	for _, v := range e.versionNumbers("churn", registry.VersionFilter{Stage: "staging"}) {
		held++
		equal(t, "holder", v, a.Version)
	}
	equal(t, "versions holding the stage", held, 1)
}

// testConcurrentCreateModel: of writers creating the same model at once,
// one succeeds and the others get already_exists.
func testConcurrentCreateModel(e *env) {
	t := e.t
	const workers = 8
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, workers)
	)
	for w := range workers {
		wg.Go(func() {
			<-start
			_, errs[w] = e.s.CreateModel(e.ctx, e.actor, registry.ModelCreate{Name: "churn"})
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for _, err := range errs {
		if err == nil {
			created++
			continue
		}
		wantCode(t, err, registry.CodeAlreadyExists, `"churn"`)
	}
	equal(t, "models created", created, 1)
	equal(t, "events", len(e.events(registry.EventFilter{})), 1)
}
