package gateway

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counterValue reads a counter (testutil would pull in another module).
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// seriesCount counts the gathered series of the named families (all
// families when names is empty).
func seriesCount(t testing.TB, g prometheus.Gatherer, names ...string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	n := 0
	for _, mf := range mfs {
		if len(want) == 0 || want[mf.GetName()] {
			n += len(mf.GetMetric())
		}
	}
	return n
}
