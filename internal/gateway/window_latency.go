package gateway

import (
	"math"
	"time"
)

// latencyBounds are the upper bounds of the guard window's latency bins,
// chosen for model serving: a cached or tiny model answers in a few
// milliseconds, a large one in seconds. A last bin holds what is slower.
var latencyBounds = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

const latencyBins = len(latencyBounds) + 1

// latencyBin is the bin d falls in: the first whose bound is not below it.
func latencyBin(d time.Duration) int {
	for i, b := range latencyBounds {
		if d <= b {
			return i
		}
	}
	return len(latencyBounds)
}

// observe counts one request's latency in the window's time bucket, with
// the same epoch-tagged compare-and-swap as record, so the window holds a
// latency histogram of exactly the requests it counts.
func (w *window) observe(now time.Time, d time.Duration) {
	e := w.epoch(now)
	bump(&w.buckets[e%windowBuckets].lat[latencyBin(d)], e)
}

// latencies sums each latency bin over the buckets inside the window
// ending at now.
func (w *window) latencies(now time.Time) (bins [latencyBins]int64) {
	cur := w.epoch(now)
	for i := range w.buckets {
		b := &w.buckets[i]
		for j := range b.lat {
			bins[j] += count(b.lat[j].Load(), cur)
		}
	}
	return bins
}

// latencyQuantile estimates the q-quantile (0 < q <= 1) of the latencies
// binned in bins, interpolating linearly inside the bin the rank falls in,
// as Prometheus's histogram_quantile does. A rank in the last, unbounded
// bin yields the highest bound: the estimate never invents a latency the
// bins cannot show. ok is false when bins hold no request.
func latencyQuantile(q float64, bins [latencyBins]int64) (d time.Duration, ok bool) {
	var total int64
	for _, n := range bins {
		total += n
	}
	if total == 0 || q <= 0 || q > 1 || math.IsNaN(q) {
		return 0, false
	}
	rank := q * float64(total)
	var below int64
	for i, n := range bins {
		if n == 0 || float64(below+n) < rank {
			below += n
			continue
		}
		if i == len(latencyBounds) {
			return latencyBounds[i-1], true
		}
		var lo time.Duration
		if i > 0 {
			lo = latencyBounds[i-1]
		}
		hi := latencyBounds[i]
		frac := (rank - float64(below)) / float64(n)
		return lo + time.Duration(frac*float64(hi-lo)), true
	}
	return latencyBounds[len(latencyBounds)-1], true
}
