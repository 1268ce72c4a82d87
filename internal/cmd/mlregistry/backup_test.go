package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupRestoreCommands: `mlregistry backup` copies a running
// registry's database, `restore` refuses to overwrite without --force and
// puts the copy in place, and a server on the restored file answers what
// the original held.
func TestBackupRestoreCommands(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "live.db")
	tok := createToken(t, db, "admin", "admin")
	srv := startServer(t, db)
	if st, body := do(t, "POST", srv.url+"/api/v1/models", tok, map[string]any{"name": "churn", "owner": "ds"}); st != http.StatusCreated {
		t.Fatalf("create model: %d %v", st, body)
	}

	out := filepath.Join(dir, "backup.db")
	if _, errOut, err := runCLI(t, "backup", "--db", db); err == nil || !strings.Contains(errOut, "--out") {
		t.Errorf("backup without --out: %v %q", err, errOut)
	}
	if stdout, errOut, err := runCLI(t, "backup", "--db", db, "--out", out); err != nil || !strings.Contains(stdout, out) {
		t.Fatalf("backup: %v\n%s%s", err, stdout, errOut)
	}
	if _, errOut, err := runCLI(t, "backup", "--db", "postgres://u@127.0.0.1:1/x", "--out", filepath.Join(dir, "pg.db")); err == nil || !strings.Contains(errOut, "pg_dump") {
		t.Errorf("postgres backup: %v %q", err, errOut)
	}

	restored := "sqlite://" + filepath.Join(dir, "restored.db")
	if _, errOut, err := runCLI(t, "restore", out, "--db", restored); err != nil {
		t.Fatalf("restore: %v\n%s", err, errOut)
	}
	if _, errOut, err := runCLI(t, "restore", out, "--db", restored); err == nil || !strings.Contains(errOut, "--force") {
		t.Errorf("restore over an existing database: %v %q", err, errOut)
	}
	if _, errOut, err := runCLI(t, "restore", out, "--db", restored, "--force"); err != nil {
		t.Errorf("restore --force: %v\n%s", err, errOut)
	}
	srv2 := startServer(t, restored)
	st, body := do(t, "GET", srv2.url+"/api/v1/models/churn", tok, nil)
	if st != http.StatusOK || body["owner"] != "ds" {
		t.Errorf("restored registry: %d %v", st, body)
	}
}
