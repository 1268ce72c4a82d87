package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// raceWriters is how many clients race for each revision.
const raceWriters = 16

// raceRound sends raceWriters requests at once, each built by body(i),
// all with the same If-Match, and returns the statuses and the bodies of
// the accepted ones.
func (e *testEnv) raceRound(method, path string, etag string, body func(i int) any) (statuses []int, accepted [][]byte) {
	e.t.Helper()
	statuses = make([]int, raceWriters)
	bodies := make([][]byte, raceWriters)
	errs := make([]error, raceWriters)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range raceWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := json.Marshal(body(i))
			if err != nil {
				errs[i] = err
				return
			}
			r, err := http.NewRequest(method, e.url+path, bytes.NewReader(b))
			if err != nil {
				errs[i] = err
				return
			}
			r.Header.Set("Authorization", "Bearer "+e.writer)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("If-Match", etag)
			<-start
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				errs[i] = err
				return
			}
			defer res.Body.Close()
			statuses[i] = res.StatusCode
			bodies[i], errs[i] = io.ReadAll(res.Body)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.t.Fatalf("writer %d: %v", i, err)
		}
		if statuses[i] == http.StatusOK {
			accepted = append(accepted, bodies[i])
		}
	}
	return statuses, accepted
}

// TestConcurrentWritersOneWinnerPerRevision: 16 writers holding the same
// ETag race to update one model and to move one stage. Exactly one wins
// each revision, every other gets 412 (never 500 or 503), and every
// accepted change is in the audit log. On SQLite and PostgreSQL, over
// HTTP.
func TestConcurrentWritersOneWinnerPerRevision(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		m := e.createModel(registry.ModelCreate{Name: "churn"})
		for i := 1; i <= raceWriters; i++ {
			e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha(strconv.Itoa(i))})
		}
		a := into[registry.StageAssignment](t, e.assign("churn", "production", 1, e.writer, http.StatusOK))

		const rounds = 10
		modelRev, stageRev := m.Revision, a.Revision
		for round := range rounds {
			events := e.countEvents()

			statuses, accepted := e.raceRound("PATCH", "/api/v1/models/churn", strconv.Quote(itoa(modelRev)), func(i int) any {
				return map[string]any{"description": fmt.Sprintf("round %d writer %d", round, i)}
			})
			checkOneWinner(t, "model update", round, statuses, accepted)
			won := into[registry.Model](t, &resp{body: accepted[0]})
			if won.Revision != modelRev+1 {
				t.Fatalf("round %d: model revision %d, want %d", round, won.Revision, modelRev+1)
			}
			modelRev = won.Revision

			statuses, accepted = e.raceRound("PUT", "/api/v1/models/churn/stages/production", strconv.Quote(itoa(stageRev)), func(i int) any {
				// Every writer moves the stage somewhere else than where it is.
				v := int64(i%raceWriters) + 1
				if v == a.Version {
					v = v%raceWriters + 1
				}
				return registry.StageAssign{Version: v, Reason: fmt.Sprintf("round %d writer %d", round, i)}
			})
			checkOneWinner(t, "stage assignment", round, statuses, accepted)
			a = into[registry.StageAssignment](t, &resp{body: accepted[0]})
			if a.Revision != stageRev+1 {
				t.Fatalf("round %d: stage revision %d, want %d", round, a.Revision, stageRev+1)
			}
			stageRev = a.Revision

			// Exactly the two accepted changes were audited, with what won.
			evs := into[registry.Page[registry.Event]](t, e.do(req{method: "GET", path: "/api/v1/events?model=churn&page_size=1000", token: e.reader}, http.StatusOK))
			if got := e.countEvents() - events; got != 2 {
				t.Fatalf("round %d: %d events for 2 accepted changes", round, got)
			}
			last := evs.Items[len(evs.Items)-2:]
			if last[0].Action != registry.ActionModelUpdate || last[1].Action != registry.ActionStageAssign {
				t.Fatalf("round %d: last events %s, %s", round, last[0].Action, last[1].Action)
			}
			var after registry.StageAssignment
			if err := json.Unmarshal(last[1].After, &after); err != nil || after.Version != a.Version || after.Reason != a.Reason {
				t.Fatalf("round %d: audited assignment %+v (%v), accepted %+v", round, after, err, a)
			}
		}
		hist := into[registry.Page[registry.StageHistoryEntry]](t, e.do(req{method: "GET", path: "/api/v1/models/churn/stages/production/history?page_size=1000", token: e.reader}, http.StatusOK))
		if len(hist.Items) != rounds+1 {
			t.Errorf("stage history has %d entries, want %d", len(hist.Items), rounds+1)
		}
	})
}

func checkOneWinner(t *testing.T, what string, round int, statuses []int, accepted [][]byte) {
	t.Helper()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if counts[http.StatusOK] != 1 || counts[http.StatusPreconditionFailed] != raceWriters-1 {
		t.Fatalf("%s round %d: statuses %v, want one 200 and %d x 412", what, round, counts, raceWriters-1)
	}
	if len(accepted) != 1 {
		t.Fatalf("%s round %d: %d accepted", what, round, len(accepted))
	}
}
