package gateway

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

// pools maps upstream addresses to connection pools.
type pools struct {
	dialer net.Dialer
	mu     sync.Mutex
	byAddr map[string]*connPool
}

func newPools(control func(network, address string, c syscall.RawConn) error) *pools {
	return &pools{
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Control: control},
		byAddr: map[string]*connPool{},
	}
}

// get returns the pool for addr, creating it.
func (ps *pools) get(addr string) *connPool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.byAddr[addr]
	if p == nil {
		p = &connPool{addr: addr, dialer: &ps.dialer}
		ps.byAddr[addr] = p
	}
	return p
}

// retain drops the pools whose address is not in keep, closing their idle
// connections; busy connections close when their request ends.
func (ps *pools) retain(keep map[string]bool) {
	ps.mu.Lock()
	var gone []*connPool
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

// prune closes connections idle for longer than idleTimeout.
func (ps *pools) prune(now time.Time) {
	ps.mu.Lock()
	all := make([]*connPool, 0, len(ps.byAddr))
	for _, p := range ps.byAddr {
		all = append(all, p)
	}
	ps.mu.Unlock()
	for _, p := range all {
		p.prune(now.UnixNano())
	}
}

// connPool keeps idle keep-alive connections to one address, most
// recently used last (a stack, so hot connections stay hot and stale
// ones sink to the bottom where prune finds them).
type connPool struct {
	addr   string
	dialer *net.Dialer
	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

func (p *connPool) take() *upConn {
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

func (p *connPool) put(c *upConn, now int64) {
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

func (p *connPool) prune(now int64) {
	p.mu.Lock()
	var stale []*upConn
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

func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

func (p *connPool) dial(ctx context.Context) (*upConn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{nc: nc, pool: p, whead: make([]byte, 0, 1024)}
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
