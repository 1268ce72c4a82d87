package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Backup writes a consistent copy of a SQLite registry to out while other
// processes (a running server) keep writing: VACUUM INTO reads one
// snapshot of the database in a read transaction, which WAL lets run beside
// the writer, and writes a compact new file. out must not exist. The copy
// is checked with PRAGMA integrity_check before Backup returns.
//
// PostgreSQL registries are backed up with pg_dump; Backup refuses them.
func Backup(ctx context.Context, dsn, out string) error {
	dialect, target, err := parseDSN(dsn)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if dialect != DialectSQLite {
		return errors.New("backup: only SQLite databases are backed up by mlregistry; for PostgreSQL use pg_dump (see the guide \"Running the registry\")")
	}
	if _, err := os.Stat(target); err != nil {
		return fmt.Errorf("backup: database %s: %w", target, err)
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("backup: %s already exists; choose a new file", out)
	}
	if strings.ContainsRune(out, 0) {
		return errors.New("backup: output path contains a NUL byte")
	}
	db, err := sql.Open("sqlite", target+"?"+sqlitePragmas)
	if err != nil {
		return fmt.Errorf("backup: open %s: %w", target, err)
	}
	defer db.Close()
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", abs); err != nil {
		_ = os.Remove(abs)
		return fmt.Errorf("backup: VACUUM INTO %s: %w", abs, err)
	}
	if err := checkSQLiteFile(ctx, abs); err != nil {
		_ = os.Remove(abs)
		return fmt.Errorf("backup: the copy failed its check: %w", err)
	}
	return nil
}

// Restore puts a backup made by Backup in place as the SQLite database
// named by dsn. The backup is checked first (integrity, and that it is a
// registry whose schema this binary can read and holds exactly the tables,
// indexes, triggers and views the migrations make at its version); an existing database is
// replaced only with force (stop the server first: a best-effort check
// refuses while another process holds the write lock, but an idle server
// holds none). The new file is written beside the target and renamed over it,
// so a failed restore leaves the old database as it was.
func Restore(ctx context.Context, backup, dsn string, force bool) error {
	dialect, target, err := parseDSN(dsn)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if dialect != DialectSQLite {
		return errors.New("restore: only SQLite databases are restored by mlregistry; for PostgreSQL use pg_restore or psql")
	}
	if err := checkSQLiteFile(ctx, backup); err != nil {
		return fmt.Errorf("restore: %s is not a usable backup: %w", backup, err)
	}
	if v, err := schemaVersionOf(ctx, backup); err != nil {
		return fmt.Errorf("restore: %s is not a registry backup: %w", backup, err)
	} else if latest, err := latestSchemaVersion(DialectSQLite); err != nil {
		return err
	} else if v > latest {
		return fmt.Errorf("restore: %s has schema version %d, newer than this mlregistry understands (%d); restore it with a newer binary", backup, v, latest)
	} else if err := checkSchema(ctx, backup, v); err != nil {
		return fmt.Errorf("restore: refusing %s: %w", backup, err)
	}
	if _, err := os.Stat(target); err == nil {
		if !force {
			return fmt.Errorf("restore: %s exists; pass --force to replace it (stop the server first)", target)
		}
		if err := ensureNotInUse(ctx, target); err != nil {
			return err
		}
	}
	if dir := filepath.Dir(target); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	tmp := target + ".restore-tmp"
	if err := copyFile(backup, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	// Stale WAL and shared-memory files belong to the old database.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(tmp)
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// checkSQLiteFile runs PRAGMA integrity_check on a SQLite file, read-only.
func checkSQLiteFile(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check: %s", res)
	}
	return nil
}

// schemaVersionOf reads the migration version a SQLite file is at.
func schemaVersionOf(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_version").Scan(&v); err != nil {
		return 0, err
	}
	if !v.Valid {
		return 0, errors.New("no migrations recorded")
	}
	return int(v.Int64), nil
}

// ensureNotInUse fails when another connection holds the database's write
// lock right now (a server in the middle of a write). Best effort: an idle
// server holds no lock.
func ensureNotInUse(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("restore: %s is in use (stop the server first): %w", path, err)
	}
	return tx.Rollback()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// buildSchema writes a new SQLite file at path that holds the schema the
// migrations make up to version, and nothing else: the reference a
// backup's schema is compared with.
func buildSchema(ctx context.Context, path string, version int) error {
	ms, err := loadMigrations(DialectSQLite)
	if err != nil {
		return err
	}
	if version < 1 || version > len(ms) {
		return fmt.Errorf("no schema version %d (this binary knows 1 to %d)", version, len(ms))
	}
	// A scratch file: nothing to make durable.
	db, err := sql.Open("sqlite", path+"?_pragma=synchronous(OFF)&_pragma=journal_mode(MEMORY)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, createSchemaVersion); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	for _, m := range ms[:version] {
		if _, err := db.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, 0)", m.version, m.name); err != nil {
			return fmt.Errorf("record migration %s: %w", m.name, err)
		}
	}
	return nil
}

// schemaObject is one row of sqlite_master: a table, index, trigger or
// view, with its definition as written (whitespace folded).
type schemaObject struct {
	typ, name, table, sql string
}

func (o schemaObject) String() string {
	if o.typ == "table" || o.typ == "view" {
		return fmt.Sprintf("%s %q", o.typ, o.name)
	}
	return fmt.Sprintf("%s %q on %q", o.typ, o.name, o.table)
}

// schemaObjects reads the schema objects of a SQLite file, read-only.
// SQLite's own (sqlite_*: automatic indexes, sqlite_sequence) follow from
// the others.
func schemaObjects(ctx context.Context, path string) (map[string]schemaObject, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]schemaObject{}
	for rows.Next() {
		var o schemaObject
		if err := rows.Scan(&o.typ, &o.name, &o.table, &o.sql); err != nil {
			return nil, err
		}
		o.sql = strings.Join(strings.Fields(o.sql), " ")
		out[o.typ+" "+o.name] = o
	}
	return out, rows.Err()
}

// checkSchema refuses a backup whose schema objects are not exactly those
// the migrations make at its schema version: a trigger, view or index
// added to a backup runs (or leaks) inside every later write, beyond the
// registry's rules and its audit log.
func checkSchema(ctx context.Context, path string, version int) error {
	dir, err := os.MkdirTemp("", "mlregistry-schema-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ref := filepath.Join(dir, "schema.db")
	if err := buildSchema(ctx, ref, version); err != nil {
		return fmt.Errorf("build the reference schema: %w", err)
	}
	want, err := schemaObjects(ctx, ref)
	if err != nil {
		return fmt.Errorf("read the reference schema: %w", err)
	}
	got, err := schemaObjects(ctx, path)
	if err != nil {
		return err
	}
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(got)) {
		o, ok := want[k]
		switch {
		case !ok:
			problems = append(problems, got[k].String()+" is not part of the registry's schema")
		case o != got[k]:
			problems = append(problems, got[k].String()+" differs from the registry's schema")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if _, ok := got[k]; !ok {
			problems = append(problems, want[k].String()+" is missing")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("its schema is not the registry's schema version %d: %s", version, strings.Join(problems, "; "))
	}
	return nil
}
