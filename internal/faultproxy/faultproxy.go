// Package faultproxy is a TCP proxy for tests that loses answers: it
// forwards every byte a client sends to the server, but on a share of the
// connections it closes both sides as soon as the server starts answering.
// The request has then reached the server (and usually been applied) while
// the client sees a broken connection: the case retries and idempotency
// keys exist for.
//
// It is test infrastructure; nothing in the product imports it.
package faultproxy

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards 127.0.0.1:<port> to a target address.
type Proxy struct {
	ln     net.Listener
	target string
	// dropRate is the share of connections whose first answer is lost.
	dropRate float64

	mu    sync.Mutex
	rng   *rand.Rand
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	// Connections counts accepted connections; Dropped counts those
	// closed as their first answer arrived.
	Connections, Dropped atomic.Int64
}

// Start listens on a free loopback port and forwards to target, dropping
// the answer on dropRate (0..1) of the connections. seed makes the choice
// repeatable.
func Start(target string, dropRate float64, seed uint64) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		ln: ln, target: target, dropRate: dropRate,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		conns: map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is "http://" + Addr().
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Close stops accepting, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.Connections.Add(1)
		p.mu.Lock()
		drop := p.rng.Float64() < p.dropRate
		p.mu.Unlock()
		p.wg.Add(1)
		go p.handle(c, drop)
	}
}

func (p *Proxy) handle(client net.Conn, drop bool) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	defer func() {
		_ = client.Close()
		_ = server.Close()
		p.track(client, false)
		p.track(server, false)
	}()

	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(server, client)
		if tc, ok := server.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		if drop {
			// Wait for the first byte of the answer: by then the server
			// has handled the request. Then lose it.
			var b [1]byte
			_, _ = server.Read(b[:])
			p.Dropped.Add(1)
			_ = client.Close()
			_ = server.Close()
		} else {
			_, _ = io.Copy(client, server)
		}
		done <- struct{}{}
	}()
	<-done
	// One direction ended: close both so the other ends too.
	_ = client.Close()
	_ = server.Close()
	<-done
}
