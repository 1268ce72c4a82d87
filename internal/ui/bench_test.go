package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/ui"
)

// renderBudget is what the issue allows a page server-side.
const renderBudget = 200 * time.Millisecond

// benchStore is one SQLite registry shared by the benchmarks: model "big"
// with 1,000 versions (metrics, tags, stages), model "huge" with 10,000,
// and 1,000 models in all, each with a version and a stage.
var benchStore struct {
	once sync.Once
	st   *sqlstore.Store
	err  error
}

func benchHandler(b *testing.B) http.Handler {
	b.Helper()
	benchStore.once.Do(func() {
		dir, err := mkTemp()
		if err != nil {
			benchStore.err = err
			return
		}
		benchStore.st, benchStore.err = seedBench(filepath.Join(dir, "bench.db"))
	})
	if benchStore.err != nil {
		b.Fatal(benchStore.err)
	}
	h, err := ui.New(ui.Options{Store: benchStore.st, InsecureNoAuth: true})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func seedBench(path string) (*sqlstore.Store, error) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite://"+path, sqlstore.Options{})
	if err != nil {
		return nil, err
	}
	actor := registry.Actor{Name: "bench"}
	for _, m := range []struct {
		name string
		n    int
	}{{"big", 1000}, {"huge", 10000}} {
		if _, err := st.CreateModel(ctx, actor, registry.ModelCreate{Name: m.name, Owner: "bench", Description: "benchmark model"}); err != nil {
			return nil, err
		}
		for i := range m.n {
			v := registry.ModelVersionCreate{
				Source: fmt.Sprintf("s3://b/%s/%d", m.name, i), Checksum: checksum(fmt.Sprint(m.name, i)), Format: "onnx",
				Metrics: map[string]float64{"auc": float64((i*7919)%1000) / 1000, "f1": float64(i%97) / 97, "latency_ms": float64(i % 50)},
				Tags:    map[string]string{"run": fmt.Sprint(i)}, Description: "a version",
			}
			if i%50 == 0 {
				v.Flagged, v.FlagReason = true, "flagged for the benchmark"
			}
			_, err := st.CreateVersion(ctx, actor, m.name, v)
			if err != nil {
				return nil, err
			}
		}
		for _, s := range []struct {
			stage string
			v     int64
		}{{"staging", int64(m.n) - 1}, {"production", int64(m.n) - 3}, {"staging", int64(m.n) - 2}} {
			if _, err := st.AssignStage(ctx, actor, m.name, s.stage, registry.StageAssign{Version: s.v, Reason: "bench"}, registry.AssignOptions{}); err != nil {
				return nil, err
			}
		}
	}
	for i := 2; i < 1000; i++ {
		name := fmt.Sprintf("model-%04d", i)
		if _, err := st.CreateModel(ctx, actor, registry.ModelCreate{Name: name, Owner: "team-" + fmt.Sprint(i%10), Tags: map[string]string{"team": fmt.Sprint(i % 10)}}); err != nil {
			return nil, err
		}
		if _, err := st.CreateVersion(ctx, actor, name, registry.ModelVersionCreate{Source: "s3://b/" + name, Checksum: checksum(name), Format: "onnx"}); err != nil {
			return nil, err
		}
		if _, err := st.AssignStage(ctx, actor, name, "production", registry.StageAssign{Version: 1}, registry.AssignOptions{}); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// benchPage renders path once per iteration and fails when a render
// takes longer than the budget on average.
func benchPage(b *testing.B, path string) {
	h := benchHandler(b)
	req := httptest.NewRequest("GET", path, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s = %d: %s", path, rec.Code, rec.Body)
		}
	}
	if per := b.Elapsed() / time.Duration(b.N); per > renderBudget {
		b.Errorf("%s renders in %v, budget %v", path, per, renderBudget)
	}
}

// The model page of a model with 1,000 versions: the default page (100
// newest), every one of the 1,000 on one page, and sorted by a metric.
func BenchmarkModelPage1000Versions(b *testing.B) { benchPage(b, "/ui/models/big") }
func BenchmarkModelPage1000VersionsAllOnOnePage(b *testing.B) {
	benchPage(b, "/ui/models/big?page_size=1000")
}
func BenchmarkModelPage1000VersionsByMetric(b *testing.B) {
	benchPage(b, "/ui/models/big?sort=metrics.auc+desc")
}

// 10,000 versions: keyset pages cost the same as with 1,000.
func BenchmarkModelPage10000Versions(b *testing.B) { benchPage(b, "/ui/models/huge") }
func BenchmarkModelPage10000VersionsByMetric(b *testing.B) {
	benchPage(b, "/ui/models/huge?sort=metrics.auc+desc")
}

// The models page with 1,000 models, and a search that reads them all.
func BenchmarkModelsPage1000Models(b *testing.B)       { benchPage(b, "/ui/") }
func BenchmarkModelsPage1000ModelsSearch(b *testing.B) { benchPage(b, "/ui/?q=team-3") }

func BenchmarkVersionPage(b *testing.B) { benchPage(b, "/ui/models/huge/versions/9000") }
func BenchmarkEventsPage(b *testing.B)  { benchPage(b, "/ui/events?model=huge") }

var benchDir string

// mkTemp makes the benchmarks' database directory; it outlives each
// benchmark (they share one store), so TestMain removes it.
func mkTemp() (string, error) {
	var err error
	benchDir, err = os.MkdirTemp("", "mlregistry-ui-bench-")
	return benchDir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchStore.st != nil {
		benchStore.st.Close()
	}
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}
