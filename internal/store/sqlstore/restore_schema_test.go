package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestRestoreRefusesForeignSchema: a backup whose schema is not exactly
// what the migrations make (a trigger, view or index added, a table
// changed, an index dropped) is refused with a message naming the object,
// and nothing is restored; the backup as taken restores.
func TestRestoreRefusesForeignSchema(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	live := "sqlite://" + filepath.Join(dir, "live.db")
	s := open(t, live, Options{})
	if _, err := s.CreateModel(ctx, registry.Actor{Name: "test"}, registry.ModelCreate{Name: "churn"}); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.db")
	if err := Backup(ctx, live, good); err != nil {
		t.Fatal(err)
	}

	for i, c := range []struct {
		name, ddl string
		want      []string
	}{
		{"extra trigger", "CREATE TRIGGER t AFTER INSERT ON models BEGIN DELETE FROM tokens; END", []string{`trigger "t"`, "not part of the registry's schema"}},
		{"extra view", "CREATE VIEW secrets AS SELECT hash FROM tokens", []string{`view "secrets"`}},
		{"extra index", "CREATE INDEX models_owner ON models (owner)", []string{`index "models_owner"`}},
		{"extra table", "CREATE TABLE notes (x TEXT)", []string{`table "notes"`}},
		{"changed table", "ALTER TABLE models ADD COLUMN extra TEXT", []string{`table "models"`, "differs"}},
		{"missing index", "DROP INDEX idempotency_created", []string{`index "idempotency_created"`, "missing"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := filepath.Join(dir, "bad"+string(rune('a'+i))+".db")
			if err := copyFile(good, bad); err != nil {
				t.Fatal(err)
			}
			execFile(t, bad, c.ddl)
			target := filepath.Join(dir, "target"+string(rune('a'+i))+".db")
			err := Restore(ctx, bad, "sqlite://"+target, false)
			if err == nil {
				t.Fatalf("restore of a backup with %s succeeded", c.name)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if m, _ := filepath.Glob(target + "*"); len(m) > 0 {
				t.Errorf("a refused restore left %v", m)
			}
		})
	}

	target := "sqlite://" + filepath.Join(dir, "restored.db")
	if err := Restore(ctx, good, target, false); err != nil {
		t.Fatalf("restore of a good backup: %v", err)
	}
	r := open(t, target, Options{})
	if _, err := r.GetModel(ctx, "churn"); err != nil {
		t.Errorf("restored database: %v", err)
	}

	// A backup from an older schema version is compared with that version
	// and migrated when the server opens it.
	old := filepath.Join(dir, "old.db")
	if err := buildSchema(ctx, old, 5); err != nil {
		t.Fatal(err)
	}
	if err := Restore(ctx, old, "sqlite://"+filepath.Join(dir, "from-old.db"), false); err != nil {
		t.Errorf("restore of a version 5 backup: %v", err)
	}
}

func execFile(t *testing.T, path, ddl string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), ddl); err != nil {
		t.Fatalf("%s: %v", ddl, err)
	}
}
