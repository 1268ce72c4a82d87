package answercache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestServedOnlyForItsGeneration(t *testing.T) {
	c := New(1 << 20)
	c.Put("k", 3, Answer{Body: []byte("three"), ETag: `"3"`})
	if a, ok := c.Get("k", 3); !ok || string(a.Body) != "three" || a.ETag != `"3"` {
		t.Fatalf("same generation: got %q %q %v", a.Body, a.ETag, ok)
	}
	if _, ok := c.Get("k", 2); ok {
		t.Fatal("an answer stored under generation 3 was served to a reader at generation 2")
	}
	if _, ok := c.Get("k", 3); !ok {
		t.Fatal("a reader at an older generation dropped the newer answer")
	}
	if _, ok := c.Get("k", 4); ok {
		t.Fatal("an answer stored under generation 3 was served at generation 4")
	}
	if _, ok := c.Get("k", 3); ok {
		t.Fatal("a stale answer stayed after a newer reader saw it")
	}
}

func TestOlderPutDoesNotReplaceNewer(t *testing.T) {
	c := New(1 << 20)
	c.Put("k", 5, Answer{Body: []byte("new")})
	c.Put("k", 4, Answer{Body: []byte("old")})
	if a, ok := c.Get("k", 5); !ok || string(a.Body) != "new" {
		t.Fatalf("got %q %v, want the generation 5 answer", a.Body, ok)
	}
}

func TestBudgetEvictsLeastRecentlyUsed(t *testing.T) {
	const budget = 64 << 10
	c := New(budget)
	body := []byte(strings.Repeat("x", 1000))
	for i := range 1000 {
		c.Put(fmt.Sprint("k", i), 1, Answer{Body: body})
	}
	st := c.Stats()
	if st.Bytes > budget {
		t.Fatalf("cache holds %d bytes, budget %d", st.Bytes, budget)
	}
	if st.Entries == 0 || st.Evictions == 0 {
		t.Fatalf("stats %+v: want entries kept and some evicted", st)
	}
	if _, ok := c.Get("k999", 1); !ok {
		t.Fatal("the most recent answer was evicted")
	}
	if _, ok := c.Get("k0", 1); ok {
		t.Fatal("the oldest answer survived a full budget")
	}
	c.Put("huge", 1, Answer{Body: make([]byte, budget)})
	if _, ok := c.Get("huge", 1); ok {
		t.Fatal("an answer larger than a shard's budget was kept")
	}
}

func TestConcurrentUse(t *testing.T) {
	c := New(16 << 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprint("k", i%97)
				gen := uint64(i / 500)
				if a, ok := c.Get(k, gen); ok && string(a.Body) != k {
					t.Errorf("goroutine %d: key %s answered %q", g, k, a.Body)
					return
				}
				c.Put(k, gen, Answer{Body: []byte(k)})
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Bytes > 16<<10 {
		t.Fatalf("over budget: %+v", st)
	}
}
