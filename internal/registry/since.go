package registry

import (
	"strconv"
	"strings"
	"time"
)

// ParseAge reads a length of time as people write it on a command line or
// in a form: a Go duration ("90m", "24h") or whole days, alone or before a
// duration ("7d", "1d12h"). Days are 24 hours.
func ParseAge(s string) (time.Duration, bool) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || strings.HasPrefix(s, "+") {
			return 0, false
		}
		days = time.Duration(n) * 24 * time.Hour
		if s = s[i+1:]; s == "" {
			return days, true
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || (days > 0 && d < 0) {
		return 0, false
	}
	return days + d, true
}

// ParseSince reads an "at or after" time filter the way the audit log's
// page and the CLI's --since take it: RFC 3339, a date, a datetime-local
// value (both UTC), or a positive age back from now ("24h", "7d").
func ParseSince(field, s string, now time.Time) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, ok := ParseAge(s); ok && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, FieldError(field, "format", "%q is not a time: use RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a positive duration back from now (90m, 24h, 7d)", s)
}
