package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// PostgreSQL SQLSTATEs the store tells apart.
const (
	pgUniqueViolation      = "23505"
	pgForeignKeyViolation  = "23503"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgLockNotAvailable     = "55P03"
	pgQueryCanceled        = "57014"
	pgAdminShutdown        = "57P01"
	pgCrashShutdown        = "57P02"
	pgCannotConnectNow     = "57P03"
	pgTooManyConnections   = "53300"
)

// class is what a driver error means to the store.
type class int

const (
	classOther class = iota
	classUnique
	classForeignKey
	classRetry       // serialization failure or deadlock: run the transaction again
	classUnavailable // busy, locked, unreachable, timed out
)

// classify is the one place that reads driver-specific errors.
func classify(err error) class {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgUniqueViolation:
			return classUnique
		case pgForeignKeyViolation:
			return classForeignKey
		case pgSerializationFailure, pgDeadlockDetected:
			return classRetry
		case pgLockNotAvailable, pgQueryCanceled, pgAdminShutdown, pgCrashShutdown, pgCannotConnectNow, pgTooManyConnections:
			return classUnavailable
		}
		return classOther
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		code := liteErr.Code()
		switch code {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return classUnique
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return classForeignKey
		}
		switch code & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return classUnavailable
		}
		return classOther
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return classUnavailable
	case errors.As(err, &connErr), errors.As(err, &netErr):
		return classUnavailable
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return classUnavailable
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone):
		return classUnavailable
	case errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.ErrUnexpectedEOF), pgconn.SafeToRetry(err):
		// A pooled connection whose server went away: the database is
		// unreachable, not broken.
		return classUnavailable
	case pgconn.Timeout(err):
		return classUnavailable
	}
	return classOther
}

// retryable reports whether a failed write transaction should run again.
// Besides serialization failures and deadlocks, a unique violation on the
// first attempt is retried once: a concurrent writer created the row after
// this transaction looked, and the second run finds it and answers with
// its precise already_exists message.
func (s *Store) retryable(err error, attempt int) bool {
	var regErr *registry.Error
	if errors.As(err, &regErr) {
		return false
	}
	if errors.Is(err, errBatchAborted) {
		return true
	}
	switch classify(err) {
	case classRetry:
		return true
	case classUnique:
		return attempt == 1
	}
	return false
}

// normalize turns any error into a *registry.Error. Registry errors pass
// unchanged; driver errors become a code with a generic message that names
// the operation, and the original is logged, never returned (it may hold
// SQL, paths or addresses).
//
// The one exception: when ctx has ended, the caller stopped waiting (an
// HTTP client went away, a deadline passed) and the database did not fail,
// whatever the driver made of the interruption (SQLite reports
// SQLITE_INTERRUPT, pgx a canceled query or closed connection). The error
// then wraps ctx.Err(), so callers can tell it from an outage, and it is
// logged at debug only.
func (s *Store) normalize(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var regErr *registry.Error
	if errors.As(err, &regErr) {
		return regErr
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		s.log.DebugContext(ctx, "sqlstore: caller stopped waiting", "op", op, "err", err)
		return &contextEndedError{op: op, err: ctxErr}
	}
	if s.closed.Load() {
		s.log.Warn("sqlstore: store closed", "op", op, "err", err)
		return registry.Errorf(registry.CodeUnavailable, "%s: the database is closed (the server is shutting down), try again", op)
	}
	switch classify(err) {
	case classUnique:
		s.log.Info("sqlstore: unique violation", "op", op, "err", err)
		return registry.Errorf(registry.CodeAlreadyExists, "%s: the object already exists", op)
	case classForeignKey:
		s.log.Info("sqlstore: foreign key violation", "op", op, "err", err)
		return registry.Errorf(registry.CodeConflict, "%s: the change conflicts with objects that refer to it or that it refers to", op)
	case classRetry, classUnavailable:
		s.log.Warn("sqlstore: database unavailable", "op", op, "err", err)
		return registry.Errorf(registry.CodeUnavailable, "%s: the database is busy or unreachable, try again", op)
	}
	s.log.Error("sqlstore: database error", "op", op, "err", err)
	return registry.Errorf(registry.CodeInternal, "%s: internal error", op)
}

// contextEndedError is what the store answers when the caller's context
// ended during op. It wraps context.Canceled or context.DeadlineExceeded.
type contextEndedError struct {
	op  string
	err error
}

func (e *contextEndedError) Error() string { return "sqlstore: " + e.op + ": " + e.err.Error() }
func (e *contextEndedError) Unwrap() error { return e.err }
