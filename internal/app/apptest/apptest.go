// Package apptest boots a real registry (app.Main on 127.0.0.1:0 over a
// SQLite file, or PostgreSQL) for tests of other packages: the client, the
// provider's acceptance tests, end-to-end checks. Nothing here is a mock.
package apptest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// Registry is a running registry for one test.
type Registry struct {
	Main *app.Main
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string
	// AdminToken is the secret of an admin-scope token.
	AdminToken string
	// Store is the registry's store, for out-of-band changes.
	Store registry.Store
	// Clock is the fake clock shared by store and server.
	Clock *storetest.Clock
}

type options struct {
	db     string
	config func(*app.Config)
}

// Option changes how Start boots the registry.
type Option func(*options)

// WithDB uses this database DSN instead of a fresh SQLite file.
func WithDB(dsn string) Option { return func(o *options) { o.db = dsn } }

// WithConfig edits the app config before boot.
func WithConfig(f func(*app.Config)) Option { return func(o *options) { o.config = f } }

// Start boots a registry and closes it when the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if o.db == "" {
		o.db = "sqlite://" + filepath.Join(t.TempDir(), "registry.db")
	}
	clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg := app.Config{
		Listen:              "127.0.0.1:0",
		DB:                  o.db,
		Now:                 clock.Now,
		Version:             "test",
		ShutdownTimeout:     5 * time.Second,
		GatewayPollInterval: 50 * time.Millisecond,
	}
	if o.config != nil {
		o.config(&cfg)
	}
	m := app.New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close registry: %v", err)
		}
	})
	r := &Registry{Main: m, URL: m.URL(), Store: m.Store(), Clock: clock}
	// Replicas may share one database, so each names its admin token after its port.
	r.AdminToken = r.Token(t, "admin-"+strings.TrimPrefix(r.URL[strings.LastIndex(r.URL, ":"):], ":"), registry.ScopeAdmin)
	return r
}

// Token creates a token and returns its secret.
func (r *Registry) Token(t testing.TB, name string, scope registry.Scope, stages ...string) string {
	t.Helper()
	secret, _, err := app.CreateToken(context.Background(), r.Store, registry.Actor{Name: "apptest"}, name, scope, stages)
	if err != nil {
		t.Fatalf("create token %q: %v", name, err)
	}
	return secret
}
