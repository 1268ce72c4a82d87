package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestTokenExpiry: a token created through the API with expires_at works
// until then and is refused like a revoked one from then on, whether the
// server finds it in its token cache or in the store; the list says
// expired.
func TestTokenExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		for _, c := range []struct {
			name string
			ttl  time.Duration // how long the token lives
		}{
			{"cached", 2 * time.Second},          // used, then expires within the cache's 5s
			{"from the store", 10 * time.Second}, // expires after the cache entry
		} {
			name := strings.ReplaceAll(c.name, " ", "-")
			created := into[registry.TokenCreated](t, e.do(req{method: "POST", path: "/api/v1/tokens", token: e.admin,
				body: map[string]any{"name": name, "scope": "read", "expires_at": e.clock.Now().Add(c.ttl)}}, http.StatusCreated))
			e.do(req{method: "GET", path: "/api/v1/models", token: created.Secret}, http.StatusOK)
			e.clock.Advance(c.ttl)
			res := e.call(req{method: "GET", path: "/api/v1/models", token: created.Secret})
			if res.status != http.StatusUnauthorized {
				t.Fatalf("%s: expired token: %d %s, want 401", c.name, res.status, res.body)
			}
			if p := problem(t, res, registry.CodeUnauthenticated); !strings.Contains(p.Detail, "expired") {
				t.Errorf("%s: the refusal does not say the token expired: %q", c.name, p.Detail)
			}
			got := into[registry.Token](t, e.do(req{method: "GET", path: fmt.Sprintf("/api/v1/tokens/%d", created.Token.ID), token: e.admin}, http.StatusOK))
			if got.State != registry.TokenExpired {
				t.Errorf("%s: state %q, want expired", c.name, got.State)
			}
		}
	})
}

// TestTokenRevokeTakesEffectAtOnce: the replica that revokes a token
// forgets it from its cache, so the next request is refused.
func TestTokenRevokeTakesEffectAtOnce(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	created := into[registry.TokenCreated](t, e.do(req{method: "POST", path: "/api/v1/tokens", token: e.admin,
		body: map[string]any{"name": "short", "scope": "write"}}, http.StatusCreated))
	e.do(req{method: "GET", path: "/api/v1/models", token: created.Secret}, http.StatusOK)
	e.do(req{method: "DELETE", path: fmt.Sprintf("/api/v1/tokens/%d", created.Token.ID), token: e.admin}, http.StatusOK)
	problem(t, e.do(req{method: "GET", path: "/api/v1/models", token: created.Secret}, http.StatusUnauthorized), registry.CodeUnauthenticated)
}
