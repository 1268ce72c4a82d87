package h1

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer answers every request with its target, without reading a
// body, then reads on from where it stopped (a body becomes the next
// request, as with Python's http.server). It counts connections,
// reports on answered each answer it wrote, and after answering a POST
// reads on only when proceed says so.
func echoServer(t *testing.T) (addr string, conns *atomic.Int64, answered, proceed chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns = new(atomic.Int64)
	answered = make(chan string, 16)
	proceed = make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					for {
						l, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if l == "\r\n" {
							break
						}
					}
					f := strings.Fields(line)
					if len(f) != 3 {
						return
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(f[1]), f[1])
					answered <- f[1]
					if f[0] == http.MethodPost {
						<-proceed
					}
				}
			}()
		}
	}()
	return l.Addr().String(), conns, answered, proceed
}

func doGet(t *testing.T, p *Pool, method, target, body string) string {
	t.Helper()
	b := AppendRequestLine(nil, method, target, "", "up")
	b = AppendBodyLength(b, method, len(body))
	b = append(b, body...)
	res, err := p.Do(context.Background(), &Request{Wire: b, Method: method, Replayable: method == http.MethodGet, Timeout: 5 * time.Second, Start: time.Now()}, http.Header{})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	rec := httptest.NewRecorder()
	if rerr, werr := res.Relay(rec, nil); rerr != nil || werr != nil {
		t.Fatalf("%s %s: relay: %v %v", method, target, rerr, werr)
	}
	return rec.Body.String()
}

// TestPoolReusesOnlyCleanExchanges: clean exchanges share one connection;
// a connection with an answer nobody asked for waiting on it is never
// reused, so that answer reaches nobody.
func TestPoolReusesOnlyCleanExchanges(t *testing.T) {
	addr, conns, answered, proceed := echoServer(t)
	p := NewPools(PoolOptions{}).Get(addr)
	for i := range 3 {
		want := fmt.Sprintf("/clean-%d", i)
		if got := doGet(t, p, http.MethodGet, want, ""); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		<-answered
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for three clean exchanges, want 1", n)
	}
	smuggled := "GET /EVIL HTTP/1.1\r\nHost: x\r\n\r\n"
	if got := doGet(t, p, http.MethodPost, "/early", smuggled); got != "/early" {
		t.Fatalf("got %q", got)
	}
	<-answered
	proceed <- "" // the connection is back in the pool; now the upstream reads the body
	if got := <-answered; got != "/EVIL" {
		t.Fatalf("upstream answered %q", got)
	}
	if got := doGet(t, p, http.MethodGet, "/next", ""); got != "/next" {
		t.Fatalf("the next request got %q: an answer nobody asked for", got)
	}
}
