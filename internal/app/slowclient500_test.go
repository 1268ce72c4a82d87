package app_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
)

// TestFiveHundredSlowClients: 500 connections that hold the server
// without finishing a request (200 connect and send nothing, 150 trickle
// a request head a byte at a time, 150 authenticated POSTs trickle their
// body) do not stop a normal client from being served; the server itself
// closes each of them within its timeouts (the silent ones on the
// gateway's lane, which reads request heads before net/http does, by its
// header timeout, not its 120 s idle timeout), and the descriptors return
// to their baseline once they are gone. Timeouts are short (1 s header,
// 2 s read) to keep the test to a few seconds.
func TestFiveHundredSlowClients(t *testing.T) {
	const (
		headerTimeout, readTimeout = time.Second, 2 * time.Second
		silent, heads, bodies      = 200, 150, 150
		trickleEvery               = 100 * time.Millisecond
	)
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.ReadHeaderTimeout = headerTimeout
		c.ReadTimeout = readTimeout
	}))
	addr := strings.TrimPrefix(r.URL, "http://")
	// Warm up with concurrent requests: they open the pooled database
	// connections the slow clients' authentication will use, which stay.
	var warm sync.WaitGroup
	for range 32 {
		warm.Go(func() {
			req, _ := http.NewRequest("GET", r.URL+"/api/v1/models?page_size=1", nil)
			req.Header.Set("Authorization", "Bearer "+r.AdminToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	warm.Wait()
	// The normal client reads and closes each answer, so its connection is
	// idle (and closed) when the descriptors are counted.
	get := func() {
		t.Helper()
		req, _ := http.NewRequest("GET", r.URL+"/api/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+r.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("normal request: %d", resp.StatusCode)
		}
	}
	get()
	http.DefaultClient.CloseIdleConnections()
	baseline := openFDs(t)

	type slow struct {
		kind string
		c    net.Conn
		// limit is how long after opening the server must have closed it.
		limit time.Duration
	}
	var conns []slow
	dial := func(kind string, limit time.Duration, first string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if first != "" {
			if _, err := io.WriteString(c, first); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, slow{kind, c, limit})
	}
	start := time.Now()
	for range silent {
		dial("silent", headerTimeout+time.Second, "")
	}
	for range heads {
		dial("head", headerTimeout+time.Second, "GET /serve/ep/predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	}
	for range bodies {
		dial("body", readTimeout+time.Second, "POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Authorization: Bearer "+r.AdminToken+"\r\nContent-Length: 100000\r\n\r\n{\"na")
	}
	opened := time.Since(start)

	// The trickling ones keep sending a byte every trickleEvery until the
	// server closes them (a write fails) or the test ends.
	stop := make(chan struct{})
	var trickle sync.WaitGroup
	for _, s := range conns {
		if s.kind == "silent" {
			continue
		}
		trickle.Go(func() {
			tk := time.NewTicker(trickleEvery)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					if _, err := s.c.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		})
	}

	// A normal client is served, promptly, while all 500 hang.
	for range 5 {
		began := time.Now()
		get()
		if d := time.Since(began); d > 500*time.Millisecond {
			t.Errorf("a normal request took %v beside 500 slow clients", d)
		}
	}
	http.DefaultClient.CloseIdleConnections()

	// The server closes every slow connection within its timeouts.
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, s := range conns {
		wg.Go(func() {
			_ = s.c.SetReadDeadline(start.Add(opened + s.limit))
			_, err := io.Copy(io.Discard, s.c) // a 400/408 answer, then EOF
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				errs[i] = fmt.Errorf("%s client still open after %v", s.kind, s.limit)
			}
		})
	}
	wg.Wait()
	close(stop)
	trickle.Wait()
	failed := map[string]int{}
	for i, err := range errs {
		if err != nil {
			failed[conns[i].kind]++
			if failed[conns[i].kind] == 1 {
				t.Error(err)
			}
		}
	}
	if len(failed) > 0 {
		t.Errorf("slow connections the server did not close in time, by kind: %v", failed)
	}
	t.Logf("500 slow clients opened in %v, all closed by the server after %v", opened.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	for _, s := range conns {
		_ = s.c.Close()
	}
	// A few descriptors that are not the slow clients' (a keep-alive
	// connection, a database connection the pool opened) are allowed; 500
	// leaked connections would be hundreds.
	deadline := time.Now().Add(5 * time.Second)
	http.DefaultClient.CloseIdleConnections()
	for n := openFDs(t); n > baseline+5; n = openFDs(t) {
		if time.Now().After(deadline) {
			t.Fatalf("descriptors: %d, baseline %d", n, baseline)
		}
		time.Sleep(20 * time.Millisecond) // polling the process's descriptor table, bounded by the deadline
	}
}
