package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
// registry whose schema this binary can read); an existing database is
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
