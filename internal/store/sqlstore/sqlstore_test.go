package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// sqliteDSN is a fresh database file in the test's temporary directory.
func sqliteDSN(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "registry.db")
}

func open(t *testing.T, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) registry.Store {
		return open(t, sqliteDSN(t), Options{Now: clock.Now})
	})
}

func TestPostgres(t *testing.T) {
	storetest.PostgresDSN(t) // skip (or fail under CI) before running anything
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) registry.Store {
		return open(t, storetest.PostgresDSN(t), Options{Now: clock.Now})
	})
}

// dialects runs f once per available dialect with a fresh DSN.
func dialects(t *testing.T, f func(t *testing.T, dsn func(t *testing.T) string)) {
	t.Run(DialectSQLite, func(t *testing.T) { f(t, sqliteDSN) })
	t.Run(DialectPostgres, func(t *testing.T) {
		storetest.PostgresDSN(t)
		f(t, storetest.PostgresDSN)
	})
}

func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn, dialect, target, err string
	}{
		{dsn: "sqlite://./data/registry.db", dialect: "sqlite", target: "./data/registry.db"},
		{dsn: "sqlite:///var/lib/mlregistry/registry.db", dialect: "sqlite", target: "/var/lib/mlregistry/registry.db"},
		{dsn: "sqlite:registry.db", dialect: "sqlite", target: "registry.db"},
		{dsn: "registry.db", dialect: "sqlite", target: "registry.db"},
		{dsn: "/tmp/x/registry.db", dialect: "sqlite", target: "/tmp/x/registry.db"},
		{dsn: "  ./registry.db ", dialect: "sqlite", target: "./registry.db"},
		{dsn: "postgres://u:p@db:5432/registry?sslmode=disable", dialect: "postgres", target: "postgres://u:p@db:5432/registry?sslmode=disable"},
		{dsn: "postgresql://db/registry", dialect: "postgres", target: "postgresql://db/registry"},
		{dsn: "", err: "empty"},
		{dsn: "sqlite://", err: "no file path"},
		{dsn: "mysql://db/registry", err: `unsupported database scheme "mysql"`},
		{dsn: "sqlite://./x.db?_pragma=foo", err: "no query parameters"},
		{dsn: ":memory:", err: "in-memory"},
		{dsn: "sqlite://file::memory:", err: "in-memory"},
	}
	for _, tc := range cases {
		t.Run(tc.dsn, func(t *testing.T) {
			dialect, target, err := parseDSN(tc.dsn)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got (%q, %q, %v), want an error containing %q", dialect, target, err, tc.err)
				}
				return
			}
			if err != nil || dialect != tc.dialect || target != tc.target {
				t.Fatalf("got (%q, %q, %v), want (%q, %q)", dialect, target, err, tc.dialect, tc.target)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	dialects(t, func(t *testing.T, newDSN func(t *testing.T) string) {
		ctx := t.Context()
		dsn := newDSN(t)
		latest, err := latestSchemaVersion(open(t, dsn, Options{NoMigrate: true}).Dialect())
		if err != nil || latest < 1 {
			t.Fatalf("latest schema version: %d, %v", latest, err)
		}

		s := open(t, dsn, Options{NoMigrate: true})
		if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
			t.Fatalf("schema version of an empty database: %d, %v", v, err)
		}
		applied, err := s.Migrate(ctx)
		if err != nil || len(applied) != latest || applied[0] != 1 {
			t.Fatalf("first migrate: applied %v, %v", applied, err)
		}
		if v, err := s.SchemaVersion(ctx); err != nil || v != latest {
			t.Fatalf("schema version: %d, %v; want %d", v, err, latest)
		}
		applied, err = s.Migrate(ctx)
		if err != nil || len(applied) != 0 {
			t.Fatalf("second migrate: applied %v, %v; want nothing", applied, err)
		}
		// Open migrates and is idempotent too.
		s2 := open(t, dsn, Options{})
		if v, err := s2.SchemaVersion(ctx); err != nil || v != latest {
			t.Fatalf("schema version after reopening: %d, %v", v, err)
		}

		// Replicas starting at once: concurrent migrations of a fresh
		// database apply each migration exactly once.
		fresh := newDSN(t)
		const replicas = 4
		results := make(chan []int, replicas)
		errs := make(chan error, replicas)
		for range replicas {
			go func() {
				s, err := Open(ctx, fresh, Options{NoMigrate: true})
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				applied, err := s.Migrate(ctx)
				if err != nil {
					errs <- err
					return
				}
				results <- applied
			}()
		}
		total := 0
		for range replicas {
			select {
			case err := <-errs:
				t.Fatalf("concurrent migrate: %v", err)
			case applied := <-results:
				total += len(applied)
			}
		}
		if total != latest {
			t.Fatalf("concurrent migrations applied %d migrations in total, want %d", total, latest)
		}

		// A database newer than the binary is refused.
		if _, err := s.w.ExecContext(ctx, s.rebind("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)"), latest+1, "9999_future.sql", 0); err != nil {
			t.Fatal(err)
		}
		_, err = Open(ctx, dsn, Options{})
		if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
			t.Fatalf("open of a newer schema: %v", err)
		}
	})
}

func (s *Store) rebind(q string) string {
	return (&txn{pg: s.dialect == DialectPostgres}).rebind(q)
}

func TestDataSurvivesReopen(t *testing.T) {
	dialects(t, func(t *testing.T, newDSN func(t *testing.T) string) {
		ctx := t.Context()
		dsn := newDSN(t)
		actor := registry.Actor{Name: "alice"}
		s, err := Open(ctx, dsn, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateModel(ctx, actor, registry.ModelCreate{Name: "churn"}); err != nil {
			t.Fatal(err)
		}
		v, err := s.CreateVersion(ctx, actor, "churn", registry.ModelVersionCreate{
			Source: "s3://b/k", Checksum: "sha256:" + strings.Repeat("ab", 32), Format: "onnx", Metrics: map[string]float64{"auc": 0.9},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = open(t, dsn, Options{})
		got, err := s.GetVersion(ctx, "churn", v.Version)
		if err != nil {
			t.Fatal(err)
		}
		if got.Checksum != v.Checksum || got.Metrics["auc"] != 0.9 || !got.CreatedAt.Equal(v.CreatedAt) {
			t.Fatalf("after reopening: %+v, want %+v", got, v)
		}
		if evs, err := s.ListEvents(ctx, registry.EventFilter{}); err != nil || len(evs.Items) != 2 {
			t.Fatalf("events after reopening: %+v, %v", evs, err)
		}
	})
}

func TestSQLiteSettings(t *testing.T) {
	s := open(t, sqliteDSN(t), Options{})
	ctx := t.Context()
	for _, db := range []struct {
		name string
		q    func(string) string
	}{
		{"write pool", func(p string) string { return pragma(t, s, true, p) }},
		{"read pool", func(p string) string { return pragma(t, s, false, p) }},
	} {
		for p, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "10000"} {
			if got := db.q(p); got != want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", db.name, p, got, want)
			}
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func pragma(t *testing.T, s *Store, write bool, name string) string {
	t.Helper()
	db := s.r
	if write {
		db = s.w
	}
	var v string
	if err := db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "registry.db")
	s := open(t, path, Options{})
	if s.Dialect() != DialectSQLite {
		t.Fatalf("dialect %q", s.Dialect())
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens, the connection is refused.
	for _, dsn := range []string{
		"postgres://u:secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&password=secret",
		"postgres://u@127.0.0.1:1/db?sslmode=disable&Password=secret&connect_timeout=2",
	} {
		_, err := Open(ctx, dsn, Options{})
		if err == nil {
			t.Fatal("want an error")
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("error leaks the password: %v", err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("error does not say where it tried to connect: %v", err)
		}
	}
}

func TestErrorNormalisation(t *testing.T) {
	var logs bytes.Buffer
	s := &Store{log: slog.New(slog.NewTextHandler(&logs, nil))}
	regErr := registry.FieldError("name", "pattern", "bad")
	cases := []struct {
		name string
		err  error
		code registry.Code
	}{
		{"registry error passes", fmt.Errorf("wrapped: %w", regErr), registry.CodeInvalidArgument},
		{"pg unique", &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint \"models_pkey\""}, registry.CodeAlreadyExists},
		{"pg foreign key", &pgconn.PgError{Code: "23503"}, registry.CodeConflict},
		{"pg serialization", &pgconn.PgError{Code: "40001"}, registry.CodeUnavailable},
		{"pg deadlock", &pgconn.PgError{Code: "40P01"}, registry.CodeUnavailable},
		{"pg shutdown", &pgconn.PgError{Code: "57P01"}, registry.CodeUnavailable},
		{"pg syntax", &pgconn.PgError{Code: "42601", Message: "syntax error at or near \"SELEC\""}, registry.CodeInternal},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), registry.CodeUnavailable},
		{"canceled", context.Canceled, registry.CodeUnavailable},
		{"pg pooled connection closed", fmt.Errorf("begin: %w", pgconn.ErrConnClosed), registry.CodeUnavailable},
		{"connection lost mid-answer", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), registry.CodeUnavailable},
		{"other", errors.New("SELECT secret FROM table: boom"), registry.CodeInternal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := s.normalize(context.Background(), "create model", tc.err)
			re := registry.AsError(got)
			if re.Code != tc.code {
				t.Fatalf("code %s (%q), want %s", re.Code, re.Message, tc.code)
			}
			if tc.code != registry.CodeInvalidArgument {
				for _, leak := range []string{"SELECT", "models_pkey", "SELEC", "secret", "syntax"} {
					if strings.Contains(re.Message, leak) {
						t.Errorf("message %q leaks %q", re.Message, leak)
					}
				}
				if !strings.Contains(re.Message, "create model") {
					t.Errorf("message %q does not name the operation", re.Message)
				}
			} else if !errors.Is(got, regErr) || re != regErr {
				t.Errorf("a registry error must pass unchanged, got %v", got)
			}
		})
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("the original error must be logged; log: %s", logs.String())
	}
	if s.normalize(context.Background(), "x", nil) != nil {
		t.Error("nil must stay nil")
	}
}

// TestDriverErrors checks that real driver errors of both dialects are
// classified, not just hand-made ones.
func TestDriverErrors(t *testing.T) {
	dialects(t, func(t *testing.T, newDSN func(t *testing.T) string) {
		ctx := t.Context()
		s := open(t, newDSN(t), Options{})
		insert := func() error {
			return s.runTx(ctx, modeWrite, func(tx *txn) error {
				_, err := tx.exec(ctx, "INSERT INTO version_counters (model, last_version) VALUES (?, ?)", "m", 1)
				return err
			})
		}
		if err := insert(); err != nil {
			t.Fatal(err)
		}
		err := insert()
		if c := classify(err); c != classUnique {
			t.Errorf("duplicate key: class %d (%v)", c, err)
		}
		err = s.runTx(ctx, modeWrite, func(tx *txn) error {
			_, err := tx.exec(ctx, "INSERT INTO model_versions ("+versionCols("")+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				"ghost", 1, "s3://x", "sha256:x", "onnx", "{}", "{}", nil, nil, "", "{}", false, "", 0, "a", 0, 1)
			return err
		})
		if c := classify(err); c != classForeignKey {
			t.Errorf("missing parent: class %d (%v)", c, err)
		}
		norm := s.normalize(ctx, "create version", err)
		if registry.ErrorCode(norm) != registry.CodeConflict || strings.Contains(norm.Error(), "model_versions") {
			t.Errorf("normalised foreign key error: %v", norm)
		}

		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.GetModel(canceled, "churn")
		if !errors.Is(err, context.Canceled) || registry.ErrorCode(err) == registry.CodeUnavailable {
			t.Errorf("canceled context: %v (the caller went away; the database is fine)", err)
		}
	})
}
