package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const tokenCols = "id, name, scope, stages, endpoints, hash, created_at, last_used_at, revoked_at, expires_at"

// scanToken reads a token row; now fills its State.
func scanToken(sc scanner, now time.Time) (registry.Token, error) {
	var (
		tok                        registry.Token
		scope, stages, endpoints   string
		created                    int64
		lastUsed, revoked, expires sql.NullInt64
	)
	if err := sc.Scan(&tok.ID, &tok.Name, &scope, &stages, &endpoints, &tok.Hash, &created, &lastUsed, &revoked, &expires); err != nil {
		return tok, err
	}
	tok.Scope = registry.Scope(scope)
	tok.Stages = []string{}
	if err := fromJSON(stages, &tok.Stages); err != nil {
		return tok, err
	}
	if tok.Stages == nil {
		tok.Stages = []string{}
	}
	if err := fromJSON(endpoints, &tok.Endpoints); err != nil {
		return tok, err
	}
	if len(tok.Endpoints) == 0 {
		tok.Endpoints = nil
	}
	tok.CreatedAt = fromMicros(created)
	tok.LastUsedAt = optMicros(lastUsed)
	tok.RevokedAt = optMicros(revoked)
	tok.ExpiresAt = optMicros(expires)
	tok.State = tok.StateAt(now)
	return tok, nil
}

func validateToken(t *registry.Token, now time.Time) error {
	if err := registry.ValidateName("name", t.Name); err != nil {
		return err
	}
	if err := registry.ValidateScope("scope", t.Scope); err != nil {
		return err
	}
	for i, st := range t.Stages {
		if err := registry.ValidateStage(fmt.Sprintf("stages[%d]", i), st); err != nil {
			return err
		}
	}
	if err := registry.ValidateTokenLimits(t.Scope, t.Stages, t.Endpoints); err != nil {
		return err
	}
	if len(t.Hash) != sha256.Size {
		return registry.FieldError("hash", "length", "must be a SHA-256 hash (%d bytes)", sha256.Size)
	}
	if t.ExpiresAt != nil && !t.ExpiresAt.After(now) {
		return registry.FieldError("expires_at", "future", "must be in the future, got %s", t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// CreateToken stores a token from its name, scope, stages and hash; ID and
// CreatedAt are assigned here. Names are unique among unrevoked tokens.
func (s *Store) CreateToken(ctx context.Context, actor registry.Actor, in registry.Token) (*registry.Token, error) {
	if err := validateToken(&in, s.clock()); err != nil {
		return nil, err
	}
	var out *registry.Token
	err := s.inTx(ctx, "create token", modeWrite, func(t *txn) error {
		var n int
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM tokens WHERE name = ? AND revoked_at IS NULL", in.Name).Scan(&n); err != nil {
			return fmt.Errorf("check token: %w", err)
		}
		if n > 0 {
			return registry.Errorf(registry.CodeAlreadyExists, "token %q already exists (expired tokens too); revoke it first to reuse the name", in.Name)
		}
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM tokens WHERE hash = ?", in.Hash).Scan(&n); err != nil {
			return fmt.Errorf("check token hash: %w", err)
		}
		if n > 0 {
			return registry.Errorf(registry.CodeAlreadyExists, "a token with this secret already exists")
		}
		now := s.clock()
		tok := registry.Token{
			Name:      in.Name,
			Scope:     in.Scope,
			Stages:    append([]string{}, in.Stages...),
			Endpoints: append([]string(nil), in.Endpoints...),
			CreatedAt: now,
			State:     registry.TokenActive,
			Hash:      append([]byte(nil), in.Hash...),
		}
		var expires sql.NullInt64
		if in.ExpiresAt != nil {
			exp := in.ExpiresAt.UTC().Truncate(time.Microsecond)
			tok.ExpiresAt = &exp
			expires = sql.NullInt64{Int64: exp.UnixMicro(), Valid: true}
		}
		stages, err := toJSON(tok.Stages)
		if err != nil {
			return err
		}
		endpoints, err := toJSON(append([]string{}, tok.Endpoints...))
		if err != nil {
			return err
		}
		if err := t.queryRow(ctx, `INSERT INTO tokens (name, scope, stages, endpoints, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			tok.Name, string(tok.Scope), stages, endpoints, tok.Hash, now.UnixMicro(), expires).Scan(&tok.ID); err != nil {
			return fmt.Errorf("insert token: %w", err)
		}
		out = &tok
		return s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionTokenCreate, subjectType: "token", subject: tok.Name, after: tok,
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TokenByHash finds the unrevoked token with this hash.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*registry.Token, error) {
	var out *registry.Token
	err := s.inTx(ctx, "token by hash", modeRead, func(t *txn) error {
		tok, err := scanToken(t.queryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE hash = ? AND revoked_at IS NULL", hash), s.clock())
		if errors.Is(err, sql.ErrNoRows) {
			return registry.Errorf(registry.CodeNotFound, "token not found")
		}
		if err != nil {
			return fmt.Errorf("token by hash: %w", err)
		}
		out = &tok
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListTokens lists all tokens, revoked ones included, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]registry.Token, error) {
	out := []registry.Token{}
	now := s.clock()
	err := s.inTx(ctx, "list tokens", modeRead, func(t *txn) error {
		rows, err := t.query(ctx, "SELECT "+tokenCols+" FROM tokens ORDER BY id")
		if err != nil {
			return fmt.Errorf("list tokens: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			tok, err := scanToken(rows, now)
			if err != nil {
				return fmt.Errorf("list tokens: %w", err)
			}
			out = append(out, tok)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TokenByID returns a token, revoked or not.
func (s *Store) TokenByID(ctx context.Context, id int64) (*registry.Token, error) {
	var out *registry.Token
	err := s.inTx(ctx, "token by id", modeRead, func(t *txn) error {
		tok, err := scanToken(t.queryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE id = ?", id), s.clock())
		if errors.Is(err, sql.ErrNoRows) {
			return registry.Errorf(registry.CodeNotFound, "token %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("token by id: %w", err)
		}
		out = &tok
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeToken revokes the unrevoked token of that name.
func (s *Store) RevokeToken(ctx context.Context, actor registry.Actor, name string) error {
	return s.inTx(ctx, "revoke token", modeWrite, func(t *txn) error {
		now := s.clock()
		before, err := scanToken(t.queryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE name = ? AND revoked_at IS NULL"+t.forUpdate(), name), now)
		if errors.Is(err, sql.ErrNoRows) {
			return registry.Errorf(registry.CodeNotFound, "token %q not found", name)
		}
		if err != nil {
			return fmt.Errorf("load token: %w", err)
		}
		_, err = s.revoke(ctx, t, actor, before, now)
		return err
	})
}

// RevokeTokenByID revokes a token by id and returns it revoked.
func (s *Store) RevokeTokenByID(ctx context.Context, actor registry.Actor, id int64) (*registry.Token, error) {
	var out *registry.Token
	err := s.inTx(ctx, "revoke token", modeWrite, func(t *txn) error {
		now := s.clock()
		before, err := scanToken(t.queryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE id = ?"+t.forUpdate(), id), now)
		if errors.Is(err, sql.ErrNoRows) {
			return registry.Errorf(registry.CodeNotFound, "token %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("load token: %w", err)
		}
		if before.RevokedAt != nil {
			return registry.Errorf(registry.CodeConflict, "token %d (%q) was already revoked at %s", id, before.Name, before.RevokedAt.Format(time.RFC3339))
		}
		out, err = s.revoke(ctx, t, actor, before, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// revoke marks before revoked and records the event.
func (s *Store) revoke(ctx context.Context, t *txn, actor registry.Actor, before registry.Token, now time.Time) (*registry.Token, error) {
	if _, err := t.exec(ctx, "UPDATE tokens SET revoked_at = ? WHERE id = ?", now.UnixMicro(), before.ID); err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	after := before
	revoked := fromMicros(now.UnixMicro())
	after.RevokedAt = &revoked
	after.State = registry.TokenRevoked
	return &after, s.addEvent(ctx, t, actor, now, event{
		action: registry.ActionTokenRevoke, subjectType: "token", subject: before.Name, before: before, after: after,
	})
}

// touchGranularity makes TouchToken coarse: a token used on every request
// is written at most once a minute.
const touchGranularity = time.Minute

// TouchToken records a token's last use, at most once per minute, without
// an event (it is bookkeeping, not a change).
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	us := at.UTC().Truncate(time.Microsecond).UnixMicro()
	stale := us - touchGranularity.Microseconds()
	// Most requests find the stamp fresh; checking on the read pool first
	// keeps them from queueing for SQLite's write lock.
	var fresh bool
	err := s.inTx(ctx, "touch token", modeRead, func(t *txn) error {
		var last sql.NullInt64
		err := t.queryRow(ctx, "SELECT last_used_at FROM tokens WHERE id = ?", id).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			fresh = true
			return nil
		}
		fresh = last.Valid && last.Int64 > stale
		return err
	})
	if err != nil || fresh {
		return err
	}
	return s.inTx(ctx, "touch token", modeWrite, func(t *txn) error {
		_, err := t.exec(ctx, "UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
			us, id, stale)
		return err
	})
}
