package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestContextEndIsNotAnOutage: when the caller's context ends (the HTTP
// client went away, a deadline passed), the store answers with an error
// that wraps the context's error, not unavailable, and logs no "database
// unavailable" warning, whether the context ended before the query or in
// the middle of it (SQLite then reports SQLITE_INTERRUPT, pgx a
// canceled query).
func TestContextEndIsNotAnOutage(t *testing.T) {
	dialects(t, func(t *testing.T, newDSN func(t *testing.T) string) {
		var logs lockedBuffer
		s := open(t, newDSN(t), Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		check := func(what string, err, want error) {
			t.Helper()
			if !errors.Is(err, want) {
				t.Errorf("%s: got %v, want an error wrapping %v", what, err, want)
			}
			if code := registry.ErrorCode(err); code == registry.CodeUnavailable {
				t.Errorf("%s: code %s: a caller that stopped waiting is not a database outage", what, code)
			}
		}

		canceled, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.GetModel(canceled, "churn")
		check("read with a canceled context", err, context.Canceled)
		_, err = s.CreateModel(canceled, registry.Actor{Name: "a"}, registry.ModelCreate{Name: "churn"})
		check("write with a canceled context", err, context.Canceled)
		check("ping with a canceled context", s.Ping(canceled), context.Canceled)

		// Canceled while the database works: a query that never ends.
		endless := func(ctx context.Context) error {
			return s.inTx(ctx, "endless query", modeRead, func(tx *txn) error {
				var n int64
				return tx.queryRow(ctx, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c").Scan(&n)
			})
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		check("query canceled midway", endless(ctx), context.Canceled)
		ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		check("query past its deadline", endless(ctx), context.DeadlineExceeded)

		if out := logs.String(); strings.Contains(out, "database unavailable") || strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
			t.Errorf("a caller that stopped waiting is logged as a database failure:\n%s", out)
		}
	})
}
