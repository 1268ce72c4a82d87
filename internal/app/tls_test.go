package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
)

// testCA is a private CA made in the test, issuing leaf certificates for
// 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mlregistry test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a leaf certificate with the serial number to certFile and
// its key to keyFile.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSServeAndReload serves HTTPS with a certificate from a private CA,
// reloads a new certificate without dropping an open connection, keeps
// the old one when the new files are broken, and refuses plain HTTP.
func TestTLSServeAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := newTestCA(t)
	ca.issue(t, 100, certFile, keyFile)

	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.TLSCertFile, c.TLSKeyFile = certFile, keyFile
	}))
	if !strings.HasPrefix(r.URL, "https://") {
		t.Fatalf("URL %q, want https://", r.URL)
	}
	// One keep-alive connection, kept across the reload.
	kept := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, MaxIdleConnsPerHost: 1}}
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

	ca.issue(t, 200, certFile, keyFile)
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
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
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
	fresh2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
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
