package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// abandonAfter is how long an in-flight record holds its key before a
// retry may claim it again (the request that claimed it probably died).
const abandonAfter = time.Minute

// idemWhere selects the record that holds a key: one per token and key
// (a unique index), whatever request claimed it.
const idemWhere = "token_id = ? AND idem_key = ?"

func idemArgs(k registry.IdempotencyKey) []any {
	return []any{k.TokenID, k.Key}
}

// inFlightWhere selects k's in-flight record, and only one claimed by the
// same request (method, path and, when k carries it, body hash): a request
// that lost its claim (in flight for over a minute, claimed again by a
// retry of another request) must not complete or drop the new claim.
func inFlightWhere(k registry.IdempotencyKey) (string, []any) {
	where, args := idemWhere+" AND method = ? AND path = ? AND completed = ?", append(idemArgs(k), k.Method, k.Path, false)
	if k.RequestHash != "" {
		where += " AND request_hash = ?"
		args = append(args, k.RequestHash)
	}
	return where, args
}

func validateIdempotencyKey(k registry.IdempotencyKey) error {
	if k.Key == "" {
		return registry.FieldError("Idempotency-Key", "required", "is required")
	}
	if len(k.Key) > 255 {
		return registry.FieldError("Idempotency-Key", "max_length", "must be at most 255 characters")
	}
	return nil
}

// BeginIdempotent claims k, or returns the record that holds its token's
// key, whatever request claimed it (the caller compares method, path and
// body). The claim is an INSERT ... ON CONFLICT DO NOTHING, so of two
// concurrent callers exactly one inserts; the other then reads (on
// PostgreSQL after the winner committed) and gets the winner's record.
func (s *Store) BeginIdempotent(ctx context.Context, k registry.IdempotencyKey, ttl time.Duration) (*registry.IdempotencyRecord, error) {
	if err := validateIdempotencyKey(k); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		rec, err := s.beginIdempotent(ctx, k, ttl)
		if errors.Is(err, errRetryIdempotency) && attempt < maxAttempts {
			continue
		}
		return rec, err
	}
}

func (s *Store) beginIdempotent(ctx context.Context, k registry.IdempotencyKey, ttl time.Duration) (*registry.IdempotencyRecord, error) {
	var out *registry.IdempotencyRecord
	err := s.inTx(ctx, "begin idempotent request", modeWrite, func(t *txn) error {
		out = nil
		now := s.clock()
		res, err := t.exec(ctx, `INSERT INTO idempotency
			(token_id, idem_key, method, path, request_hash, completed, status_code, headers, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 0, '{}', ?) ON CONFLICT DO NOTHING`,
			k.TokenID, k.Key, k.Method, k.Path, k.RequestHash, false, now.UnixMicro())
		if err != nil {
			return fmt.Errorf("claim idempotency key: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("claim idempotency key: %w", err)
		} else if n == 1 {
			return nil
		}
		rec, err := loadIdempotency(ctx, t, k, true)
		if err != nil {
			return err
		}
		if rec == nil {
			// Deleted between our insert and read: only possible on
			// PostgreSQL; running the transaction again claims it.
			return errRetryIdempotency
		}
		expired := ttl > 0 && !rec.CreatedAt.After(now.Add(-ttl))
		abandoned := !rec.Completed && !rec.CreatedAt.After(now.Add(-abandonAfter))
		if !expired && !abandoned {
			out = rec
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE idempotency SET method = ?, path = ?, request_hash = ?, completed = ?, status_code = 0, headers = '{}',
			body = NULL, created_at = ? WHERE `+idemWhere,
			append([]any{k.Method, k.Path, k.RequestHash, false, now.UnixMicro()}, idemArgs(k)...)...); err != nil {
			return fmt.Errorf("reclaim idempotency key: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var errRetryIdempotency = registry.Errorf(registry.CodeUnavailable, "idempotency key changed concurrently, try again")

func loadIdempotency(ctx context.Context, t *txn, k registry.IdempotencyKey, lock bool) (*registry.IdempotencyRecord, error) {
	q := "SELECT completed, method, path, request_hash, status_code, headers, body, created_at FROM idempotency WHERE " + idemWhere
	if lock {
		q += t.forUpdate()
	}
	var (
		rec     registry.IdempotencyRecord
		headers string
		created int64
	)
	err := t.queryRow(ctx, q, idemArgs(k)...).Scan(&rec.Completed, &rec.Method, &rec.Path, &rec.RequestHash, &rec.StatusCode, &headers, &rec.Body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load idempotency record: %w", err)
	}
	if rec.Headers, err = stringMap(headers); err != nil {
		return nil, err
	}
	rec.CreatedAt = fromMicros(created)
	return &rec, nil
}

// CompleteIdempotent stores the response of the request that holds k in
// flight. It fails with not_found when no in-flight record exists (it was
// abandoned, purged or already completed).
func (s *Store) CompleteIdempotent(ctx context.Context, k registry.IdempotencyKey, rec registry.IdempotencyRecord) error {
	if err := validateIdempotencyKey(k); err != nil {
		return err
	}
	return s.inTx(ctx, "complete idempotent request", modeWrite, func(t *txn) error {
		return completeIdempotency(ctx, t, k, rec)
	})
}

func completeIdempotency(ctx context.Context, t *txn, k registry.IdempotencyKey, rec registry.IdempotencyRecord) error {
	headers, err := toJSON(nonNilStrings(rec.Headers))
	if err != nil {
		return err
	}
	body := rec.Body
	if body == nil {
		body = []byte{}
	}
	where, args := inFlightWhere(k)
	res, err := t.exec(ctx, "UPDATE idempotency SET completed = ?, status_code = ?, headers = ?, body = ? WHERE "+where,
		append([]any{true, rec.StatusCode, headers, body}, args...)...)
	if err != nil {
		return fmt.Errorf("complete idempotency record: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("complete idempotency record: %w", err)
	}
	if n == 0 {
		return registry.Errorf(registry.CodeNotFound, "no in-flight request holds idempotency key %q", k.Key)
	}
	return nil
}

// completeWrite completes the idempotency claim ctx carries (see
// registry.IdempotentWrite), if any, with the answer for written (nil
// after a delete), inside the write's transaction t. Every write a client
// may retry calls it last, after its event (creates directly, the others
// through completing): the change, its event and the replayable answer
// commit together.
func completeWrite(ctx context.Context, t *txn, written any) error {
	c := registry.IdempotentWriteFrom(ctx)
	if c == nil {
		return nil
	}
	if err := validateIdempotencyKey(c.Key); err != nil {
		return err
	}
	rec, err := c.Response(written)
	if err != nil {
		return fmt.Errorf("render idempotent response: %w", err)
	}
	if err := completeIdempotency(ctx, t, c.Key, rec); err != nil {
		if registry.ErrorCode(err) == registry.CodeNotFound {
			// Writing now would apply one keyed request twice.
			return registry.Errorf(registry.CodeConflict,
				"this request no longer holds Idempotency-Key %q (it ran for over a minute and a retry took the key over); nothing was written", c.Key.Key)
		}
		return err
	}
	t.afterCommit(c.MarkCommitted)
	return nil
}

// completing wraps a write transaction's fn: once fn succeeds, the claim
// ctx carries is completed with written() (see completeWrite). written is
// nil for a delete. A dry run (mode other than modeWrite) completes
// nothing: its answer must never be replayed for the real write.
func completing(ctx context.Context, mode txMode, written func() any, fn func(t *txn) error) func(t *txn) error {
	return func(t *txn) error {
		if err := fn(t); err != nil {
			return err
		}
		if mode != modeWrite {
			return nil
		}
		var w any
		if written != nil {
			w = written()
		}
		return completeWrite(ctx, t, w)
	}
}

// AbandonIdempotent drops k's in-flight record; a completed one stays.
// Dropping nothing is not an error.
func (s *Store) AbandonIdempotent(ctx context.Context, k registry.IdempotencyKey) error {
	return s.inTx(ctx, "abandon idempotent request", modeWrite, func(t *txn) error {
		where, args := inFlightWhere(k)
		_, err := t.exec(ctx, "DELETE FROM idempotency WHERE "+where, args...)
		return err
	})
}

// PurgeIdempotency deletes records created before olderThan and returns
// how many.
func (s *Store) PurgeIdempotency(ctx context.Context, olderThan time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, "purge idempotency records", modeWrite, func(t *txn) error {
		res, err := t.exec(ctx, "DELETE FROM idempotency WHERE created_at < ?", olderThan.UnixMicro())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
