package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migrations are forward-only SQL files per dialect, named NNNN_name.sql.
// A file once released is never edited; a change is a new file.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migrateLockKey is the pg_advisory_xact_lock key that serialises
// migrations of replicas starting at once ("mlregmig" as bytes).
const migrateLockKey int64 = 0x6d6c7265676d6967

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(dialect string) ([]migration, error) {
	dir := "migrations/" + dialect
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(prefix)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("sqlstore: migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: n, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("sqlstore: migrations of %s are not numbered 1, 2, 3, ...: found %d at position %d", dialect, m.version, i+1)
		}
	}
	return ms, nil
}

// latestSchemaVersion is the schema version this binary's migrations reach
// for the dialect.
func latestSchemaVersion(dialect string) (int, error) {
	ms, err := loadMigrations(dialect)
	if err != nil {
		return 0, err
	}
	return len(ms), nil
}

const createSchemaVersion = `CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
)`

// Migrate applies the pending migrations, each in its own transaction, and
// returns the versions it applied (none when the schema is current). It is
// safe to run from several processes at once: SQLite's BEGIN IMMEDIATE and
// PostgreSQL's advisory lock let one apply a migration while the others
// wait and then find it applied. A database newer than this binary is an
// error.
func (s *Store) Migrate(ctx context.Context) (applied []int, err error) {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		did := false
		err := s.runTx(ctx, modeWrite, func(t *txn) error {
			if t.pg {
				if _, err := t.exec(ctx, "SELECT pg_advisory_xact_lock(?)", migrateLockKey); err != nil {
					return fmt.Errorf("lock: %w", err)
				}
			}
			if _, err := t.exec(ctx, createSchemaVersion); err != nil {
				return fmt.Errorf("create schema_version: %w", err)
			}
			var current int
			if err := t.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&current); err != nil {
				return fmt.Errorf("read schema_version: %w", err)
			}
			if current > len(ms) {
				return &schemaTooNewError{have: current, want: len(ms)}
			}
			if current >= m.version {
				return nil
			}
			if _, err := t.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			if _, err := t.exec(ctx, "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, s.clock().UnixMicro()); err != nil {
				return fmt.Errorf("record: %w", err)
			}
			did = true
			return nil
		})
		if err != nil {
			var tooNew *schemaTooNewError
			if errors.As(err, &tooNew) {
				return applied, fmt.Errorf("sqlstore: %w", err)
			}
			return applied, fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
		}
		if did {
			s.log.InfoContext(ctx, "sqlstore: applied migration", "dialect", s.dialect, "version", m.version, "name", m.name)
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

type schemaTooNewError struct{ have, want int }

func (e *schemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this binary's %d; upgrade mlregistry", e.have, e.want)
}

// SchemaVersion returns the version of the last applied migration, 0 for
// an empty database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var version int
	err := s.runTx(ctx, modeRead, func(t *txn) error {
		var exists bool
		var q string
		if t.pg {
			q = "SELECT to_regclass('schema_version') IS NOT NULL"
		} else {
			q = "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
		}
		if err := t.queryRow(ctx, q).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return nil
		}
		var v sql.NullInt64
		if err := t.queryRow(ctx, "SELECT MAX(version) FROM schema_version").Scan(&v); err != nil {
			return err
		}
		version = int(v.Int64)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: schema version: %w", err)
	}
	return version, nil
}
