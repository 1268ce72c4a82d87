package sqlstore

import (
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestReadStatementsPrepared: on SQLite a read's statements are prepared
// once, in the background, and later reads run the prepared statement
// with the same answers; reads that need a statement for the first time
// while every read connection is held by a transaction still finish; Close
// waits for the preparing.
func TestReadStatementsPrepared(t *testing.T) {
	s := open(t, sqliteDSN(t), Options{})
	ctx := t.Context()
	actor := registry.Actor{Name: "t"}
	if _, err := s.CreateModel(ctx, actor, registry.ModelCreate{Name: "churn"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVersion(ctx, actor, "churn", registry.ModelVersionCreate{
		Source: "s3://m/1", Checksum: "sha256:0000000000000000000000000000000000000000000000000000000000000001", Format: "onnx",
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AssignStage(ctx, actor, "churn", "staging", registry.StageAssign{Version: 1}, registry.AssignOptions{}); err != nil {
		t.Fatal(err)
	}
	first, err := s.GetVersion(ctx, "churn", 1)
	if err != nil {
		t.Fatal(err)
	}
	s.stmts.pending.Wait()
	s.stmts.mu.Lock()
	prepared := 0
	for _, st := range s.stmts.stmts {
		if st != nil {
			prepared++
		}
	}
	s.stmts.mu.Unlock()
	if prepared == 0 {
		t.Fatal("no statement was prepared after a read")
	}
	again, err := s.GetVersion(ctx, "churn", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(first, again) || len(again.Stages) != 1 {
		t.Fatalf("prepared read %+v, first read %+v", again, first)
	}

	// Hold every read connection in a transaction, and in each ask for
	// statements never seen before: none may wait for a connection.
	const readers = 8 // the read pool's size
	var started, release sync.WaitGroup
	started.Add(readers)
	release.Add(1)
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		go func() {
			errs <- s.inTx(ctx, "test", modeRead, func(tx *txn) error {
				started.Done()
				release.Wait()
				var n int
				return tx.queryRow(ctx, "SELECT COUNT(*) FROM model_versions WHERE version > ? AND model <> 'x"+string(rune('a'+i))+"'", 0).Scan(&n)
			})
		}()
	}
	started.Wait()
	release.Done()
	deadline := time.After(30 * time.Second)
	for i := 0; i < readers; i++ {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("reads with new statements did not finish while the read pool was full")
		}
	}
}
