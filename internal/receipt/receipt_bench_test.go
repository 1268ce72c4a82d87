package receipt

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// keyStore holds keys in memory: enough for Sign and Verify, which only
// read them.
type keyStore struct {
	registry.ReceiptKeyStore
	keys []registry.ReceiptKey
}

func (s *keyStore) EnsureReceiptKey(_ context.Context, secret []byte) ([]registry.ReceiptKey, error) {
	if len(s.keys) == 0 {
		s.keys = []registry.ReceiptKey{{ID: 1, Secret: secret}}
	}
	return s.keys, nil
}

func (s *keyStore) ReceiptKeys(context.Context) ([]registry.ReceiptKey, error) { return s.keys, nil }

var benchReceipt = registry.Receipt{Endpoint: "churn-api", Route: "canary", Model: "churn", Version: 7, RequestID: "01JF3Q8Z7K2M4N6P8R0T2V4X6Z"}

// cpuPerOp reports cpu-ns/op: on a shared machine wall time per operation
// moves with everyone else's load, the process's CPU time much less.
func cpuPerOp(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}

func BenchmarkSign(b *testing.B) {
	kr, err := Open(b.Context(), &keyStore{}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		_ = kr.Sign(benchReceipt)
	}
}

func BenchmarkVerify(b *testing.B) {
	kr, err := Open(b.Context(), &keyStore{}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rc := kr.Sign(benchReceipt)
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		if _, err := kr.Verify(b.Context(), rc); err != nil {
			b.Fatal(err)
		}
	}
}
