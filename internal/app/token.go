package app

import (
	"context"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// CreateToken makes a new token in the store and returns its secret, which
// exists nowhere else: only its SHA-256 is stored.
func CreateToken(ctx context.Context, st registry.TokenStore, actor registry.Actor, name string, scope registry.Scope, stages []string) (string, *registry.Token, error) {
	out, err := registry.IssueToken(ctx, st, actor, registry.TokenCreate{Name: name, Scope: scope, Stages: stages}, time.Now())
	if err != nil {
		return "", nil, err
	}
	return out.Secret, &out.Token, nil
}
