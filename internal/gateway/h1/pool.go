package h1

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it fails pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// PoolOptions configures Pools.
type PoolOptions struct {
	// Control is the dialer's Control hook: it may refuse an address
	// (net.Dialer.Control).
	Control func(network, address string, c syscall.RawConn) error
	// KeepHeader reports whether a response header (canonical name) is
	// passed on to the caller, given the answer's Connection values; the
	// caller's forwarding rules drop hop-by-hop headers here. nil passes
	// every header.
	KeepHeader func(name string, connection []string) bool
}

// Pools maps upstream addresses to connection pools.
type Pools struct {
	dialer net.Dialer
	keep   func(string, []string) bool
	mu     sync.Mutex
	byAddr map[string]*Pool
}

// NewPools returns an empty set of pools.
func NewPools(opts PoolOptions) *Pools {
	return &Pools{
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Control: opts.Control},
		keep:   opts.KeepHeader,
		byAddr: map[string]*Pool{},
	}
}

// Get returns the pool for addr (host:port), creating it.
func (ps *Pools) Get(addr string) *Pool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.byAddr[addr]
	if p == nil {
		p = &Pool{addr: addr, dialer: &ps.dialer, keepHeader: ps.keep}
		ps.byAddr[addr] = p
	}
	return p
}

// Retain drops the pools whose address is not in keep, closing their idle
// connections; busy connections close when their request ends.
func (ps *Pools) Retain(keep map[string]bool) {
	ps.mu.Lock()
	var gone []*Pool
	for a, p := range ps.byAddr {
		if !keep[a] {
			gone = append(gone, p)
			delete(ps.byAddr, a)
		}
	}
	ps.mu.Unlock()
	for _, p := range gone {
		p.close()
	}
}

// Prune closes connections idle for longer than idleTimeout.
func (ps *Pools) Prune(now time.Time) {
	ps.mu.Lock()
	all := make([]*Pool, 0, len(ps.byAddr))
	for _, p := range ps.byAddr {
		all = append(all, p)
	}
	ps.mu.Unlock()
	for _, p := range all {
		p.prune(now.UnixNano())
	}
}

// Pool keeps idle keep-alive connections to one address, most recently
// used last (a stack, so hot connections stay hot and stale ones sink to
// the bottom where prune finds them).
type Pool struct {
	addr       string
	dialer     *net.Dialer
	keepHeader func(string, []string) bool
	mu         sync.Mutex
	idle       []*clientConn
	closed     bool
}

// keep reports whether a response header goes to the caller.
func (p *Pool) keep(k string, conn []string) bool {
	return p == nil || p.keepHeader == nil || p.keepHeader(k, conn)
}

func (p *Pool) take() *clientConn {
	p.mu.Lock()
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	p.mu.Unlock()
	return c
}

func (p *Pool) put(c *clientConn, now int64) {
	c.idleSince = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerHost {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

func (p *Pool) prune(now int64) {
	p.mu.Lock()
	var stale []*clientConn
	i := 0
	for i < len(p.idle) && now-p.idle[i].idleSince > int64(idleTimeout) {
		i++
	}
	if i > 0 {
		stale = append(stale, p.idle[:i]...)
		n := copy(p.idle, p.idle[i:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

func (p *Pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

func (p *Pool) dial(ctx context.Context) (*clientConn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	c := &clientConn{nc: nc, pool: p}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		_ = nc.Close()
		return nil, errors.New("upstream connection has no file descriptor")
	}
	if c.rc, err = sc.SyscallConn(); err != nil {
		_ = nc.Close()
		return nil, err
	}
	c.rawFn = c.rawStep
	c.br = bufio.NewReaderSize(c, upReadBuf)
	return c, nil
}
