package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Token routes (admin scope). Answers carry a token's name, id, scope,
// stages, times and state; the secret appears once, in the answer to the
// create, and the hash never.

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	toks, err := s.store.ListTokens(r.Context())
	if err != nil {
		return err
	}
	for i := range toks {
		fixToken(&toks[i])
	}
	return writeJSON(w, http.StatusOK, registry.Page[registry.Token]{Items: toks})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req registry.TokenCreate
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	out, err := registry.IssueToken(r.Context(), s.store, actor(r), req, s.now())
	if err != nil {
		return err
	}
	fixToken(&out.Token)
	s.location(w, r, "tokens", strconv.FormatInt(out.Token.ID, 10))
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTokenID(r)
	if err != nil {
		return err
	}
	tok, err := s.store.TokenByID(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, fixToken(tok))
}

// revokeToken revokes by id: names repeat after a revoke and re-create.
// The answer is the revoked token (it stays listed, as revoked).
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTokenID(r)
	if err != nil {
		return err
	}
	tok, err := s.store.RevokeTokenByID(r.Context(), actor(r), id)
	if err != nil {
		return err
	}
	// This replica refuses the token from the next request on; others
	// within their token cache's TTL.
	s.tokens.forgetID(id)
	return writeJSON(w, http.StatusOK, fixToken(tok))
}

func pathTokenID(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || strings.TrimLeft(v, "0123456789") != "" {
		return 0, registry.FieldError("id", "positive_integer", "token id %q must be a positive integer", v)
	}
	return n, nil
}

func fixToken(t *registry.Token) *registry.Token {
	if t.Stages == nil {
		t.Stages = []string{}
	}
	return t
}

// forgetID drops every cached answer for the token with this id.
func (c *tokenCache) forgetID(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.tok != nil && e.tok.ID == id {
			delete(c.entries, k)
		}
	}
}
