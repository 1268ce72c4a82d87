package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateUpstreamURLRefusesWhatTheGatewayWouldNotUse(t *testing.T) {
	for _, c := range []struct {
		url, rule string // rule "" = accepted
	}{
		{"http://churn-v6:8080", ""},
		{"https://models.internal/v1", ""},
		{"http://127.0.0.1:9000", ""},
		{"http://[::1]:9000/v1", ""},
		{"http://svc:hunter2@churn:8080", "url"},
		{"http://svc@churn:8080", "url"},
		{"ftp://churn", "url"},
		{"file:///etc/passwd", "url"},
		{"http://169.254.169.254/latest/meta-data", "upstream_address"},
		{"http://[fe80::1]:80", "upstream_address"},
		{"http://0.0.0.0:22", "upstream_address"},
		{"http://[::]:22", "upstream_address"},
		{"http://[::ffff:169.254.169.254]", "upstream_address"},
		{"http://224.0.0.1", "upstream_address"},
	} {
		err := ValidateUpstreamURL("routes[0].upstream_url", c.url)
		if c.rule == "" {
			if err != nil {
				t.Errorf("%s: %v", c.url, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Rule != c.rule || e.Field != "routes[0].upstream_url" {
			t.Errorf("%s: %v, want a field error with rule %s", c.url, err, c.rule)
			continue
		}
		if strings.Contains(e.Message, "hunter2") {
			t.Errorf("%s: the message repeats the password: %s", c.url, e.Message)
		}
	}
}
