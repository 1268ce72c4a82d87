// Package promtest starts a real Prometheus server (Debian's prometheus
// package) for tests, the way scripts/with-postgres.sh starts PostgreSQL:
// on a free loopback port, in a temporary directory, stopped when the
// test ends. Without the binary the test is skipped, except under
// CI=true, where a skipped Prometheus test is a failure.
package promtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running Prometheus.
type Server struct {
	// URL is its base URL, e.g. http://127.0.0.1:39123.
	URL string
}

// Binary finds the prometheus binary, or skips t (fails it under CI).
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (apt-get install prometheus); CI runs the Prometheus gate tests")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus)")
	}
	return path
}

// Start runs Prometheus scraping targets (host:port, path /metrics) every
// interval, and returns once it answers queries.
func Start(t testing.TB, interval time.Duration, targets ...string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
  evaluation_interval: %s
scrape_configs:
  - job_name: mlregistry
    metrics_path: /metrics
    static_configs:
      - targets: [%s]
`, model(interval), model(interval*4/5), model(interval), strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// A port picked by the kernel and freed again: another process could
	// take it in between, so a start that fails on it is tried again.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		srv, err := start(t, bin, cfgPath, filepath.Join(dir, fmt.Sprintf("data-%d", port)), port)
		if err == nil {
			return srv
		}
		lastErr = err
	}
	t.Fatalf("prometheus did not start: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, cfgPath, data string, port int) (*Server, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var out lockedBuffer
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	// exited closes when the process ends; waitErr says how.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	srv := &Server{URL: "http://" + addr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("prometheus exited (%v): %s", waitErr, out.String())
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("prometheus not ready within 30s: %s", out.String())
		case <-tick.C:
		}
		resp, err := http.Get(srv.URL + "/-/ready")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					stop()
				}
				if t.Failed() {
					t.Logf("prometheus output:\n%s", out.String())
				}
			})
			return srv, nil
		}
	}
}

// model formats d as a Prometheus duration ("250ms", "2s").
func model(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
