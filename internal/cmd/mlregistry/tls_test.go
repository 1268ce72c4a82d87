package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 with the
// serial number, and returns a pool that trusts it.
func selfSigned(t *testing.T, serial int64, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
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
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestServeTLSReloadsOnSIGHUP: `serve --tls-cert --tls-key` answers HTTPS,
// and SIGHUP makes new connections get the new certificate.
func TestServeTLSReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pool1 := selfSigned(t, 1, certFile, keyFile)
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
	if s, err := serial(pool1); err != nil || s != 1 {
		t.Fatalf("first certificate: serial %d, %v", s, err)
	}
	pool2 := selfSigned(t, 2, certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := serial(pool2)
		if err == nil && s == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: serial %d, %v", s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
