// Package answercache keeps encoded API answers (body and ETag) so a read
// of data that has not changed is answered without a database round trip
// and without encoding JSON again.
//
// # Consistency rule
//
// Every answer is stored with the change generation that was current when
// the read that produced it began, and is served only while the
// generation is still that value. The generation comes from a Counter,
// which must move:
//
//   - after every commit this process makes, before the write's response
//     is sent: a client that got a write's answer from a replica reads
//     that write on the same replica (read-your-write);
//   - within its poll interval after a commit made anywhere else (another
//     replica, another process on the same database file): other
//     replicas serve answers at most that old;
//   - whenever it cannot tell (a failed poll): a spurious move costs a
//     miss, a missed one would serve stale data.
//
// The caller reads the generation before it reads the store. A commit
// that lands while the answer is being read and encoded therefore moves
// the generation away from the one the answer is stored under, and the
// answer is never served. The ETag is stored beside the body it was
// encoded with, so it is exact whenever the body is.
//
// Memory is bounded: the cache holds at most its byte budget of answers
// (body, ETag, key and a fixed overhead per entry) and drops the least
// recently used ones first.
//
// It imports nothing of the project.
package answercache

import (
	"container/list"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Counter is the change generation answers are checked against.
// Generation must be cheap: it is read on every cached request.
type Counter interface {
	Generation() uint64
}

// Answer is one encoded answer. Body must not be modified after Put.
type Answer struct {
	Body []byte
	ETag string // "" for answers without one (list pages)
}

// entryOverhead approximates what an entry costs beyond its key, body and
// ETag bytes: the map slot, the list element and the entry struct.
const entryOverhead = 160

const shardCount = 16

// Cache is a byte-bounded LRU of answers, safe for concurrent use.
type Cache struct {
	seed   maphash.Seed
	shards [shardCount]shard

	hits, misses, evictions atomic.Uint64
}

type shard struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	items map[string]*list.Element
	lru   list.List // front = most recently used; values are *entry
}

type entry struct {
	key string
	gen uint64
	ans Answer
}

func (e *entry) size() int64 {
	return int64(len(e.key)+len(e.ans.Body)+len(e.ans.ETag)) + entryOverhead
}

// New returns a cache holding at most maxBytes of answers. An answer
// larger than a shard's share of the budget (maxBytes/16) is never kept.
func New(maxBytes int64) *Cache {
	c := &Cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].max = maxBytes / shardCount
		c.shards[i].items = map[string]*list.Element{}
	}
	return c
}

func (c *Cache) shard(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)%shardCount]
}

// Get returns the answer stored under key if it was stored with
// generation gen.
func (c *Cache) Get(key string, gen uint64) (Answer, bool) {
	sh := c.shard(key)
	sh.mu.Lock()
	el, ok := sh.items[key]
	if !ok {
		sh.mu.Unlock()
		c.misses.Add(1)
		return Answer{}, false
	}
	e := el.Value.(*entry)
	if e.gen != gen {
		// An older answer is stale for good (generations only move
		// forward); a newer one stays for the readers that come next.
		if e.gen < gen {
			sh.remove(el)
		}
		sh.mu.Unlock()
		c.misses.Add(1)
		return Answer{}, false
	}
	sh.lru.MoveToFront(el)
	a := e.ans
	sh.mu.Unlock()
	c.hits.Add(1)
	return a, true
}

// Put stores a under key for generation gen, evicting the least recently
// used answers of its shard beyond the budget.
func (c *Cache) Put(key string, gen uint64, a Answer) {
	e := &entry{key: key, gen: gen, ans: a}
	size := e.size()
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if el, ok := sh.items[key]; ok {
		old := el.Value.(*entry)
		// An answer read under an older generation must not replace one
		// read under a newer generation by a read that finished first.
		if old.gen > gen {
			return
		}
		sh.remove(el)
	}
	if size > sh.max {
		return
	}
	for sh.bytes+size > sh.max {
		back := sh.lru.Back()
		if back == nil {
			break
		}
		sh.remove(back)
		c.evictions.Add(1)
	}
	sh.items[key] = sh.lru.PushFront(e)
	sh.bytes += size
}

func (sh *shard) remove(el *list.Element) {
	e := el.Value.(*entry)
	sh.lru.Remove(el)
	delete(sh.items, e.key)
	sh.bytes -= e.size()
}

// Stats are the cache's counters since New.
type Stats struct {
	Hits, Misses, Evictions uint64
	Entries                 int
	Bytes                   int64
}

// Stats reads the counters and the current size.
func (c *Cache) Stats() Stats {
	st := Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		st.Entries += len(sh.items)
		st.Bytes += sh.bytes
		sh.mu.Unlock()
	}
	return st
}
