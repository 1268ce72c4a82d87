package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// defaultChangePoll is how often Changes looks for commits made outside
// this process when Options.ChangePoll is 0.
const defaultChangePoll = 200 * time.Millisecond

// Changes is the store's change generation: a number that moves after
// every commit that may change what a read answers. Caches of encoded
// answers (the server's) serve an answer only while it has not moved
// since the read that produced it began.
//
// It moves in two ways:
//
//   - this process's commits move it in the transaction's after-commit
//     hook, before the write method returns: a write's caller reads it at
//     once;
//   - commits of other processes (other replicas on PostgreSQL, another
//     program on the same SQLite file) are found by a poll every
//     Options.ChangePoll. SQLite: PRAGMA data_version on a connection of
//     its own, which changes whenever another connection has committed,
//     and then the newest audit event's id, which changes only with a
//     write that has an event (every write that changes an answer; not
//     the rollout lease's renewals). PostgreSQL: the sum of the per-model
//     counters in change_stamps, which every write with an event naming
//     a model increments in its transaction; it grows with each such
//     commit whatever order transactions commit in, unlike
//     MAX(events.id), whose ids are taken before commit.
//
// A poll that fails moves the generation: the store cannot tell.
type Changes struct {
	s    *Store
	gen  atomic.Uint64
	poll time.Duration

	// mu serialises polls (the tick's and Check's); last is the previous
	// poll's reading.
	mu   sync.Mutex
	last reading
	// conn is SQLite's dedicated connection (data_version is per
	// connection); db is its one-connection pool.
	db   *sql.DB
	conn *sql.Conn

	stop chan struct{}
	done chan struct{}
}

// changeState is the Store's part of Changes: started on first use, so a
// store opened by a short CLI command polls nothing.
type changeState struct {
	once sync.Once
	c    *Changes
	err  error
	// local counts this process's commits; Changes adds it to what its
	// polls found.
	local atomic.Uint64
}

// Generation is the current change generation.
func (c *Changes) Generation() uint64 { return c.gen.Load() + c.s.changes.local.Load() }

// Changes starts (on first call) and returns the store's change
// generation. Close stops its poll.
func (s *Store) Changes(ctx context.Context) (*Changes, error) {
	st := &s.changes
	st.once.Do(func() {
		c := &Changes{s: s, poll: s.changePoll, stop: make(chan struct{}), done: make(chan struct{})}
		if c.poll <= 0 {
			c.poll = defaultChangePoll
		}
		if err := c.open(ctx); err != nil {
			st.err = err
			return
		}
		r, err := c.read(ctx, nil)
		if err != nil {
			c.closeConn()
			st.err = s.normalize(ctx, "watch changes", err)
			return
		}
		c.last = r
		st.c = c
		go c.run()
	})
	return st.c, st.err
}

// committed is the after-commit hook of every write with an audit event.
func (s *Store) committed() { s.changes.local.Add(1) }

func (c *Changes) open(ctx context.Context) error {
	if c.s.dialect != DialectSQLite {
		return nil
	}
	db, err := sql.Open("sqlite", c.s.sqlitePath+"?"+sqlitePragmas)
	if err != nil {
		return fmt.Errorf("sqlstore: watch changes: %w", err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("sqlstore: watch changes: %w", err)
	}
	c.db, c.conn = db, conn
	return nil
}

func (c *Changes) closeConn() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
	if c.db != nil {
		_ = c.db.Close()
	}
}

// reading is what one poll found; equal readings mean no commit that
// changes an answer in between.
type reading struct {
	// dataVersion is SQLite's PRAGMA data_version: it moves with every
	// commit of another connection, answers or not (the rollout lease is
	// renewed several times a second), so it only gates the second read.
	dataVersion int64
	// events is the newest audit event's id (SQLite): every write that
	// changes an answer writes one, and SQLite's single writer hands ids
	// out in commit order. On PostgreSQL, the sum of change_stamps (see
	// migration 0010).
	events string
}

// read takes a reading; prev is the last one, whose events part is kept
// when SQLite's data_version says nothing committed.
func (c *Changes) read(ctx context.Context, prev *reading) (reading, error) {
	var r reading
	if c.conn != nil {
		if err := c.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&r.dataVersion); err != nil {
			return r, err
		}
		if prev != nil && prev.dataVersion == r.dataVersion {
			r.events = prev.events
			return r, nil
		}
		var id sql.NullInt64
		if err := c.conn.QueryRowContext(ctx, "SELECT MAX(id) FROM events").Scan(&id); err != nil {
			return r, err
		}
		r.events = strconv.FormatInt(id.Int64, 10)
		return r, nil
	}
	var sum int64
	err := c.s.r.QueryRowContext(ctx, "SELECT CAST(COALESCE(SUM(changes), 0) AS BIGINT) FROM change_stamps").Scan(&sum)
	r.events = strconv.FormatInt(sum, 10)
	return r, err
}

// Check polls now, as the next tick would: a test, or a caller that knows
// another process just wrote, need not wait for the tick.
func (c *Changes) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.read(ctx, &c.last)
	if err != nil {
		c.gen.Add(1)
		return c.s.normalize(ctx, "watch changes", err)
	}
	if r.events != c.last.events {
		c.gen.Add(1)
	}
	c.last = r
	return nil
}

func (c *Changes) run() {
	defer close(c.done)
	defer c.closeConn()
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.poll+time.Second)
		err := c.Check(ctx)
		cancel()
		switch {
		case err != nil && !failing:
			c.s.log.Warn("sqlstore: cannot poll for changes; cached answers are dropped until it works again", "err", err)
			failing = true
		case err == nil && failing:
			c.s.log.Info("sqlstore: polling for changes works again")
			failing = false
		}
	}
}

func (c *Changes) close() {
	close(c.stop)
	<-c.done
}
