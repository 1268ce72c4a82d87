package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/testcert"
)

// TestServeTLSReloadsOnSIGHUP: `serve --tls-cert --tls-key` answers HTTPS,
// and SIGHUP makes new connections get the new certificate.
func TestServeTLSReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := testcert.NewCA(t)
	ca.Issue(t, 1, certFile, keyFile)
	cmd := exec.Command(binary(t), "serve", "--listen", "127.0.0.1:0", "--db", "sqlite://"+filepath.Join(dir, "r.db"),
		"--tls-cert", certFile, "--tls-key", keyFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addrRE := regexp.MustCompile(`addr=(https://127\.0\.0\.1:\d+)`)
	var url string
	for url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("server exited before serving")
			}
			if m := addrRE.FindStringSubmatch(l); m != nil {
				url = m[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("server did not start")
		}
	}
	go func() {
		for range lines { // keep the server's stderr flowing
		}
	}()
	serial := func(pool *x509.CertPool) (int64, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		res, err := c.Get(url + "/healthz")
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if s, err := serial(ca.Pool); err != nil || s != 1 {
		t.Fatalf("first certificate: serial %d, %v", s, err)
	}
	ca.Issue(t, 2, certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := serial(ca.Pool)
		if err == nil && s == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: serial %d, %v", s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
