package sqlstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// benchReadStore is a SQLite registry of 20 models x 20 versions shaped
// like bench/apiread's (metrics, tags, parameters, lineage, signature,
// staging and production assigned).
func benchReadStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "registry.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	actor := registry.Actor{Name: "bench"}
	for m := 1; m <= 20; m++ {
		name := fmt.Sprintf("m%05d", m)
		if _, err := s.CreateModel(b.Context(), actor, registry.ModelCreate{Name: name}); err != nil {
			b.Fatal(err)
		}
		for v := 1; v <= 20; v++ {
			sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", name, v)))
			env := map[bool]string{true: "prod", false: "dev"}[v%2 == 1]
			if _, err := s.CreateVersion(b.Context(), actor, name, registry.ModelVersionCreate{
				Source: "s3://bench/" + name, Checksum: "sha256:" + hex.EncodeToString(sum[:]), Format: "onnx",
				Parameters: map[string]string{"learning_rate": "0.001", "epochs": "20", "batch_size": "256", "optimizer": "adamw"},
				Metrics:    map[string]float64{"auc": float64(v*37%100) / 100, "f1": 0.5, "precision": 0.25, "recall": 0.75, "latency_p99_ms": 12.5},
				Lineage:    &registry.Lineage{RunID: "run", GitCommit: hex.EncodeToString(sum[:20]), Dataset: "s3://data", CodeURI: "https://git/x"},
				Signature: &registry.Signature{
					Inputs:  []registry.TensorSpec{{Name: "features", DType: "float32", Shape: []int64{-1, 64}}},
					Outputs: []registry.TensorSpec{{Name: "score", DType: "float32", Shape: []int64{-1, 1}}},
				},
				Description: "bench", Tags: map[string]string{"env": env, "dataset": "d1"},
			}); err != nil {
				b.Fatal(err)
			}
		}
		for i, stage := range []string{"staging", "production"} {
			if _, err := s.AssignStage(b.Context(), actor, name, stage, registry.StageAssign{Version: int64(19 + i)}, registry.AssignOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

// cpuTime is the process's CPU time so far (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op: on a shared machine wall time per operation
// moves with everyone else's load, CPU time much less.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkReadVersion is the store's share of GET
// /api/v1/models/{m}/versions/{v} (bench/apiread.sh "get").
func BenchmarkReadVersion(b *testing.B) {
	s := benchReadStore(b)
	b.ReportAllocs()
	i := 0
	start := cpuTime(b)
	defer reportCPU(b, start)
	for b.Loop() {
		i++
		if _, err := s.GetVersion(b.Context(), fmt.Sprintf("m%05d", i%20+1), int64(i%20+1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadVersionList is the store's share of bench/apiread.sh's
// "list": versions tagged env=prod, best AUC first, a page of 20.
func BenchmarkReadVersionList(b *testing.B) {
	s := benchReadStore(b)
	b.ReportAllocs()
	i := 0
	start := cpuTime(b)
	defer reportCPU(b, start)
	for b.Loop() {
		i++
		page, err := s.ListVersions(b.Context(), fmt.Sprintf("m%05d", i%20+1), registry.VersionFilter{
			ListOptions: registry.ListOptions{PageSize: 20}, Tag: "env=prod", OrderBy: "metrics.auc desc",
		})
		if err != nil || len(page.Items) != 10 {
			b.Fatal(err, len(page.Items))
		}
	}
}
