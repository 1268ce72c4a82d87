package app

import (
	"context"
	"fmt"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// CreateToken makes a new token in the store and returns its secret, which
// exists nowhere else: only its SHA-256 is stored.
func CreateToken(ctx context.Context, st registry.Store, actor registry.Actor, name string, scope registry.Scope, stages []string) (string, *registry.Token, error) {
	if err := registry.ValidateName("name", name); err != nil {
		return "", nil, err
	}
	if err := registry.ValidateScope("scope", scope); err != nil {
		return "", nil, err
	}
	for i, s := range stages {
		if err := registry.ValidateStage(fmt.Sprintf("stages[%d]", i), s); err != nil {
			return "", nil, err
		}
	}
	secret, hash, err := registry.NewTokenSecret()
	if err != nil {
		return "", nil, fmt.Errorf("generate token: %w", err)
	}
	tok, err := st.CreateToken(ctx, actor, registry.Token{Name: name, Scope: scope, Stages: stages, Hash: hash})
	if err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}
