package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// anonymous is the actor of every request under InsecureNoAuth.
var anonymous = registry.Token{ID: 0, Name: "anonymous", Scope: registry.ScopeAdmin}

// maxSecretLen bounds what is hashed and looked up; real secrets are 36
// bytes.
const maxSecretLen = 256

// authenticate checks the bearer token and its scope before h runs. An
// empty need means the route is public.
func (s *Server) authenticate(need registry.Scope, h http.Handler) http.Handler {
	if need == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := s.token(r)
		if err != nil {
			WriteProblem(w, r, err)
			return
		}
		if !tok.Scope.Allows(need) {
			WriteProblem(w, r, scopeError(tok, need, "this request"))
			return
		}
		if st := stateFrom(r.Context()); st != nil {
			st.token = tok
		}
		h.ServeHTTP(w, r)
	})
}

func scopeError(tok *registry.Token, need registry.Scope, what string) *registry.Error {
	return &registry.Error{
		Code:    registry.CodePermissionDenied,
		Rule:    "scope",
		Message: fmt.Sprintf("token %q has scope %s; %s needs scope %s", tok.Name, tok.Scope, what, need),
	}
}

// requireScope checks a scope above the route's own (admin for forced
// deletes).
func requireScope(r *http.Request, need registry.Scope, what string) error {
	tok, ok := TokenFromContext(r.Context())
	if !ok {
		return registry.Errorf(registry.CodeUnauthenticated, "%s needs an authenticated token", what)
	}
	if !tok.Scope.Allows(need) {
		return scopeError(tok, need, what)
	}
	return nil
}

// mayAssignStage checks a token's stage restriction.
func mayAssignStage(r *http.Request, stage string) error {
	tok, ok := TokenFromContext(r.Context())
	if !ok {
		return registry.Errorf(registry.CodeUnauthenticated, "changing a stage needs an authenticated token")
	}
	if !tok.Scope.Allows(registry.ScopeWrite) {
		return scopeError(tok, registry.ScopeWrite, "changing a stage")
	}
	if !tok.MayAssignStage(stage) {
		return stageError(tok, stage)
	}
	return nil
}

// stageError is the answer for a token limited to other stages.
func stageError(tok *registry.Token, stage string) *registry.Error {
	return &registry.Error{
		Code:    registry.CodePermissionDenied,
		Field:   "stage",
		Rule:    "token_stages",
		Message: fmt.Sprintf("token %q may assign stages [%s], not %q", tok.Name, strings.Join(tok.Stages, ", "), stage),
	}
}

var errInvalidToken = registry.Errorf(registry.CodeUnauthenticated, "invalid or revoked token")

// token resolves the request's bearer token, from the cache when fresh.
func (s *Server) token(r *http.Request) (*registry.Token, error) {
	if s.insecure {
		t := anonymous
		return &t, nil
	}
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		// Which credential acts must never depend on header order.
		return nil, &registry.Error{
			Code:    registry.CodeInvalidArgument,
			Field:   "Authorization",
			Rule:    "single",
			Message: "send exactly one Authorization header; this request has " + strconv.Itoa(len(values)),
		}
	}
	header := r.Header.Get("Authorization")
	if header == "" {
		return nil, registry.Errorf(registry.CodeUnauthenticated, "missing Authorization header; send \"Authorization: Bearer <token>\"")
	}
	// The gateway strips tokens with the same parser (registry.BearerSecret).
	secret, ok := registry.BearerSecret(header)
	if !ok {
		return nil, registry.Errorf(registry.CodeUnauthenticated, "the Authorization header must use the Bearer scheme: \"Authorization: Bearer <token>\"")
	}
	if secret == "" || len(secret) > maxSecretLen {
		return nil, errInvalidToken
	}
	hash := registry.HashToken(secret)
	now := s.now()
	if tok, found := s.tokens.get(hash, now); found {
		if tok == nil {
			return nil, errInvalidToken
		}
		if tok.Expired(now) {
			return nil, expiredError(tok)
		}
		s.touch(tok, now)
		return tok, nil
	}
	tok, err := s.store.TokenByHash(r.Context(), hash)
	if registry.ErrorCode(err) == registry.CodeNotFound || (err == nil && tok.RevokedAt != nil) {
		s.tokens.put(hash, nil, now)
		return nil, errInvalidToken
	}
	if err != nil {
		return nil, err
	}
	s.tokens.put(hash, tok, now)
	if tok.Expired(now) {
		return nil, expiredError(tok)
	}
	s.touch(tok, now)
	return tok, nil
}

// expiredError refuses an expired token like a revoked one (401), saying
// why: the caller holds the secret, so naming the token tells it nothing new.
func expiredError(tok *registry.Token) error {
	return registry.Errorf(registry.CodeUnauthenticated, "token %q expired at %s; ask an admin for a new one", tok.Name, tok.ExpiresAt.UTC().Format(time.RFC3339))
}

// touch records the token's use at most once a minute, in the background
// so no request waits for it.
func (s *Server) touch(tok *registry.Token, now time.Time) {
	if tok.ID == 0 || !s.tokens.shouldTouch(tok.ID, now) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.TouchToken(ctx, tok.ID, now); err != nil {
			s.log.Warn("could not record token use", "token", tok.Name, "err", err)
		}
	}()
}

// maxCachedTokens bounds the cache so random bearer strings cannot grow it
// without limit.
const maxCachedTokens = 10000

// tokenCache remembers validated tokens (and, briefly, unknown ones) by
// hash so that auth is not a database query per request.
type tokenCache struct {
	ttl, negTTL time.Duration

	mu      sync.Mutex
	entries map[string]tokenEntry
	touched map[int64]time.Time
}

type tokenEntry struct {
	tok     *registry.Token // nil: unknown or revoked
	expires time.Time
}

func newTokenCache(ttl time.Duration) *tokenCache {
	neg := ttl
	if neg > maxNegativeCacheTTL {
		neg = maxNegativeCacheTTL
	}
	return &tokenCache{ttl: ttl, negTTL: neg, entries: map[string]tokenEntry{}, touched: map[int64]time.Time{}}
}

// get returns the cached answer for hash; found is false when there is
// none or it expired.
func (c *tokenCache) get(hash []byte, now time.Time) (tok *registry.Token, found bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[string(hash)]
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e.tok, true
}

func (c *tokenCache) put(hash []byte, tok *registry.Token, now time.Time) {
	ttl := c.ttl
	if tok == nil {
		ttl = c.negTTL
	}
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTokens {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCachedTokens {
			c.entries = map[string]tokenEntry{}
		}
	}
	c.entries[string(hash)] = tokenEntry{tok: tok, expires: now.Add(ttl)}
}

// shouldTouch reports whether the token's last use is due to be written,
// and if so claims it.
func (c *tokenCache) shouldTouch(id int64, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.touched[id]; ok && now.Sub(last) < touchInterval && !now.Before(last) {
		return false
	}
	if len(c.touched) >= maxCachedTokens {
		c.touched = map[int64]time.Time{}
	}
	c.touched[id] = now
	return true
}

// Allows reports whether r carries a valid token with scope need, without
// writing anything: the gateway's fast lane asks before serving a request
// itself, and hands refused ones to Handler, which writes the 401/403.
func (s *Server) Allows(r *http.Request, need registry.Scope) bool {
	tok, err := s.token(r)
	return err == nil && tok.Scope.Allows(need)
}

// HandleServe mounts the data plane h at pattern. Every scope may serve,
// a serve token only that, and a serve token limited to endpoints only
// those; endpoint names the endpoint a request is for ("" when its path
// names none). The gateway's fast lane asks MayServe, the same rule.
func (s *Server) HandleServe(pattern string, endpoint func(*http.Request) string, h http.Handler) {
	s.patterns = append(s.patterns, pattern)
	s.mux.Handle(pattern, s.matched(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := s.serveToken(r, endpoint(r))
		if err != nil {
			WriteProblem(w, r, err)
			return
		}
		if st := stateFrom(r.Context()); st != nil {
			st.token = tok
		}
		h.ServeHTTP(w, r)
	})))
}

// MayServe reports whether r carries a valid token that may call endpoint
// through the gateway, without writing anything (see Allows).
func (s *Server) MayServe(r *http.Request, endpoint string) bool {
	_, err := s.serveToken(r, endpoint)
	return err == nil
}

// serveToken authenticates a gateway request for endpoint.
func (s *Server) serveToken(r *http.Request, endpoint string) (*registry.Token, error) {
	tok, err := s.token(r)
	if err != nil {
		return nil, err
	}
	if !tok.Scope.Allows(registry.ScopeServe) {
		return nil, scopeError(tok, registry.ScopeServe, "calling an endpoint")
	}
	if !tok.MayServe(endpoint) {
		return nil, &registry.Error{
			Code: registry.CodePermissionDenied,
			Rule: "token_endpoints",
			Message: fmt.Sprintf("token %q may call endpoints [%s], not %q",
				tok.Name, strings.Join(tok.Endpoints, ", "), endpoint),
		}
	}
	return tok, nil
}
