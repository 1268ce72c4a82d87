package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Group commit (SQLite). With synchronous=FULL every commit waits for an
// fsync, and SQLite has one writer at a time, so committing each write on
// its own caps writes at one fsync each. Instead one committer goroutine
// owns the write connection: it takes the first waiting write, begins a
// transaction (BEGIN IMMEDIATE), runs that write inside its own SAVEPOINT,
// then every further write that is already waiting, each in its own
// SAVEPOINT, and commits once. Only after the commit returned (the fsync
// is done) does it answer each caller.
//
// What each write keeps:
//   - atomicity: a write that fails (validation, conflict, 412, a stage
//     policy refusal, a driver error) is rolled back to its savepoint, its
//     change, event and idempotency completion alike, and only its caller
//     gets the error; the batch's other writes commit.
//   - isolation: the batch's writes run one after another on the one
//     connection that holds SQLite's write lock, so each decides on the
//     data the writes before it left, as if committed one by one.
//   - durability: nobody is answered before the commit that holds their
//     write returned. A failed commit fails every write in the batch.
//   - cancellation: a caller whose context ends before the committer took
//     its write is skipped and gets its context's error; once taken, the
//     write runs to the end (its statements ignore the caller's
//     cancellation, which could otherwise interrupt the shared
//     transaction) and the caller waits for the commit and gets the result.
//
// A lone writer waits for nobody: a batch ends as soon as no other write
// waits. A batch is bounded by maxBatchWrites writes and by maxBatchTime
// spent running them.
const (
	maxBatchWrites = 64
	maxBatchTime   = 10 * time.Millisecond
)

// Request states: a caller may abandon a write only while it is queued.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// writeReq is one write waiting for the committer.
type writeReq struct {
	ctx   context.Context
	mode  txMode
	fn    func(t *txn) error
	state atomic.Int32
	// done receives the write's outcome once its batch has committed (or
	// failed). Buffered: the committer never blocks on it.
	done chan error
	// t is the write's view of the batch transaction; its afterCommit
	// hooks run after the batch committed.
	t *txn
	// err is fn's outcome (nil for a write that stays in the batch).
	err error
}

// errBatchAborted answers writes whose savepoint had been released when a
// later write in the same batch broke the transaction (SQLite rolled it
// back on its own): nothing of theirs was committed, so they run again.
var errBatchAborted = errors.New("group commit: the batch's transaction was rolled back by a later write; run again")

// errStoreClosed answers writes submitted after Close.
var errStoreClosed = registry.Errorf(registry.CodeUnavailable, "the store is closed")

// committer runs SQLite's write transactions in batches.
type committer struct {
	db  *sql.DB
	log *slog.Logger
	// maxWrites and maxTime bound a batch (maxBatchWrites, maxBatchTime);
	// tests that line writes up in one batch raise maxTime.
	maxWrites int
	maxTime   time.Duration

	mu      sync.Mutex
	pending []*writeReq // in arrival order
	closed  bool
	wake    chan struct{} // capacity 1: "pending may not be empty"
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	batches, writes atomic.Int64 // committed batches and the writes in them

	stmts *batchStmts // only the committer goroutine uses it
}

// batchStmts keeps the write statements prepared on the write connection:
// parsing SQL is a good part of a write's time in SQLite, and the
// committer runs every write, so it would otherwise be its bottleneck.
// A statement is prepared (on the database, which has the one write
// connection) after the batch that first ran it, since the batch's
// transaction holds that connection; batches after it reuse it.
type batchStmts struct {
	db     *sql.DB
	stmts  map[string]*sql.Stmt
	missed []string
}

// maxBatchStmts bounds the cache; the store's writes use far fewer
// distinct statements.
const maxBatchStmts = 512

// stmt returns q prepared for tx, or nil when it is not prepared yet.
func (c *batchStmts) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	if st, ok := c.stmts[q]; ok {
		return tx.StmtContext(ctx, st)
	}
	c.missed = append(c.missed, q)
	return nil
}

// fill prepares the statements the last batch missed. It runs between
// batches, when the write connection is free.
func (c *batchStmts) fill() {
	for _, q := range c.missed {
		if _, ok := c.stmts[q]; ok || len(c.stmts) >= maxBatchStmts {
			continue
		}
		if st, err := c.db.PrepareContext(context.Background(), q); err == nil {
			c.stmts[q] = st
		}
	}
	c.missed = c.missed[:0]
}

func (c *batchStmts) close() {
	for _, st := range c.stmts {
		_ = st.Close()
	}
}

func newCommitter(s *Store) *committer {
	c := &committer{
		db:        s.w,
		log:       s.log,
		maxWrites: maxBatchWrites,
		maxTime:   maxBatchTime,
		stmts:     &batchStmts{db: s.w, stmts: map[string]*sql.Stmt{}},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go c.run()
	return c
}

// close stops the committer after the batch in progress; writes still
// waiting get errStoreClosed.
func (c *committer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

// submit hands fn to the committer and waits for its batch's outcome.
func (c *committer) submit(ctx context.Context, mode txMode, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{ctx: ctx, mode: mode, fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errStoreClosed
	}
	c.pending = append(c.pending, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err()
		}
		// The committer runs it: the answer comes with the batch's commit.
		return <-r.done
	}
}

// queued is how many writes wait for the committer (tests use it to
// line writes up behind a batch).
func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// next removes and returns the first waiting write that its caller has
// not abandoned, marking it taken; nil when none waits.
func (c *committer) next() *writeReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 {
		r := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			return r
		}
	}
	return nil
}

func (c *committer) run() {
	defer close(c.done)
	defer c.stmts.close()
	for {
		select {
		case <-c.wake:
			// Writes keep arriving under load: stop between batches.
			for !c.stopping() {
				first := c.next()
				if first == nil {
					break
				}
				c.batch(first)
				c.stmts.fill()
			}
		case <-c.stop:
			c.mu.Lock()
			c.closed = true
			pending := c.pending
			c.pending = nil
			c.mu.Unlock()
			for _, r := range pending {
				if r.state.CompareAndSwap(reqQueued, reqTaken) {
					r.done <- errStoreClosed
				}
			}
			return
		}
	}
}

func (c *committer) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// batch runs first and then every write waiting behind it, up to the
// batch's bounds, in one transaction, commits, and answers each.
func (c *committer) batch(first *writeReq) {
	// The batch's transaction belongs to no caller: one caller's
	// cancellation must not roll back the others' writes.
	tx, err := c.db.BeginTx(context.Background(), &sql.TxOptions{})
	if err != nil {
		first.done <- fmt.Errorf("begin: %w", err)
		return
	}
	started := time.Now()
	taken := []*writeReq{first}
	broken := c.runSavepoint(tx, first)
	for !broken && len(taken) < c.maxWrites && time.Since(started) < c.maxTime {
		r := c.next()
		if r == nil {
			break
		}
		taken = append(taken, r)
		broken = c.runSavepoint(tx, r)
	}
	if broken {
		_ = tx.Rollback()
		for _, r := range taken {
			if r.err == nil {
				r.err = errBatchAborted
			}
			r.done <- r.err
		}
		return
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("commit: %w", err)
		for _, r := range taken {
			if r.err == nil {
				r.err = err
			}
			r.done <- r.err
		}
		return
	}
	c.batches.Add(1)
	c.writes.Add(int64(len(taken)))
	for _, r := range taken {
		if r.err == nil && r.mode == modeWrite {
			for _, f := range r.t.committed {
				f()
			}
		}
		r.done <- r.err
	}
}

// runSavepoint runs r's write in its own savepoint of tx, keeping it when
// it succeeded (and is not a dry run) and rolling it back otherwise. It
// reports whether tx is unusable afterwards: SQLite rolls a whole
// transaction back on some errors (disk full, I/O error), and then the
// savepoint is gone.
func (c *committer) runSavepoint(tx *sql.Tx, r *writeReq) (broken bool) {
	bg := context.WithoutCancel(r.ctx)
	if _, err := tx.ExecContext(bg, "SAVEPOINT w"); err != nil {
		r.err = fmt.Errorf("savepoint: %w", err)
		return true
	}
	r.t = &txn{tx: tx, stmtCtx: bg, wstmts: c.stmts}
	r.err = c.call(r)
	if r.err == nil && r.mode == modeWrite {
		if _, err := tx.ExecContext(bg, "RELEASE w"); err != nil {
			r.err = fmt.Errorf("release savepoint: %w", err)
			return true
		}
		return false
	}
	if _, err := tx.ExecContext(bg, "ROLLBACK TO w"); err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("rollback to savepoint: %w", err)
		}
		return true
	}
	if _, err := tx.ExecContext(bg, "RELEASE w"); err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("release savepoint: %w", err)
		}
		return true
	}
	return false
}

// call runs r.fn; a panic becomes that write's error instead of taking
// the committer (and every other caller) down.
func (c *committer) call(r *writeReq) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("sqlstore: write panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	return r.fn(r.t)
}

// GroupCommitStats reports how many batches the committer has committed
// and how many writes they held (both 0 without group commit): writes /
// batches is the mean batch size, fsyncs saved is writes - batches.
func (s *Store) GroupCommitStats() (batches, writes int64) {
	if s.gc == nil {
		return 0, 0
	}
	return s.gc.batches.Load(), s.gc.writes.Load()
}
