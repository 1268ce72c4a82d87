package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDSNPasswordNotLogged: a database password given in the DSN's user
// info or as a ?password= parameter appears neither in the start-up log
// nor in a connection error.
func TestDSNPasswordNotLogged(t *testing.T) {
	t.Run("connection error", func(t *testing.T) {
		for _, dsn := range []string{
			"postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
			"postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&password=hunter2",
			"postgres://u@127.0.0.1:1/db?PASSWORD=hunter2&sslmode=disable&connect_timeout=2",
		} {
			var logs syncBuffer
			m := app.New(app.Config{Listen: "127.0.0.1:0", DB: dsn, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := m.Run(ctx)
			cancel()
			_ = m.Close()
			if err == nil {
				t.Fatalf("%s: want a connection error", dsn)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(logs.String(), "hunter2") {
				t.Errorf("password leaked:\nerr: %v\nlog: %s", err, logs.String())
			}
		}
	})
	t.Run("start-up log", func(t *testing.T) {
		// The test server trusts loopback connections, so an added
		// password parameter is ignored by the server but is in the DSN.
		dsn := storetest.PostgresDSN(t)
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "password=hunter2"
		var logs syncBuffer
		m := app.New(app.Config{Listen: "127.0.0.1:0", DB: dsn, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		out := logs.String()
		if !strings.Contains(out, "mlregistry serving") || !strings.Contains(out, "password=xxxxx") {
			t.Fatalf("start-up log does not show the redacted DSN:\n%s", out)
		}
		if strings.Contains(out, "hunter2") {
			t.Fatalf("start-up log leaks the password:\n%s", out)
		}
	})
}
