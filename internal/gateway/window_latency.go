package gateway

import (
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const latencyBins = registry.LatencyBins

func latencyBin(d time.Duration) int { return registry.LatencyBin(d) }

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

// latencyQuantile is registry.LatencyQuantile over a window's bins.
func latencyQuantile(q float64, bins [latencyBins]int64) (time.Duration, bool) {
	return registry.LatencyQuantile(q, bins[:])
}
