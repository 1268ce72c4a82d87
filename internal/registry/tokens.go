package registry

import (
	"context"
	"fmt"
	"time"
)

// Token states.
const (
	TokenActive  = "active"
	TokenRevoked = "revoked"
	TokenExpired = "expired"
)

// StateAt is the token's state at now: revoked wins over expired.
func (t *Token) StateAt(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return TokenRevoked
	case t.Expired(now):
		return TokenExpired
	}
	return TokenActive
}

// Expired reports whether the token has an expiry at or before now.
func (t *Token) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// TokenCreate is the body of POST /api/v1/tokens.
type TokenCreate struct {
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
	// Stages, when not empty, are the only stages the token may assign.
	Stages []string `json:"stages,omitempty"`
	// Endpoints, when not empty, are the only endpoints a serve token may
	// call; only scope serve takes them.
	Endpoints []string `json:"endpoints,omitempty"`
	// ExpiresAt, when set, must be in the future.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// TokenCreated is the answer of POST /api/v1/tokens: the token and its
// secret, which is shown this once and stored nowhere (only its SHA-256 is).
type TokenCreated struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

// Validate checks a token request before its secret is made.
func (in *TokenCreate) Validate(now time.Time) error {
	if err := ValidateName("name", in.Name); err != nil {
		return err
	}
	if err := ValidateScope("scope", in.Scope); err != nil {
		return err
	}
	for i, s := range in.Stages {
		if err := ValidateStage(fmt.Sprintf("stages[%d]", i), s); err != nil {
			return err
		}
	}
	if err := ValidateTokenLimits(in.Scope, in.Stages, in.Endpoints); err != nil {
		return err
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return FieldError("expires_at", "future", "must be in the future, got %s", in.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// IssueToken makes a fresh secret for in and stores the token (only the
// secret's hash). The server's POST /api/v1/tokens and the CLI's
// `token create --db` both come here, so the two cannot differ.
func IssueToken(ctx context.Context, st TokenStore, actor Actor, in TokenCreate, now time.Time) (*TokenCreated, error) {
	if err := in.Validate(now); err != nil {
		return nil, err
	}
	secret, hash, err := NewTokenSecret()
	if err != nil {
		return nil, fmt.Errorf("generate token: %w", err)
	}
	tok, err := st.CreateToken(ctx, actor, Token{Name: in.Name, Scope: in.Scope, Stages: in.Stages, Endpoints: in.Endpoints, ExpiresAt: in.ExpiresAt, Hash: hash})
	if err != nil {
		return nil, err
	}
	return &TokenCreated{Token: *tok, Secret: secret}, nil
}

// ValidateTokenLimits checks that a token's restrictions fit its scope:
// stages limit what a write token may assign, endpoints what a serve
// token may call; a restriction the scope cannot use would read as a
// limit that is not there.
func ValidateTokenLimits(scope Scope, stages, endpoints []string) error {
	if len(stages) > 0 && !scope.Allows(ScopeWrite) {
		return FieldError("stages", "scope", "a %s token assigns no stages; stages restrict write and admin tokens", scope)
	}
	if len(endpoints) > 0 && scope != ScopeServe {
		return FieldError("endpoints", "scope", "only a serve token takes endpoints; a %s token may call every endpoint", scope)
	}
	for i, e := range endpoints {
		if err := ValidateName(fmt.Sprintf("endpoints[%d]", i), e); err != nil {
			return err
		}
	}
	return nil
}
