package storetest

import (
	"bytes"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var tokenCases = []testCase{
	{"Tokens", testTokens},
	{"TokenValidation", testTokenValidation},
	{"TokenExpiryAndRevokeByID", testTokenExpiryAndRevokeByID},
}

func testTokens(e *env) {
	t := e.t
	hash := registry.HashToken("mlr_one")
	tok, err := e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "ci", Scope: registry.ScopeWrite, Stages: []string{"staging"}, Hash: hash})
	ok(t, err)
	if tok.ID <= 0 || tok.Name != "ci" || tok.Scope != registry.ScopeWrite || !tok.CreatedAt.Equal(at(Epoch)) {
		t.Errorf("created token: %+v", tok)
	}
	equal(t, "stages", tok.Stages, []string{"staging"})
	if tok.LastUsedAt != nil || tok.RevokedAt != nil {
		t.Errorf("new token: last used %v, revoked %v", tok.LastUsedAt, tok.RevokedAt)
	}

	got, err := e.s.TokenByHash(e.ctx, hash)
	ok(t, err)
	equal(t, "token by hash", got, tok)
	if !bytes.Equal(got.Hash, hash) {
		t.Errorf("hash: got %x", got.Hash)
	}
	_, err = e.s.TokenByHash(e.ctx, registry.HashToken("mlr_unknown"))
	wantCode(t, err, registry.CodeNotFound)

	admin, err := e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "admin", Scope: registry.ScopeAdmin, Hash: registry.HashToken("mlr_two")})
	ok(t, err)
	if admin.Stages == nil || len(admin.Stages) != 0 {
		t.Errorf("stages of a token without stages: %#v, want an empty non-nil list", admin.Stages)
	}

	_, err = e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "ci", Scope: registry.ScopeRead, Hash: registry.HashToken("mlr_three")})
	wantCode(t, err, registry.CodeAlreadyExists, `"ci"`)
	_, err = e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "other", Scope: registry.ScopeRead, Hash: hash})
	wantCode(t, err, registry.CodeAlreadyExists)

	e.clock.Advance(time.Hour)
	used := e.clock.Now()
	ok(t, e.s.TouchToken(e.ctx, tok.ID, used))
	got, err = e.s.TokenByHash(e.ctx, hash)
	ok(t, err)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(at(used)) {
		t.Errorf("last used: got %v, want %v", got.LastUsedAt, at(used))
	}
	ok(t, e.s.TouchToken(e.ctx, 999999, used)) // best effort: unknown ids are ignored

	list, err := e.s.ListTokens(e.ctx)
	ok(t, err)
	if len(list) != 2 || list[0].Name != "ci" || list[1].Name != "admin" {
		t.Fatalf("list tokens: %+v", list)
	}

	e.clock.Advance(time.Minute)
	ok(t, e.s.RevokeToken(e.ctx, e.actor, "ci"))
	_, err = e.s.TokenByHash(e.ctx, hash)
	wantCode(t, err, registry.CodeNotFound)
	err = e.s.RevokeToken(e.ctx, e.actor, "ci")
	wantCode(t, err, registry.CodeNotFound, `"ci"`)
	err = e.s.RevokeToken(e.ctx, e.actor, "nope")
	wantCode(t, err, registry.CodeNotFound, `"nope"`)
	list, err = e.s.ListTokens(e.ctx)
	ok(t, err)
	if len(list) != 2 || list[0].RevokedAt == nil || !list[0].RevokedAt.Equal(at(e.clock.Now())) || list[1].RevokedAt != nil {
		t.Fatalf("list tokens after revoke: %+v", list)
	}

	// A revoked token's name may be used again.
	again, err := e.s.CreateToken(e.ctx, e.actor, registry.Token{Name: "ci", Scope: registry.ScopeRead, Hash: registry.HashToken("mlr_four")})
	ok(t, err)
	if again.ID == tok.ID {
		t.Errorf("a new token must get a new id")
	}
	got, err = e.s.TokenByHash(e.ctx, registry.HashToken("mlr_four"))
	ok(t, err)
	equal(t, "scope of the new ci token", got.Scope, registry.ScopeRead)

	equal(t, "token events", actions(e.events(registry.EventFilter{})), []string{
		registry.ActionTokenCreate, registry.ActionTokenCreate, registry.ActionTokenRevoke, registry.ActionTokenCreate,
	})
}

func testTokenValidation(e *env) {
	hash := registry.HashToken("mlr_x")
	cases := []struct {
		name  string
		in    registry.Token
		field string
	}{
		{"empty name", registry.Token{Scope: registry.ScopeRead, Hash: hash}, "name"},
		{"bad name", registry.Token{Name: "CI Token", Scope: registry.ScopeRead, Hash: hash}, "name"},
		{"bad scope", registry.Token{Name: "ci", Scope: "root", Hash: hash}, "scope"},
		{"bad stage", registry.Token{Name: "ci", Scope: registry.ScopeWrite, Stages: []string{"staging", "Prod"}, Hash: hash}, "stages[1]"},
		{"no hash", registry.Token{Name: "ci", Scope: registry.ScopeWrite}, "hash"},
	}
	for _, tc := range cases {
		_, err := e.s.CreateToken(e.ctx, e.actor, tc.in)
		wantField(e.t, err, tc.field)
	}
	list, err := e.s.ListTokens(e.ctx)
	ok(e.t, err)
	if list == nil || len(list) != 0 {
		e.t.Errorf("refused tokens were stored: %#v", list)
	}
}
