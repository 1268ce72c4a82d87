package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the admin connection
)

// PostgresDSNEnv names the variable holding the DSN of a PostgreSQL server
// the tests may create databases on (scripts/with-postgres.sh sets it).
const PostgresDSNEnv = "MLREGISTRY_TEST_POSTGRES_DSN"

// PostgresDSN creates a fresh, uniquely named database on the server named
// by MLREGISTRY_TEST_POSTGRES_DSN, drops it when t ends, and returns its
// DSN. Without the variable the test is skipped, except under CI=true,
// where a skipped PostgreSQL pass is a failure.
func PostgresDSN(t *testing.T) string {
	t.Helper()
	admin := os.Getenv(PostgresDSNEnv)
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL pass skipped under CI: set %s (scripts/with-postgres.sh does)", PostgresDSNEnv)
		}
		t.Skipf("PostgreSQL pass skipped: %s is not set (run under scripts/with-postgres.sh)", PostgresDSNEnv)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "mlr_test_" + hex.EncodeToString(b[:])

	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open %s: %v", PostgresDSNEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends connections a failed test may have left open.
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(t, admin, name)
}

// withDatabase returns dsn pointing at database name instead.
func withDatabase(t *testing.T, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse %s: %v", PostgresDSNEnv, err)
		}
		u.Path = "/" + name
		return u.String()
	}
	// Keyword/value form: a later dbname wins.
	return dsn + " dbname=" + name
}
