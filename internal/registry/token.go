package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// TokenPrefix starts every token secret, so leaked tokens are easy to spot
// by secret scanners.
const TokenPrefix = "mlr_"

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTokenSecret returns a fresh random secret (160 bits) and its hash. The
// secret is shown to the user once; only the hash is stored.
func NewTokenSecret() (secret string, hash []byte, err error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret = TokenPrefix + strings.ToLower(tokenEncoding.EncodeToString(b[:]))
	return secret, HashToken(secret), nil
}

// HashToken returns the SHA-256 of a token secret.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// BearerSecret returns the secret of an Authorization header value of the
// Bearer scheme (case-insensitive), with surrounding white space trimmed;
// ok is false for any other scheme. The server authenticates with it, and
// the gateway strips with it every value the server would take for one of
// its tokens, so the two cannot disagree on what a registry token is.
func BearerSecret(header string) (secret string, ok bool) {
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(secret), true
}

// IsTokenSecret reports whether secret has the form of a registry token
// (every secret NewTokenSecret makes starts with TokenPrefix).
func IsTokenSecret(secret string) bool {
	return strings.HasPrefix(secret, TokenPrefix)
}

// SessionCookie names the web UI's session cookie, which stands for a
// token the way a bearer secret does.
const SessionCookie = CookiePrefix + "session"

// IsRegistryCookie reports whether a cookie of this name is the
// registry's: every cookie the registry sets is named mlregistry_..., so
// proxies that must not pass registry credentials on (the gateway) can
// tell them from a model server's cookies without a list to keep in step.
func IsRegistryCookie(name string) bool {
	return strings.HasPrefix(name, CookiePrefix)
}

// CookiePrefix starts the name of every cookie the registry sets.
const CookiePrefix = "mlregistry_"
