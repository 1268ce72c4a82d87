package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPrometheusURLChecked: serve and gateway both take --prometheus-url
// (either may lead the rollouts) and refuse one that is not a base URL
// before opening anything.
func TestPrometheusURLChecked(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	for _, cmd := range []string{"serve", "gateway"} {
		_, stderr, err := runCLI(t, cmd, "--listen", "127.0.0.1:0", "--db", db, "--prometheus-url", "prometheus:9090")
		if err == nil || !strings.Contains(stderr, "--prometheus-url") || !strings.Contains(stderr, "want http(s)://host[:port][/path]") {
			t.Errorf("%s --prometheus-url prometheus:9090: %v\n%s", cmd, err, stderr)
		}
	}
}
