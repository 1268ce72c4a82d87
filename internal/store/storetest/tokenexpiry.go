package storetest

import (
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// testTokenExpiryAndRevokeByID: a token may carry an expiry (stored and
// reported as state expired once it passes), and a token is revoked by id,
// which tells apart two tokens of the same name.
func testTokenExpiryAndRevokeByID(e *env) {
	t := e.t
	past := e.clock.Now().Add(-time.Second)
	_, err := e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "old", Scope: registry.ScopeRead, ExpiresAt: &past, Hash: registry.HashToken("mlr_old")})
	wantField(t, err, "expires_at")

	exp := e.clock.Now().Add(time.Hour)
	tok, err := e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "ci", Scope: registry.ScopeWrite, ExpiresAt: &exp, Hash: registry.HashToken("mlr_ci1")})
	ok(t, err)
	if tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(at(exp)) || tok.State != registry.TokenActive {
		t.Errorf("created token: expires %v, state %q", tok.ExpiresAt, tok.State)
	}
	got, err := e.s.TokenByID(e.ctx, tok.ID)
	ok(t, err)
	equal(t, "token by id", got, tok)

	e.clock.Advance(time.Hour)
	got, err = e.s.TokenByHash(e.ctx, registry.HashToken("mlr_ci1"))
	ok(t, err)
	equal(t, "state once the expiry passed", got.State, registry.TokenExpired)
	list, err := e.s.ListTokens(e.ctx)
	ok(t, err)
	if len(list) != 1 || list[0].State != registry.TokenExpired {
		t.Fatalf("list after expiry: %+v", list)
	}
	// An expired token still holds its name until it is revoked.
	_, err = e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "ci", Scope: registry.ScopeWrite, Hash: registry.HashToken("mlr_ci2")})
	wantCode(t, err, registry.CodeAlreadyExists, `"ci"`)

	revoked, err := e.s.RevokeTokenByID(e.ctx, e.actor, tok.ID)
	ok(t, err)
	if revoked.RevokedAt == nil || !revoked.RevokedAt.Equal(at(e.clock.Now())) || revoked.State != registry.TokenRevoked {
		t.Errorf("revoked token: %+v", revoked)
	}
	_, err = e.s.RevokeTokenByID(e.ctx, e.actor, tok.ID)
	wantCode(t, err, registry.CodeConflict, "already revoked")
	_, err = e.s.RevokeTokenByID(e.ctx, e.actor, 999999)
	wantCode(t, err, registry.CodeNotFound)
	_, err = e.s.TokenByID(e.ctx, 999999)
	wantCode(t, err, registry.CodeNotFound)

	// The name is free again; the two "ci" rows differ by id and state.
	again, err := e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "ci", Scope: registry.ScopeWrite, Hash: registry.HashToken("mlr_ci2")})
	ok(t, err)
	list, err = e.s.ListTokens(e.ctx)
	ok(t, err)
	if len(list) != 2 || list[0].ID != tok.ID || list[0].State != registry.TokenRevoked || list[1].ID != again.ID || list[1].State != registry.TokenActive || list[1].ExpiresAt != nil {
		t.Fatalf("list after re-create: %+v", list)
	}
	equal(t, "token events", actions(e.events(registry.EventFilter{})), []string{
		registry.ActionTokenCreate, registry.ActionTokenRevoke, registry.ActionTokenCreate,
	})
}
