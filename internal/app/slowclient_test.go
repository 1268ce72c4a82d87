package app_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
)

// openFDs counts this process's open descriptors (server and clients
// both live in the test process).
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(entries)
}

// slowPOST sends a request head announcing a 100000-byte body, then 4
// bytes of it, and stops.
func slowPOST(t *testing.T, addr, auth string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	head := "POST /api/v1/models HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
	if auth != "" {
		head += "Authorization: Bearer " + auth + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n{\"na"); err != nil {
		t.Fatal(err)
	}
	return c
}

// answered reads one response from c and then expects the server to
// close the connection; it returns the status and when that happened.
func answered(c net.Conn, limit time.Duration) (status int, closed bool, err error) {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil {
		return 0, false, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	_, err = br.ReadByte()
	return res.StatusCode, err == io.EOF, nil
}

// TestSlowClients: 50 unauthenticated POSTs that announce a body, send 4
// bytes of it and stop are each answered 401 and closed at once (the
// server does not wait for a body it will never read), a normal client is
// served meanwhile, and the descriptors return to where they were. An
// authenticated request whose body stalls is cut off by the read timeout.
func TestSlowClients(t *testing.T) {
	// The refused clients must be answered and closed well before the read
	// timeout would end them anyway.
	const readTimeout, prompt = 4 * time.Second, 1500 * time.Millisecond
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.ReadHeaderTimeout = time.Second
		c.ReadTimeout = readTimeout
	}))
	addr := strings.TrimPrefix(r.URL, "http://")
	// Warm up: the first requests open pooled database connections.
	mustStatus(t, call(t, "GET", r.URL+"/api/v1/models", r.AdminToken, nil), http.StatusOK)
	http.DefaultClient.CloseIdleConnections()
	baseline := openFDs(t)

	start := time.Now()
	conns := make([]net.Conn, 50)
	for i := range conns {
		conns[i] = slowPOST(t, addr, "")
	}
	// A normal client is served while they hang.
	mustStatus(t, call(t, "GET", r.URL+"/api/v1/models", r.AdminToken, nil), http.StatusOK)
	if d := time.Since(start); d > prompt {
		t.Errorf("a normal request waited %v behind the slow clients", d)
	}

	var wg sync.WaitGroup
	errs := make([]string, len(conns))
	for i, c := range conns {
		wg.Go(func() {
			status, closed, err := answered(c, prompt)
			switch {
			case err != nil:
				errs[i] = err.Error()
			case status != http.StatusUnauthorized || !closed:
				errs[i] = "status " + http.StatusText(status) + ", closed " + map[bool]string{true: "yes", false: "no"}[closed]
			}
		})
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("slow client %d: %s", i, e)
		}
	}
	if d := time.Since(start); d > prompt {
		t.Errorf("answering and closing the slow clients took %v", d)
	}
	for _, c := range conns {
		c.Close()
	}
	// The normal client's keep-alive connection and a database connection
	// the pool may have opened meanwhile are not the slow clients': allow
	// a few; 50 leaked connections would be 50 to 100 descriptors.
	deadline := time.Now().Add(5 * time.Second)
	for http.DefaultClient.CloseIdleConnections(); openFDs(t) > baseline+5; http.DefaultClient.CloseIdleConnections() {
		if time.Now().After(deadline) {
			t.Fatalf("descriptors: %d, baseline %d", openFDs(t), baseline)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Authenticated, the server does read the body, but not forever: the
	// read timeout ends it (400, connection closed).
	c := slowPOST(t, addr, r.AdminToken)
	defer c.Close()
	began := time.Now()
	status, closed, err := answered(c, readTimeout+3*time.Second)
	if err != nil || status != http.StatusBadRequest || !closed {
		t.Fatalf("stalled body: status %d closed %v err %v", status, closed, err)
	}
	if d := time.Since(began); d > readTimeout+time.Second {
		t.Errorf("a stalled body held the connection %v (read timeout %v)", d, readTimeout)
	}
}
