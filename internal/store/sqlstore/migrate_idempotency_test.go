package sqlstore

import (
	"testing"
)

// TestMigrateIdempotencyScope: a database that holds one token's key under
// several requests (allowed before keys were scoped to one request) keeps
// the newest record per token and key, and then refuses a second one.
func TestMigrateIdempotencyScope(t *testing.T) {
	dialects(t, func(t *testing.T, newDSN func(t *testing.T) string) {
		ctx := t.Context()
		dsn := newDSN(t)
		s := open(t, dsn, Options{})
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := s.w.ExecContext(ctx, s.rebind(q), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		// Back to the schema before the migration, with rows it allowed;
		// later migrations stay applied, so the migration's own SQL runs.
		exec("DROP INDEX idempotency_token_key")
		insert := "INSERT INTO idempotency (token_id, idem_key, method, path, request_hash, completed, status_code, headers, created_at) VALUES (?, ?, ?, ?, 'h', ?, 200, '{}', ?)"
		exec(insert, 1, "k", "PATCH", "/api/v1/models/a", true, 10)
		exec(insert, 1, "k", "PATCH", "/api/v1/models/b", true, 20)
		exec(insert, 1, "k", "DELETE", "/api/v1/models/b", true, 20)
		exec(insert, 2, "k", "PATCH", "/api/v1/models/a", true, 5)
		ms, err := loadMigrations(s.dialect)
		if err != nil {
			t.Fatal(err)
		}
		if m := ms[6]; m.name != "0007_idempotency_scope.sql" {
			t.Fatalf("migration 7 is %s", m.name)
		} else {
			exec(m.sql)
		}
		rows, err := s.r.QueryContext(ctx, "SELECT token_id, method, path FROM idempotency ORDER BY token_id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var id int64
			var method, path string
			if err := rows.Scan(&id, &method, &path); err != nil {
				t.Fatal(err)
			}
			got = append(got, method+" "+path)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		want := []string{"PATCH /api/v1/models/b", "PATCH /api/v1/models/a"}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("records after the migration: %q, want %q", got, want)
		}
		if _, err := s.w.ExecContext(ctx, s.rebind(insert), 1, "k", "POST", "/api/v1/models", false, 30); err == nil {
			t.Errorf("a second record under token 1's key was stored after the migration")
		}
	})
}
