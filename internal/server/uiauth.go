package server

import (
	"context"
	"net/http"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Authenticate checks a token secret as the API checks a bearer token
// (unknown, revoked and expired tokens are unauthenticated errors; the
// same cache), for callers that receive a secret some other way: the web
// UI's login form. Under InsecureNoAuth it returns the anonymous actor.
func (s *Server) Authenticate(ctx context.Context, secret string) (*registry.Token, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+secret)
	return s.token(r)
}
