package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the real mlregistry binary once per test run.
var buildOnce = struct {
	sync.Once
	path string
	err  error
}{}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mlregistry-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "mlregistry")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildOnce.path != "" {
		os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

type serverProc struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	logs *bytes.Buffer
	mu   *sync.Mutex
}

var servingRE = regexp.MustCompile(`addr=(https?://127\.0\.0\.1:\d+)`)

// startServer runs `mlregistry serve` on a free port (with extra flags)
// and waits until it logs its address.
func startServer(t *testing.T, db string, extra ...string) *serverProc {
	t.Helper()
	return startProc(t, append([]string{"serve", "--listen", "127.0.0.1:0", "--db", db}, extra...)...)
}

// startProc runs the binary with args and waits until it logs the
// address it serves on (addr=...).
func startProc(t *testing.T, args ...string) *serverProc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, done: make(chan error, 1), logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				select {
				case urlCh <- m[1]:
				default:
				}
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.url = <-urlCh:
	case err := <-p.done:
		t.Fatalf("server exited before serving: %v\n%s", err, p.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start within 30s\n%s", p.logText())
	}
	return p
}

func (p *serverProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *serverProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("server did not exit within 30s")
		return nil
	}
}

func do(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

func createToken(t *testing.T, db, name, scope string, extra ...string) string {
	t.Helper()
	args := append([]string{"token", "create", "--db", db, "--name", name, "--scope", scope}, extra...)
	out, errOut, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, errOut)
	}
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, "mlr_") {
		t.Fatalf("token create printed %q, want a mlr_ secret", out)
	}
	return secret
}

// TestKill9KeepsAcknowledgedWrites: a write the server acknowledged is in
// the database after SIGKILL and restart (WAL + synchronous=FULL).
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	tok := createToken(t, db, "admin", "admin")
	srv := startServer(t, db)

	const n = 20
	for i := 1; i <= n; i++ {
		st, body := do(t, "POST", srv.url+"/api/v1/models", tok, map[string]any{"name": fmt.Sprintf("m%02d", i)})
		if st != http.StatusCreated {
			t.Fatalf("create model %d: %d %v", i, st, body)
		}
	}
	st, body := do(t, "POST", srv.url+"/api/v1/models/m01/versions", tok, map[string]any{
		"source": "s3://b/m01/1", "checksum": "sha256:" + strings.Repeat("ab", 32), "format": "onnx",
	})
	if st != http.StatusCreated {
		t.Fatalf("create version: %d %v", st, body)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.wait(t)

	srv2 := startServer(t, db)
	for i := 1; i <= n; i++ {
		if st, body := do(t, "GET", fmt.Sprintf("%s/api/v1/models/m%02d", srv2.url, i), tok, nil); st != http.StatusOK {
			t.Fatalf("model m%02d after kill -9: %d %v", i, st, body)
		}
	}
	if st, body := do(t, "GET", srv2.url+"/api/v1/models/m01/versions/1", tok, nil); st != http.StatusOK {
		t.Fatalf("version after kill -9: %d %v", st, body)
	}
}

func TestSIGTERMShutsDownGracefully(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	srv := startServer(t, db)
	if st, _ := do(t, "GET", srv.url+"/healthz", "", nil); st != http.StatusOK {
		t.Fatalf("healthz: %d", st)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, srv.logText())
	}
	if !strings.Contains(srv.logText(), "stopped") {
		t.Errorf("no shutdown log line:\n%s", srv.logText())
	}
}

func TestServeRequiresToken(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	tok := createToken(t, db, "reader", "read")
	srv := startServer(t, db)
	if st, _ := do(t, "GET", srv.url+"/api/v1/models", "", nil); st != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", st)
	}
	if st, _ := do(t, "GET", srv.url+"/api/v1/models", tok, nil); st != http.StatusOK {
		t.Errorf("read token: %d, want 200", st)
	}
	if st, _ := do(t, "POST", srv.url+"/api/v1/models", tok, map[string]any{"name": "x"}); st != http.StatusForbidden {
		t.Errorf("read token writing: %d, want 403", st)
	}
	if strings.Contains(srv.logText(), tok) {
		t.Error("server log contains the token secret")
	}
}

func TestInsecureNoAuthRefusedOffLoopback(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	_, errOut, err := runCLI(t, "serve", "--listen", "0.0.0.0:0", "--db", db, "--insecure-no-auth")
	if err == nil {
		t.Fatal("serve --insecure-no-auth on 0.0.0.0 started")
	}
	if !strings.Contains(errOut, "loopback") {
		t.Errorf("error does not explain the loopback rule: %s", errOut)
	}
}

func TestTokenAndMigrateCommands(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	out, errOut, err := runCLI(t, "migrate", "--db", db)
	if err != nil || !strings.Contains(out, "schema") {
		t.Fatalf("migrate: %v %s %s", err, out, errOut)
	}
	out, _, err = runCLI(t, "migrate", "--db", db)
	if err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: %v %s", err, out)
	}
	secret := createToken(t, db, "ci", "write", "--stages", "staging")
	out, _, err = runCLI(t, "token", "list", "--db", db)
	if err != nil || !strings.Contains(out, "ci") || !strings.Contains(out, "staging") {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	if strings.Contains(out, secret) {
		t.Fatal("token list prints the secret")
	}
	if _, errOut, err := runCLI(t, "token", "create", "--db", db, "--name", "Bad Name", "--scope", "read"); err == nil || !strings.Contains(errOut, "name") {
		t.Fatalf("bad token name accepted: %v %s", err, errOut)
	}
	if _, errOut, err := runCLI(t, "token", "create", "--db", db, "--name", "x", "--scope", "root"); err == nil || !strings.Contains(errOut, "scope") {
		t.Fatalf("bad scope accepted: %v %s", err, errOut)
	}
	if out, errOut, err := runCLI(t, "token", "revoke", "ci", "--db", db); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %v %s %s", err, out, errOut)
	}
	if _, _, err := runCLI(t, "token", "revoke", "ci", "--db", db); err == nil {
		t.Fatal("revoking twice succeeded")
	}
	if out, _, err := runCLI(t, "version"); err != nil || !strings.HasPrefix(out, "mlregistry ") {
		t.Fatalf("version: %v %q", err, out)
	}
	if _, _, err := runCLI(t, "bogus"); err == nil {
		t.Fatal("unknown command succeeded")
	}
}
