package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const eventCols = "id, at, actor, action, subject_type, subject, model, endpoint, before_json, after_json, request_id"

func scanEvent(sc scanner) (registry.Event, error) {
	var (
		e             registry.Event
		at            int64
		before, after sql.NullString
	)
	if err := sc.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.SubjectType, &e.Subject, &e.Model, &e.Endpoint, &before, &after, &e.RequestID); err != nil {
		return e, err
	}
	e.Time = fromMicros(at)
	if before.Valid {
		e.Before = json.RawMessage(before.String)
	}
	if after.Valid {
		e.After = json.RawMessage(after.String)
	}
	return e, nil
}

// ListEvents lists audit events oldest first.
func (s *Store) ListEvents(ctx context.Context, f registry.EventFilter) (*registry.Page[registry.Event], error) {
	size, err := pageSize(f.ListOptions)
	if err != nil {
		return nil, err
	}
	const list = "events"
	cur, err := decodeCursor(f.PageToken, list)
	if err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	if cur != nil {
		where = append(where, "id > ?")
		args = append(args, cur.ID)
	}
	if f.Model != "" {
		where = append(where, "model = ?")
		args = append(args, f.Model)
	}
	if f.Endpoint != "" {
		where = append(where, "endpoint = ?")
		args = append(args, f.Endpoint)
	}
	if !f.Since.IsZero() {
		// Round up: stored times are whole microseconds, and "at or after"
		// a time with nanoseconds excludes the microsecond it falls in.
		since := f.Since.Truncate(time.Microsecond)
		if since.Before(f.Since) {
			since = since.Add(time.Microsecond)
		}
		where = append(where, "at >= ?")
		args = append(args, since.UnixMicro())
	}
	q := "SELECT " + eventCols + " FROM events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id LIMIT ?"
	args = append(args, size+1)

	var page *registry.Page[registry.Event]
	err = s.inTx(ctx, "list events", modeRead, func(t *txn) error {
		rows, err := t.query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list events: %w", err)
		}
		page, err = collect(rows, size, scanEvent, func(e registry.Event) cursor {
			return cursor{List: list, ID: e.ID}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}
