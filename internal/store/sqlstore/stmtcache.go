package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// maxCachedStmts bounds the statement cache. The store's queries are built
// from a fixed set of shapes (a list's filters add clauses, never values),
// so the real number is a few dozen; the bound only guards against a bug
// that would put values into query text.
const maxCachedStmts = 256

// stmtCache keeps the read pool's prepared statements by query text. On
// SQLite, preparing (parsing and planning) a statement cost as much as
// running it: a GET of a version spent a fifth of its CPU in the SQL
// parser. database/sql prepares a cached *sql.Stmt once per connection of
// the pool and reuses it; Tx.StmtContext binds it to a read transaction.
// PostgreSQL has no cache here: pgx already caches its prepared statements
// per connection.
//
// A statement seen for the first time runs unprepared, and is prepared on
// the pool in the background: preparing on the pool needs a free
// connection, and a read transaction that waited for one while holding its
// own could wait forever once every connection is held so.
type stmtCache struct {
	db *sql.DB

	mu      sync.Mutex
	stmts   map[string]*sql.Stmt // nil value: being prepared
	closed  bool
	pending sync.WaitGroup
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}}
}

// get returns the prepared statement of q, or nil while it is not (yet)
// prepared: the caller runs q unprepared.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.stmts[q]
	if ok || c.closed || len(c.stmts) >= maxCachedStmts {
		return st
	}
	c.stmts[q] = nil
	c.pending.Add(1)
	go c.prepare(q)
	return nil
}

// prepare prepares q on the pool and caches it; a failure is forgotten so
// a later use tries again (the query itself reports its own error).
func (c *stmtCache) prepare(q string) {
	defer c.pending.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.db.PrepareContext(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		delete(c.stmts, q)
	case c.closed:
		_ = st.Close()
	default:
		c.stmts[q] = st
	}
}

// close waits for the statements being prepared and closes every cached
// one. Call it before closing the pool.
func (c *stmtCache) close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.pending.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for q, st := range c.stmts {
		if st != nil {
			if err := st.Close(); err != nil && first == nil {
				first = err
			}
		}
		delete(c.stmts, q)
	}
	return first
}

// stmt returns q prepared (for this transaction, if t has one) when t is a
// read with a statement cache and q is prepared, else nil.
func (t *txn) stmt(ctx context.Context, q string) *sql.Stmt {
	if t.stmts == nil {
		return nil
	}
	st := t.stmts.get(q)
	if st == nil || t.tx == nil {
		return st
	}
	return t.tx.StmtContext(ctx, st)
}
