package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Tokens (admin scope).

// CreateToken creates a token and returns it with its secret, which the
// registry shows this once. The create carries no Idempotency-Key (the
// server could not replay the secret); a retry after a lost answer meets
// the name already taken (already_exists).
func (c *Client) CreateToken(ctx context.Context, in registry.TokenCreate) (*registry.TokenCreated, error) {
	var out registry.TokenCreated
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("tokens"), body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens returns every token, revoked and expired ones included,
// oldest first. Never a secret.
func (c *Client) ListTokens(ctx context.Context) ([]registry.Token, error) {
	var page registry.Page[registry.Token]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("tokens")}, &page); err != nil {
		return nil, err
	}
	return page.Items, nil
}

// GetToken returns one token by id.
func (c *Client) GetToken(ctx context.Context, id int64) (*registry.Token, error) {
	var out registry.Token
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("tokens", strconv.FormatInt(id, 10))}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeToken revokes a token by id and returns it revoked; conflict when
// it already was.
func (c *Client) RevokeToken(ctx context.Context, id int64) (*registry.Token, error) {
	var out registry.Token
	if _, err := c.do(ctx, request{method: http.MethodDelete, path: apiPath("tokens", strconv.FormatInt(id, 10))}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
