package registry

import (
	"math"
	"time"
)

// LatencyBounds are the upper bounds of the latency bins the gateway
// counts per route (the guard window, a rollout step's observations),
// chosen for model serving: a cached or tiny model answers in a few
// milliseconds, a large one in seconds. A last bin holds what is slower.
// Observations stored by one process and read by another use these bins,
// so changing them is a storage format change.
var LatencyBounds = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// LatencyBins is the number of latency bins: one per bound and one for
// what is slower than the last.
const LatencyBins = len(LatencyBounds) + 1

// LatencyBin is the bin d falls in: the first whose bound is not below it.
func LatencyBin(d time.Duration) int {
	for i, b := range LatencyBounds {
		if d <= b {
			return i
		}
	}
	return len(LatencyBounds)
}

// LatencyQuantile estimates the q-quantile (0 < q <= 1) of the latencies
// binned in bins (LatencyBins long; a shorter slice counts as zeros),
// interpolating linearly inside the bin the rank falls in, as
// Prometheus's histogram_quantile does. A rank in the last, unbounded bin
// yields the highest bound: the estimate never invents a latency the bins
// cannot show. ok is false when bins hold no request.
func LatencyQuantile(q float64, bins []int64) (d time.Duration, ok bool) {
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
		if i >= len(LatencyBounds) {
			return LatencyBounds[len(LatencyBounds)-1], true
		}
		var lo time.Duration
		if i > 0 {
			lo = LatencyBounds[i-1]
		}
		hi := LatencyBounds[i]
		frac := (rank - float64(below)) / float64(n)
		return lo + time.Duration(frac*float64(hi-lo)), true
	}
	return LatencyBounds[len(LatencyBounds)-1], true
}
