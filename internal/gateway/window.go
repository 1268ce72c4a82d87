package gateway

import (
	"sync/atomic"
	"time"
)

// windowBuckets is how many time buckets a guard window is cut into. The
// window slides one bucket at a time, so it is exact to window/60 (5 s for
// a 5m window) and costs the same memory whether it spans 1 s or 24 h.
const windowBuckets = 60

// window counts requests and errors over a sliding time window without
// locks. Each counter word packs the bucket's epoch (its absolute bucket
// number, low 32 bits) above a 32-bit count, so "this bucket is stale,
// start over at 1" and "add 1" are both a single compare-and-swap and no
// count can be lost to a reset racing an increment.
type window struct {
	width   int64 // bucket width in nanoseconds
	buckets [windowBuckets]bucket
	// run is the guard's second measure: the current run of consecutive
	// requests, packed as epoch of its first request (blockEpochBits) |
	// requests | errors (blockCountBits each), so counting is one
	// compare-and-swap and exactly one request completes each run.
	run atomic.Uint64
}

const (
	blockCountBits = 20
	blockCountMask = 1<<blockCountBits - 1
	blockEpochBits = 64 - 2*blockCountBits
	blockEpochMask = 1<<blockEpochBits - 1
	// maxRunLength caps a run at what its counters hold; min_requests
	// beyond it judges runs of this length.
	maxRunLength = blockCountMask
)

type bucket struct {
	reqs atomic.Uint64
	errs atomic.Uint64
	lat  [latencyBins]atomic.Uint64
}

func newWindow(d time.Duration) *window {
	w := int64(d) / windowBuckets
	if w < int64(time.Millisecond) {
		w = int64(time.Millisecond)
	}
	return &window{width: w}
}

func (w *window) epoch(now time.Time) uint32 { return uint32(now.UnixNano() / w.width) }

// record counts one request, and one error when failed.
func (w *window) record(now time.Time, failed bool) {
	e := w.epoch(now)
	b := &w.buckets[e%windowBuckets]
	bump(&b.reqs, e)
	if failed {
		bump(&b.errs, e)
	}
}

func bump(c *atomic.Uint64, epoch uint32) {
	for {
		old := c.Load()
		next := uint64(epoch)<<32 | 1
		if uint32(old>>32) == epoch {
			next = old + 1
		}
		if c.CompareAndSwap(old, next) {
			return
		}
	}
}

// totals sums the buckets that lie inside the window ending at now.
func (w *window) totals(now time.Time) (reqs, errs int64) {
	cur := w.epoch(now)
	for i := range w.buckets {
		b := &w.buckets[i]
		reqs += count(b.reqs.Load(), cur)
		errs += count(b.errs.Load(), cur)
	}
	return reqs, errs
}

func count(v uint64, cur uint32) int64 {
	if age := cur - uint32(v>>32); age < windowBuckets {
		return int64(uint32(v))
	}
	return 0
}

// countRun adds one request to the current run of n consecutive requests.
// A run older than the window (its first request left it) starts over.
// When this request completes the run it returns the run's error count
// and true, and the next request starts a new run.
func (w *window) countRun(now time.Time, failed bool, n int64) (errs int64, done bool) {
	if n > maxRunLength {
		n = maxRunLength
	}
	e := uint64(w.epoch(now)) & blockEpochMask
	for {
		old := w.run.Load()
		start, reqs, errc := old>>(2*blockCountBits), old>>blockCountBits&blockCountMask, old&blockCountMask
		if reqs == 0 || (e-start)&blockEpochMask >= windowBuckets {
			start, reqs, errc = e, 0, 0
		}
		reqs++
		if failed {
			errc++
		}
		next := start<<(2*blockCountBits) | reqs<<blockCountBits | errc
		if int64(reqs) >= n {
			next = 0
		}
		if w.run.CompareAndSwap(old, next) {
			return int64(errc), int64(reqs) >= n
		}
	}
}

// runErrors is the error count of the current, unfinished run (0 when it
// is older than the window).
func (w *window) runErrors(now time.Time) int64 {
	v := w.run.Load()
	start, errc := v>>(2*blockCountBits), v&blockCountMask
	if v == 0 || (uint64(w.epoch(now))&blockEpochMask-start)&blockEpochMask >= windowBuckets {
		return 0
	}
	return int64(errc)
}
