package sqlstore

import (
	"net/url"
	"regexp"
	"strings"
)

// redacted replaces every secret RedactDSN finds.
const redacted = "xxxxx"

// RedactDSN returns dsn with its secrets masked, for logs and error
// messages: the password of a URL's user info (postgres://user:xxxxx@host)
// and the value of every query parameter whose name contains "password",
// in any case (?password=, ?PassWord=, ?sslpassword=). In a libpq
// key=value DSN (host=db password='s3 cret') the same keys are masked.
//
// It is the one redaction function of the registry (the app logs through
// it too), and it errs on the side of masking: a password that holds an
// unescaped '@', '/', '?' or '#' (which url.Parse would read as something
// else) is masked up to the last '@', even if that hides a little more
// than the password.
func RedactDSN(dsn string) string {
	scheme, rest, isURL := strings.Cut(dsn, "://")
	if !isURL {
		return redactKeyValues(dsn)
	}
	// Query parameters named *password*. Every '?' or '&' may start one:
	// a '?' or '&' typed inside the user info password must not hide the
	// real query from this pass.
	rest = redactParams(rest)
	// User info: everything after the first ':' up to the last '@'.
	// Whatever url.Parse makes of it, nothing typed between user: and @
	// survives.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			rest = rest[:colon+1] + redacted + rest[at:]
		}
	}
	return scheme + "://" + rest
}

// redactParams masks the value of every key=value piece of s that
// follows a '?' or '&' and whose key names a password.
func redactParams(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexAny(s, "?&")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+1])
		s = s[i+1:]
		end := strings.IndexAny(s, "?&")
		if end < 0 {
			end = len(s)
		}
		rawKey, _, _ := strings.Cut(s[:end], "=")
		key := rawKey
		if k, err := url.QueryUnescape(rawKey); err == nil {
			key = k
		}
		if isPasswordKey(key) {
			b.WriteString(rawKey + "=" + redacted)
			s = s[end:]
		}
	}
}

func isPasswordKey(key string) bool {
	return strings.Contains(strings.ToLower(key), "password")
}

// keyValuePassword matches key = value in a libpq connection string,
// where the value is a single-quoted string (with backslash escapes) or a
// run of non-blanks.
var keyValuePassword = regexp.MustCompile(`(?is)([a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']*)`)

func redactKeyValues(dsn string) string {
	if !strings.Contains(strings.ToLower(dsn), "password") {
		return dsn
	}
	return keyValuePassword.ReplaceAllString(dsn, "${1}"+redacted)
}
