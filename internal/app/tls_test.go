package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/testcert"
)

// TestTLSServeAndReload serves HTTPS with a certificate from a private CA,
// reloads a new certificate without dropping an open connection, keeps
// the old one when the new files are broken, and refuses plain HTTP.
func TestTLSServeAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := testcert.NewCA(t)
	ca.Issue(t, 100, certFile, keyFile)

	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.TLSCertFile, c.TLSKeyFile = certFile, keyFile
	}))
	if !strings.HasPrefix(r.URL, "https://") {
		t.Fatalf("URL %q, want https://", r.URL)
	}
	// One keep-alive connection, kept across the reload.
	kept := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, MaxIdleConnsPerHost: 1}}
	serial := func(c *http.Client) int64 {
		t.Helper()
		req, _ := http.NewRequest("GET", r.URL+"/api/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+r.AdminToken)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		return res.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(kept); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}
	var conns sync.Map
	kept.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conns.Store(c, true)
		}
		return c, err
	}

	ca.Issue(t, 200, certFile, keyFile)
	if err := r.Main.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	// The open connection goes on with the certificate it started with.
	if got := serial(kept); got != 100 {
		t.Errorf("the open connection now sees serial %d; a reload must not drop it", got)
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("the kept client dialled %d new connections across the reload", n)
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	if got := serial(fresh); got != 200 {
		t.Errorf("a new connection sees serial %d, want the reloaded 200", got)
	}

	// Broken files: the reload fails and the current certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Main.ReloadTLS(); err == nil {
		t.Error("reloading a broken certificate succeeded")
	}
	fresh2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	if got := serial(fresh2); got != 200 {
		t.Errorf("after a failed reload a new connection sees serial %d, want 200", got)
	}

	// Plain HTTP on the TLS port gets no API answer.
	res, err := http.Get(strings.Replace(r.URL, "https://", "http://", 1) + "/healthz")
	if err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served on the TLS listener")
		}
	}
}

// TestPlainNonLoopbackWarns: listening beyond loopback without TLS logs a
// warning at start.
func TestPlainNonLoopbackWarns(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.Listen = "0.0.0.0:0"
		c.Logger = log
	}))
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "without TLS") {
		t.Errorf("no warning for a plain non-loopback listener; log:\n%s", buf.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
