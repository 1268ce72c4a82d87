package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// cookieName names the session cookie. It holds a random session id; the
// token secret never leaves the login request.
const cookieName = registry.SessionCookie

// user is who a page is rendered for.
type user struct {
	Name  string
	Scope registry.Scope
	// tokenID is checked on every request, so a revoked token ends its
	// sessions at once (0 under InsecureNoAuth).
	tokenID int64
}

type session struct {
	user    user
	expires time.Time
}

// sessions are kept in memory, keyed by the SHA-256 of the id, so a
// memory dump or a log line of the map never yields a usable cookie.
type sessions struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[[32]byte]session
}

func newSessions(ttl time.Duration, limit int) *sessions {
	return &sessions{ttl: ttl, max: limit, m: map[[32]byte]session{}}
}

func sessionKey(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// create stores a session for u that ends at now+ttl or at the token's
// expiry, whichever is first, and returns its id and end.
func (s *sessions) create(u user, now time.Time, tokenExpires *time.Time) (string, time.Time, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	end := now.Add(s.ttl)
	if tokenExpires != nil && tokenExpires.Before(end) {
		end = *tokenExpires
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
			}
		}
		// Still full: drop the session closest to its end.
		for len(s.m) >= s.max {
			var oldest [32]byte
			first := true
			var at time.Time
			for k, v := range s.m {
				if first || v.expires.Before(at) {
					oldest, at, first = k, v.expires, false
				}
			}
			delete(s.m, oldest)
		}
	}
	s.m[sessionKey(id)] = session{user: u, expires: end}
	return id, end, nil
}

// get returns the live session of id; an expired one is dropped.
func (s *sessions) get(id string, now time.Time) (user, bool) {
	k := sessionKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return user{}, false
	}
	if !now.Before(v.expires) {
		delete(s.m, k)
		return user{}, false
	}
	return v.user, true
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sessionKey(id))
}

var anonymous = user{Name: "anonymous", Scope: registry.ScopeAdmin}

// user returns the signed-in user, or sends the browser to the login form
// and returns false.
func (h *Handler) user(w http.ResponseWriter, r *http.Request) (*user, bool) {
	if h.insecure {
		u := anonymous
		return &u, true
	}
	if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
		if u, ok := h.sessions.get(c.Value, h.now()); ok && h.tokenLive(r, u) {
			return &u, true
		}
		h.sessions.drop(c.Value)
		http.SetCookie(w, h.cookie(r, "", -1))
	}
	target := "/ui/login"
	if r.URL.Path != "/ui/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil, false
}

// tokenLive checks that the session's token is neither revoked nor expired
// now. A lookup failure other than not_found keeps the session (the
// database may be briefly unavailable; the page's own reads will say so).
func (h *Handler) tokenLive(r *http.Request, u user) bool {
	tok, err := h.store.TokenByID(r.Context(), u.tokenID)
	if err != nil {
		return registry.ErrorCode(err) != registry.CodeNotFound
	}
	return tok.StateAt(h.now()) == registry.TokenActive
}

// cookie builds the session cookie: HttpOnly (no script reads it),
// SameSite=Strict (no other site's page sends it, which is the UI's CSRF
// defence for logout), Secure behind TLS, scoped to /ui/.
func (h *Handler) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     cookieName,
		Value:    value,
		Path:     "/ui/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
}

type loginData struct {
	base
	Next  string
	Error string
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if h.insecure {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	h.render(w, http.StatusOK, view{"login", loginData{base: base{Title: "Sign in"}, Next: safeNext(r.URL.Query().Get("next"))}})
}

// maxLoginBody bounds the login form; a token is 36 bytes.
const maxLoginBody = 4 << 10

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if h.insecure {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "cross-origin form posts are refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	refuse := func(status int, msg string) {
		h.render(w, status, view{"login", loginData{base: base{Title: "Sign in"}, Next: next, Error: msg}})
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	if secret == "" {
		refuse(http.StatusUnauthorized, "Enter a registry token (mlr_...).")
		return
	}
	tok, err := h.authenticate(r.Context(), secret)
	if err != nil {
		if registry.ErrorCode(err) == registry.CodeUnauthenticated {
			refuse(http.StatusUnauthorized, "That token is not valid: unknown, revoked or expired.")
			return
		}
		h.log.Error("ui: login failed", "err", err)
		refuse(http.StatusServiceUnavailable, "The registry could not check the token; try again.")
		return
	}
	if !tok.Scope.Allows(registry.ScopeRead) {
		refuse(http.StatusForbidden, "Token \""+tok.Name+"\" has scope "+string(tok.Scope)+"; the UI needs scope read or higher.")
		return
	}
	now := h.now()
	id, end, err := h.sessions.create(user{Name: tok.Name, Scope: tok.Scope, tokenID: tok.ID}, now, tok.ExpiresAt)
	if err != nil {
		h.log.Error("ui: session", "err", err)
		refuse(http.StatusInternalServerError, "Could not start a session.")
		return
	}
	http.SetCookie(w, h.cookie(r, id, max(int(end.Sub(now)/time.Second), 1)))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin form posts are refused", http.StatusForbidden)
		return
	}
	if c, err := r.Cookie(cookieName); err == nil {
		h.sessions.drop(c.Value)
	}
	http.SetCookie(w, h.cookie(r, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the UI: a path under /ui/
// ("//evil.example" or "/\\evil.example" would leave the host).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

// sameOrigin refuses a form post another site's page made: browsers send
// Origin on POST; a request without one (curl) is let through, it carries
// no cookie a browser would add on its own.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
