package sqlstore

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// BenchmarkRecordFeedback is the store's share of one feedback batch of
// 100 items (two metrics each) on SQLite: dedup records, bucket sums and
// the event, in one transaction.
func BenchmarkRecordFeedback(b *testing.B) {
	s, err := Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "registry.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	actor := registry.Actor{Name: "bench"}
	if _, err := s.CreateModel(b.Context(), actor, registry.ModelCreate{Name: "m"}); err != nil {
		b.Fatal(err)
	}
	for v := 1; v <= 2; v++ {
		if _, err := s.CreateVersion(b.Context(), actor, "m", registry.ModelVersionCreate{
			Source: fmt.Sprintf("s3://b/%d", v), Checksum: fmt.Sprintf("sha256:%064d", v), Format: "onnx"}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.CreateEndpoint(b.Context(), actor, registry.EndpointCreate{Name: "ep", Model: "m", Routes: []registry.Route{
		{Name: "stable", Version: 1, UpstreamURL: "http://127.0.0.1:9", Weight: 90},
		{Name: "canary", Version: 2, UpstreamURL: "http://127.0.0.1:9", Weight: 10},
	}}); err != nil {
		b.Fatal(err)
	}
	now := s.clock()
	seq := 0
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		items := make([]registry.FeedbackRecord, 100)
		for i := range items {
			seq++
			v := int64(1 + seq%10/9)
			items[i] = registry.FeedbackRecord{Index: i, Metrics: map[string]float64{"correct": float64(seq % 2), "abs_error": 0.25},
				Receipt: registry.Receipt{KeyID: 1, IssuedAt: now, Endpoint: "ep", Route: "stable", Model: "m", Version: v, RequestID: fmt.Sprintf("req-%d", seq)}}
		}
		res, err := s.RecordFeedback(b.Context(), actor, "ep", items)
		if err != nil || res.Accepted != 100 {
			b.Fatal(res, err)
		}
	}
	reportCPU(b, start)
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "items/s")
}
