// Package sqlstore is the registry's one database/sql implementation of
// registry.Store, with two dialects: SQLite (modernc.org/sqlite, pure Go,
// the default) and PostgreSQL (pgx stdlib driver, for several replicas).
//
// Every write is one transaction that decides its rules on the data it
// reads, writes the change and its audit event, and commits. SQLite
// serialises writers on a one-connection write pool whose transactions
// begin with BEGIN IMMEDIATE, and commits waiting writes together (group
// commit, groupcommit.go: one fsync for a batch, each write in its own
// savepoint);
// PostgreSQL locks the rows a write reads (SELECT ... FOR UPDATE, the
// model's row for anything under a model) and retries a transaction that
// loses a serialization or deadlock race.
//
// It imports registry and database drivers only; never server, gateway,
// provider or app.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	// Database drivers: "pgx" and "sqlite".
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Dialect names returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Options configures Open.
type Options struct {
	// Now is the clock for every timestamp and policy check; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives driver errors (they never reach returned messages);
	// nil discards them.
	Logger *slog.Logger
	// NoMigrate makes Open skip applying migrations.
	NoMigrate bool
	// NoGroupCommit makes every SQLite write commit in its own transaction
	// (one fsync each) instead of in a batch with the writes waiting
	// beside it. Equally durable, slower under concurrent writes; it exists
	// so benchmarks can compare the two. PostgreSQL never batches.
	NoGroupCommit bool
	// ChangePoll is how often Changes looks for commits made by other
	// processes (other replicas); 0 = 200ms.
	ChangePoll time.Duration
}

// Store is the database/sql registry.Store.
type Store struct {
	dialect string
	// w runs write transactions, r reads. On SQLite w has one connection
	// that begins with BEGIN IMMEDIATE, so writers queue in the pool instead
	// of failing to upgrade a read lock; r is a separate pool of readers that
	// WAL lets run beside the writer. On PostgreSQL both are the same pool.
	w, r *sql.DB
	// stmts caches the read pool's prepared statements (SQLite only).
	stmts *stmtCache
	now   func() time.Time
	log   *slog.Logger
	// gc runs SQLite's write transactions in batches; nil on PostgreSQL
	// and with Options.NoGroupCommit.
	gc *committer
	// closed is set by Close: a request still running during shutdown
	// then gets unavailable (try another replica) instead of internal.
	closed atomic.Bool

	changes    changeState
	changePoll time.Duration
	// sqlitePath is the database file (SQLite only): Changes opens its
	// own connection to it.
	sqlitePath string
}

var _ registry.Store = (*Store)(nil)

// SQLite connection settings, applied by the driver to every pooled
// connection: WAL lets readers run beside the writer, synchronous=FULL makes
// a commit durable, busy_timeout makes a second process wait for the lock.
const sqlitePragmas = "_pragma=busy_timeout(10000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(FULL)" +
	"&_pragma=foreign_keys(1)"

// parseDSN splits a --db value into a dialect and what its driver opens.
//
//	sqlite://./rel/path.db, sqlite:///abs/path.db, sqlite:path.db, path.db  -> sqlite, file path
//	postgres://..., postgresql://...                                        -> postgres, the DSN as is
func parseDSN(dsn string) (dialect, target string, err error) {
	dsn = strings.TrimSpace(dsn)
	switch {
	case dsn == "":
		return "", "", errors.New("empty database DSN")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return "", "", errors.New("malformed postgres DSN")
		}
		return DialectPostgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		target = strings.TrimPrefix(dsn, "sqlite://")
	case strings.HasPrefix(dsn, "sqlite:"):
		target = strings.TrimPrefix(dsn, "sqlite:")
	case strings.Contains(dsn, "://"):
		scheme, _, _ := strings.Cut(dsn, "://")
		return "", "", fmt.Errorf("unsupported database scheme %q (want sqlite:// or postgres://)", scheme)
	default:
		target = dsn
	}
	if target == "" {
		return "", "", errors.New("sqlite DSN has no file path")
	}
	if strings.ContainsRune(target, '?') {
		return "", "", errors.New("sqlite DSN takes no query parameters: the store sets its own pragmas")
	}
	if target == ":memory:" || strings.HasPrefix(target, "file:") {
		return "", "", errors.New("sqlite DSN must be a file path (in-memory databases are not supported: use a file in a temporary directory)")
	}
	return DialectSQLite, target, nil
}

// Open connects to the database named by dsn and, unless opts.NoMigrate,
// applies pending migrations. A SQLite file's directory is created if
// missing.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	dialect, target, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	s := &Store{dialect: dialect, now: opts.Now, log: opts.Logger, changePoll: opts.ChangePoll}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch dialect {
	case DialectSQLite:
		if dir := filepath.Dir(target); dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("sqlstore: create database directory: %w", err)
			}
		}
		w, err := sql.Open("sqlite", target+"?"+sqlitePragmas+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("sqlstore: open %s: %w", target, err)
		}
		w.SetMaxOpenConns(1)
		r, err := sql.Open("sqlite", target+"?"+sqlitePragmas)
		if err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("sqlstore: open %s: %w", target, err)
		}
		r.SetMaxOpenConns(8)
		r.SetMaxIdleConns(8)
		s.w, s.r = w, r
		s.stmts = newStmtCache(r)
		s.sqlitePath = target
	case DialectPostgres:
		db, err := sql.Open("pgx", target)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: open %s: %w", RedactDSN(target), err)
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.w, s.r = db, db
	}
	// The write pool connects first so that SQLite switches the file to WAL
	// before any reader opens it.
	if err := s.w.PingContext(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("sqlstore: connect to %s: %w", RedactDSN(target), err)
	}
	if !opts.NoMigrate {
		if _, err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	if dialect == DialectSQLite && !opts.NoGroupCommit {
		s.gc = newCommitter(s)
	}
	return s, nil
}

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return s.normalize(ctx, "ping", err)
	}
	if s.w != s.r {
		if err := s.w.PingContext(ctx); err != nil {
			return s.normalize(ctx, "ping", err)
		}
	}
	return nil
}

// Close finishes the write batch in progress and closes the connection
// pools. Writes still waiting fail with unavailable.
func (s *Store) Close() error {
	s.closed.Store(true)
	if s.gc != nil {
		s.gc.close()
	}
	if s.changes.c != nil {
		s.changes.c.close()
	}
	var err error
	if s.stmts != nil {
		err = s.stmts.close()
	}
	err = errors.Join(err, s.r.Close())
	if s.w != s.r {
		err = errors.Join(err, s.w.Close())
	}
	return err
}

// clock returns the current time as the store keeps it: UTC, truncated to
// microseconds (what both dialects store).
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// txn is a transaction that speaks the store's SQL (? placeholders) on
// either dialect.
type txn struct {
	tx *sql.Tx
	// db runs the statements of a modeReadOne read, which has no tx.
	db *sql.DB
	pg bool
	// stmts, set on SQLite read transactions, prepares their queries once.
	stmts *stmtCache
	// committed runs after a successful commit, never on rollback.
	committed []func()
	// changed is set once the transaction has registered the change
	// generation's after-commit hook.
	changed bool
	// stmtCtx, when set, replaces the context every statement is given: a
	// write in a group commit batch runs to its end whatever its caller
	// does, since interrupting a statement may roll back the batch's
	// whole transaction.
	stmtCtx context.Context
	// wstmts, when set, holds prepared statements to run instead of
	// preparing each statement again (the group committer's).
	wstmts *batchStmts
}

// afterCommit runs f once this transaction has committed.
func (t *txn) afterCommit(f func()) { t.committed = append(t.committed, f) }

func (t *txn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx, q = t.ctx(ctx), t.rebind(q)
	if t.tx == nil {
		return nil, errors.New("sqlstore: a write outside a transaction")
	}
	if st := t.prepared(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t *txn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	q = t.rebind(q)
	if t.tx == nil {
		return t.db.QueryContext(ctx, q, args...)
	}
	if st := t.prepared(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t *txn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	q = t.rebind(q)
	if t.tx == nil {
		return t.db.QueryRowContext(ctx, q, args...)
	}
	if st := t.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t *txn) ctx(ctx context.Context) context.Context {
	if t.stmtCtx != nil {
		return t.stmtCtx
	}
	return ctx
}

// prepared is q prepared for this write transaction by the group
// committer's statement cache, or nil.
func (t *txn) prepared(ctx context.Context, q string) *sql.Stmt {
	if t.wstmts == nil {
		return nil
	}
	return t.wstmts.stmt(ctx, t.tx, q)
}

// forUpdate is the row-lock suffix of a SELECT that a write decides on. On
// SQLite the whole write transaction already holds the database's write
// lock.
func (t *txn) forUpdate() string {
	if t.pg {
		return " FOR UPDATE"
	}
	return ""
}

// rebind turns ? placeholders into $1, $2, ... for PostgreSQL. The store's
// queries never contain a literal question mark.
func (t *txn) rebind(q string) string {
	if !t.pg || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

type txMode int

const (
	modeRead   txMode = iota // read-only transaction on the read pool
	modeWrite                // write transaction, committed
	modeDryRun               // write transaction (same locks), rolled back
	// modeReadOne runs a read on the read pool without a transaction: for
	// reads of one statement (a statement sees one snapshot) or whose
	// statements need not agree with each other.
	modeReadOne
)

// maxAttempts bounds how often a write transaction is run when PostgreSQL
// reports a serialization failure or deadlock.
const maxAttempts = 5

// inTx runs fn in one transaction and normalises its error. Writes are
// retried on transient PostgreSQL conflicts; fn must therefore not have
// effects outside the transaction other than setting its results.
func (s *Store) inTx(ctx context.Context, op string, mode txMode, fn func(t *txn) error) error {
	for attempt := 1; ; attempt++ {
		var err error
		if (mode == modeWrite || mode == modeDryRun) && s.gc != nil {
			err = s.gc.submit(ctx, mode, fn)
		} else {
			err = s.runTx(ctx, mode, fn)
		}
		if err == nil {
			return nil
		}
		if (mode == modeWrite || mode == modeDryRun) && attempt < maxAttempts && s.retryable(err, attempt) {
			s.log.DebugContext(ctx, "sqlstore: retrying transaction", "op", op, "attempt", attempt, "err", err)
			continue
		}
		return s.normalize(ctx, op, err)
	}
}

func (s *Store) runTx(ctx context.Context, mode txMode, fn func(t *txn) error) (err error) {
	if mode == modeReadOne {
		return fn(&txn{db: s.r, pg: s.dialect == DialectPostgres, stmts: s.stmts})
	}
	db, opts := s.w, &sql.TxOptions{}
	if mode == modeRead {
		db, opts = s.r, &sql.TxOptions{ReadOnly: true}
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil || mode != modeWrite {
			_ = tx.Rollback()
		}
	}()
	t := &txn{tx: tx, pg: s.dialect == DialectPostgres}
	if mode == modeRead {
		t.stmts = s.stmts
	}
	if err := fn(t); err != nil {
		return err
	}
	if mode != modeWrite {
		return nil
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, f := range t.committed {
		f()
	}
	return nil
}
