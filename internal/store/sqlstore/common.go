package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// fromMicros turns a stored timestamp into the time the API answers with.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func optMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// toJSON encodes a column value. The store only encodes its own wire types
// and maps of strings and numbers, so an error here is a bug.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode json column: %w", err)
	}
	return string(b), nil
}

// nullJSON encodes v, or NULL when isNil.
func nullJSON(v any, isNil bool) (sql.NullString, error) {
	if isNil {
		return sql.NullString{}, nil
	}
	s, err := toJSON(v)
	return sql.NullString{String: s, Valid: true}, err
}

func fromJSON(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decode json column: %w", err)
	}
	return nil
}

func stringMap(s string) (map[string]string, error) {
	m := map[string]string{}
	if err := fromJSON(s, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]string{}
	}
	return m, nil
}

func nonNilStrings(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilFloats(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}

// sameJSON reports whether a and b encode alike: the test for a patch that
// changes nothing (it treats nil and empty alike where the wire does).
func sameJSON(a, b any) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// checkRevision applies a Precondition to the stored revision of thing.
func checkRevision(pre registry.Precondition, current int64, thing string) error {
	if !pre.Holds(current) {
		return registry.Errorf(registry.CodePreconditionFailed,
			"%s is at revision %d, not the expected revision %d; read it again and retry", thing, current, pre.IfRevision)
	}
	return nil
}

// cursor is the decoded page_token: the last sort key of the page before,
// and the list it belongs to, so a token is not reused on another list or
// order.
type cursor struct {
	List  string   `json:"l"`
	Name  string   `json:"n,omitempty"`
	ID    int64    `json:"i,omitempty"`
	Value *float64 `json:"v,omitempty"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // a struct of strings and numbers always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses a page token of the list named list; "" yields nil.
func decodeCursor(token, list string) (*cursor, error) {
	if token == "" {
		return nil, nil
	}
	bad := registry.FieldError("page_token", "invalid", "is not a page token of this list; start again without one")
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, bad
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.List != list {
		return nil, bad
	}
	return &c, nil
}

// pageSize applies the default and limit of registry.NormalizePageSize.
func pageSize(opts registry.ListOptions) (int, error) {
	return registry.NormalizePageSize(opts.PageSize)
}

// collect reads rows with scan into a page of at most size items; the query
// asked for size+1 rows so a further row means there is a next page, whose
// token next builds from the page's last item.
func collect[T any](rows *sql.Rows, size int, scan func(scanner) (T, error), next func(last T) cursor) (*registry.Page[T], error) {
	defer rows.Close()
	page := &registry.Page[T]{Items: []T{}}
	more := false
	for rows.Next() {
		if len(page.Items) == size {
			more = true
			break
		}
		item, err := scan(rows)
		if err != nil {
			return nil, err
		}
		page.Items = append(page.Items, item)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if more {
		page.NextPageToken = next(page.Items[len(page.Items)-1]).encode()
	}
	return page, nil
}

// event is an audit event to write in the current transaction.
type event struct {
	action      string
	subjectType string
	subject     string
	model       string
	endpoint    string
	// before and after are wire objects, nil for the side that does not
	// exist (create, delete).
	before, after any
	// cacheNeutral marks a write that changes no answer the read cache
	// holds (feedback sums, receipt keys): it leaves the change
	// generation alone, so a stream of such writes does not empty the
	// cache, nor queue on a model's change stamp on PostgreSQL.
	cacheNeutral bool
}

func (s *Store) addEvent(ctx context.Context, t *txn, actor registry.Actor, at time.Time, e event) error {
	// Every write has its event, so this is where a write moves the
	// change generation cached answers are checked against.
	if !t.changed && !e.cacheNeutral {
		t.changed = true
		t.afterCommit(s.committed)
	}
	if t.pg && e.model != "" && !e.cacheNeutral {
		if _, err := t.exec(ctx, `INSERT INTO change_stamps (model, changes) VALUES (?, 1)
			ON CONFLICT (model) DO UPDATE SET changes = change_stamps.changes + 1`, e.model); err != nil {
			return fmt.Errorf("change stamp: %w", err)
		}
	}
	before, err := nullJSON(e.before, e.before == nil)
	if err != nil {
		return err
	}
	after, err := nullJSON(e.after, e.after == nil)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO events
		(at, actor, action, subject_type, subject, model, endpoint, before_json, after_json, request_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		at.UnixMicro(), actor.Name, e.action, e.subjectType, e.subject, e.model, e.endpoint, before, after, actor.RequestID)
	if err != nil {
		return fmt.Errorf("insert event: %w", err)
	}
	return nil
}
