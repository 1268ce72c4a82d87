package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func checksum(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func versionCreate(seed string, auc float64) registry.ModelVersionCreate {
	return registry.ModelVersionCreate{
		Source: "s3://models/" + seed, Checksum: checksum(seed), Format: "onnx",
		Metrics: map[string]float64{"auc": auc},
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitBatchAnswersEachWrite lines up writes behind a write the
// committer is running, so that all of them run in its batch, one after
// another, in one transaction: some succeed, one is a duplicate, one
// carries an If-Match made stale by a write before it in the batch, one
// is refused by a stage policy, one fails after it had written its
// version and event (its idempotency claim is gone), and one's caller
// leaves while it waits. Each caller must get its own answer, and the
// database (versions, counter, audit log, idempotency records) must hold
// exactly the accepted writes.
func TestGroupCommitBatchAnswersEachWrite(t *testing.T) {
	ctx := t.Context()
	s := open(t, sqliteDSN(t), Options{})
	if s.gc == nil {
		t.Fatal("SQLite store without group commit")
	}
	// Under -race on a loaded machine nine writes may take longer than a
	// batch may run; this test is about what one batch does.
	s.gc.maxTime = time.Minute
	actor := registry.Actor{Name: "alice"}
	m, err := s.CreateModel(ctx, actor, registry.ModelCreate{Name: "churn", StagePolicies: map[string]registry.StagePolicy{
		"production": {MinMetrics: map[string]float64{"auc": 0.9}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	good, err := s.CreateVersion(ctx, actor, "churn", versionCreate("good", 0.95))
	if err != nil {
		t.Fatal(err)
	}
	weak, err := s.CreateVersion(ctx, actor, "churn", versionCreate("weak", 0.5))
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.ListEvents(ctx, registry.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	lastEvent := before.Items[len(before.Items)-1].ID

	// Idempotency: "claimed" holds its key in flight, as the server
	// leaves it before the write; "lost" was never claimed (a retry took
	// it over), so its write must fail after writing and leave nothing.
	claimedKey := registry.IdempotencyKey{TokenID: 1, Key: "claimed", Method: "POST", Path: "/api/v1/models/churn/versions", RequestHash: "h"}
	if rec, err := s.BeginIdempotent(ctx, claimedKey, time.Hour); err != nil || rec != nil {
		t.Fatalf("claim: %v, %v", rec, err)
	}
	lostKey := registry.IdempotencyKey{TokenID: 1, Key: "lost", Method: "POST", Path: "/api/v1/models/churn/versions", RequestHash: "h"}
	idem := func(k registry.IdempotencyKey) (context.Context, *registry.IdempotentWrite) {
		c := &registry.IdempotentWrite{Key: k, Response: func(written any) (registry.IdempotencyRecord, error) {
			return registry.IdempotencyRecord{StatusCode: 201, Body: []byte(fmt.Sprintf("%v", written != nil))}, nil
		}}
		return registry.WithIdempotentWrite(ctx, c), c
	}

	// The blocker holds the committer inside its batch until released.
	entered, release := make(chan struct{}), make(chan struct{})
	blockerDone := make(chan error, 1)
	go func() {
		blockerDone <- s.inTx(ctx, "blocker", modeWrite, func(*txn) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	b0, w0 := s.GroupCommitStats()

	type answer struct {
		v   any
		err error
	}
	var (
		wg      sync.WaitGroup
		answers = map[string]*answer{}
		queued  = 0
	)
	// line starts write in its own goroutine and waits until it is queued,
	// so the batch runs the writes in the order listed.
	line := func(name string, write func() (any, error)) chan struct{} {
		a := &answer{}
		answers[name] = a
		returned := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(returned)
			a.v, a.err = write()
		}()
		queued++
		waitFor(t, name+" to queue", func() bool { return s.gc.queued() == queued })
		return returned
	}
	line("create", func() (any, error) { return s.CreateVersion(ctx, actor, "churn", versionCreate("new", 0.7)) })
	line("duplicate", func() (any, error) { return s.CreateVersion(ctx, actor, "churn", versionCreate("good", 0.95)) })
	desc := "first"
	line("update", func() (any, error) {
		return s.UpdateModel(ctx, actor, "churn", registry.ModelPatch{Description: &desc}, registry.Precondition{IfRevision: m.Revision})
	})
	stale := "second"
	line("stale if-match", func() (any, error) {
		return s.UpdateModel(ctx, actor, "churn", registry.ModelPatch{Description: &stale}, registry.Precondition{IfRevision: m.Revision})
	})
	line("policy refusal", func() (any, error) {
		return s.AssignStage(ctx, actor, "churn", "production", registry.StageAssign{Version: weak.Version}, registry.AssignOptions{})
	})
	line("assign", func() (any, error) {
		return s.AssignStage(ctx, actor, "churn", "production", registry.StageAssign{Version: good.Version}, registry.AssignOptions{})
	})
	cctx, cancel := context.WithCancel(ctx)
	left := line("caller left", func() (any, error) { return s.CreateVersion(cctx, actor, "churn", versionCreate("left", 0.7)) })
	cancel()
	<-left // its caller returned before the committer reached it
	lostCtx, _ := idem(lostKey)
	line("lost idempotency claim", func() (any, error) {
		return s.CreateVersion(lostCtx, actor, "churn", versionCreate("lost", 0.7))
	})
	claimedCtx, claimed := idem(claimedKey)
	line("idempotent create", func() (any, error) {
		return s.CreateVersion(claimedCtx, actor, "churn", versionCreate("claimed", 0.7))
	})

	close(release)
	wg.Wait()
	if err := <-blockerDone; err != nil {
		t.Fatalf("blocker: %v", err)
	}
	b1, w1 := s.GroupCommitStats()
	if b1-b0 != 1 || w1-w0 != int64(len(answers)) {
		t.Errorf("%d batches with %d writes, want the blocker and the %d writes that stayed in line in one batch",
			b1-b0, w1-w0, len(answers)-1)
	}

	want := map[string]registry.Code{
		"create": "", "duplicate": registry.CodeAlreadyExists, "update": "", "stale if-match": registry.CodePreconditionFailed,
		"policy refusal": registry.CodePolicyViolation, "assign": "", "lost idempotency claim": registry.CodeConflict,
		"idempotent create": "",
	}
	for name, code := range want {
		a := answers[name]
		if got := registry.ErrorCode(a.err); (code == "") != (a.err == nil) || (code != "" && got != code) {
			t.Errorf("%s: got %v (code %q), want code %q", name, a.err, got, code)
		}
	}
	if a := answers["caller left"]; !errors.Is(a.err, context.Canceled) {
		t.Errorf("caller left: got %v, want context.Canceled", a.err)
	}
	if !claimed.Committed() {
		t.Error("idempotent create: claim not marked committed")
	}
	created := answers["create"].v.(*registry.ModelVersion)
	idemCreated := answers["idempotent create"].v.(*registry.ModelVersion)
	// Numbers: the failed creates consumed none.
	if created.Version != weak.Version+1 || idemCreated.Version != weak.Version+2 {
		t.Errorf("version numbers %d, %d; want %d, %d (a failed create takes no number)",
			created.Version, idemCreated.Version, weak.Version+1, weak.Version+2)
	}

	// The database holds exactly the accepted writes.
	page, err := s.ListVersions(ctx, "churn", registry.VersionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, v := range page.Items {
		sums = append(sums, v.Checksum)
	}
	wantSums := []string{checksum("good"), checksum("weak"), checksum("new"), checksum("claimed")}
	if fmt.Sprint(sums) != fmt.Sprint(wantSums) {
		t.Errorf("versions %v, want %v", sums, wantSums)
	}
	got, err := s.GetModel(ctx, "churn")
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "first" || got.Revision != m.Revision+1 {
		t.Errorf("model description %q revision %d, want %q at %d", got.Description, got.Revision, "first", m.Revision+1)
	}
	st, err := s.GetStage(ctx, "churn", "production")
	if err != nil || st.Version != good.Version {
		t.Errorf("production: %+v, %v; want version %d", st, err, good.Version)
	}
	evs, err := s.ListEvents(ctx, registry.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs.Items {
		if e.ID > lastEvent {
			actions = append(actions, e.Action+" "+e.Subject)
		}
	}
	wantActions := []string{
		registry.ActionVersionCreate + " " + versionSubject("churn", created.Version),
		registry.ActionModelUpdate + " churn",
		registry.ActionStageAssign + " churn/production",
		registry.ActionVersionCreate + " " + versionSubject("churn", idemCreated.Version),
	}
	if fmt.Sprint(actions) != fmt.Sprint(wantActions) {
		t.Errorf("audit log after the batch:\n got %q\nwant %q", actions, wantActions)
	}
	rec, err := s.BeginIdempotent(ctx, claimedKey, time.Hour)
	if err != nil || rec == nil || !rec.Completed || rec.StatusCode != 201 {
		t.Errorf("claimed key after the batch: %+v, %v; want its completed record", rec, err)
	}
	if rec, err := s.BeginIdempotent(ctx, lostKey, time.Hour); err != nil || rec != nil {
		t.Errorf("lost key after the batch: %+v, %v; want no record (the failed write's completion rolled back)", rec, err)
	}
}

// TestAcknowledgedWritesSurviveReopen: 16 writers create versions at once
// (every fifth a duplicate that must fail alone); every version a writer
// was answered with is there, the same, after the store is closed and
// opened again, and nothing else is.
func TestAcknowledgedWritesSurviveReopen(t *testing.T) {
	dialects(t, func(t *testing.T, newDSN func(t *testing.T) string) {
		ctx := t.Context()
		dsn := newDSN(t)
		actor := registry.Actor{Name: "alice"}
		s, err := Open(ctx, dsn, Options{})
		if err != nil {
			t.Fatal(err)
		}
		const writers, each = 16, 30
		model := func(w int) string { return fmt.Sprintf("m%d", w) }
		for w := 0; w < writers; w++ {
			if _, err := s.CreateModel(ctx, actor, registry.ModelCreate{Name: model(w)}); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu    sync.Mutex
			acked = map[string]registry.ModelVersion{}
			wg    sync.WaitGroup
		)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					seed := fmt.Sprintf("%d-%d", w, i)
					if i%5 == 4 {
						seed = fmt.Sprintf("%d-%d", w, i-1) // a duplicate of the previous one
					}
					v, err := s.CreateVersion(ctx, actor, model(w), versionCreate(seed, 0.5))
					switch {
					case i%5 == 4:
						if registry.ErrorCode(err) != registry.CodeAlreadyExists {
							t.Errorf("duplicate %s: got %v, want already_exists", seed, err)
						}
					case err != nil:
						t.Errorf("create %s: %v", seed, err)
					default:
						mu.Lock()
						acked[versionSubject(v.Model, v.Version)] = *v
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = open(t, dsn, Options{})
		found := 0
		for w := 0; w < writers; w++ {
			page, err := s.ListVersions(ctx, model(w), registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: 100}})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Items {
				a, ok := acked[versionSubject(v.Model, v.Version)]
				if !ok {
					t.Errorf("version %s/%d is stored but no writer was answered with it", v.Model, v.Version)
					continue
				}
				found++
				if a.Checksum != v.Checksum || !a.CreatedAt.Equal(v.CreatedAt) {
					t.Errorf("version %s/%d: stored %s, acknowledged %s", v.Model, v.Version, v.Checksum, a.Checksum)
				}
			}
		}
		if want := writers * each * 4 / 5; found != len(acked) || found != want {
			t.Errorf("after reopening %d of %d acknowledged versions are there (want %d acknowledged)", found, len(acked), want)
		}
		evs, err := s.ListEvents(ctx, registry.EventFilter{ListOptions: registry.ListOptions{PageSize: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		if n, want := len(evs.Items), writers+len(acked); n != want || evs.NextPageToken != "" {
			t.Errorf("%d events (more: %v), want %d: one per model and acknowledged version", n, evs.NextPageToken != "", want)
		}
	})
}

// TestCloseUnderWriteLoad: Close while writers keep writing returns, and
// every writer is answered (a write the committer took but never ran
// would leave its caller waiting forever), each either with success or
// with unavailable.
func TestCloseUnderWriteLoad(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, sqliteDSN(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := s.CreateModel(ctx, registry.Actor{Name: "a"}, registry.ModelCreate{Name: fmt.Sprintf("m%d-%d", w, i)})
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					if code := registry.ErrorCode(err); code != registry.CodeUnavailable {
						t.Errorf("write during Close: %v (code %s), want unavailable", err, code)
					}
					return
				}
			}
		}()
	}
	for w := 0; w < 8; w++ {
		<-started
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	answered := make(chan struct{})
	go func() { wg.Wait(); close(answered) }()
	for _, c := range []struct {
		what string
		ch   <-chan struct{}
	}{{"Close", func() <-chan struct{} { d := make(chan struct{}); go func() { <-closed; close(d) }(); return d }()}, {"every writer", answered}} {
		select {
		case <-c.ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not return within 30s of Close", c.what)
		}
	}
}
