package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/receipt"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// discardWriter is a minimal http.ResponseWriter, so BenchmarkServeHTTP
// measures the gateway's own work (routing, the upstream exchange over a
// real loopback connection, metrics, the guard) and not a client. The
// upstreams run in the test process, so allocs/op include theirs: of the
// 20, two are the gateway's (the response head's strings), the rest are
// the upstream's net/http server.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func benchGateway(b *testing.B) (*Gateway, string) {
	return benchGatewayWith(b, nil)
}

// benchGatewayWith is benchGateway with mod applied to the endpoint.
func benchGatewayWith(b *testing.B, mod func(*memSource)) (*Gateway, string) {
	body := make([]byte, 64)
	up1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	up2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	b.Cleanup(up1.Close)
	b.Cleanup(up2.Close)
	e := endpointOf("bench", rt("stable", 1, up1.URL, 90), rt("canary", 2, up2.URL, 10))
	e.Guard = &registry.Guard{MaxErrorRate: 0.5, MinRequests: 1000, Window: "1m"}
	src := newMemSource(e)
	if mod != nil {
		mod(src)
	}
	gw, err := New(Options{Source: src, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	if err := gw.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	return gw, up1.URL
}

func BenchmarkServeHTTP(b *testing.B) {
	gw, _ := benchGateway(b)
	benchServe(b, gw)
}

// BenchmarkServeHTTPRollout is BenchmarkServeHTTP with a rollout in force
// (the same 90/10 weights, the canary's old version under its @v name):
// what counting a step's observations costs.
func BenchmarkServeHTTPRollout(b *testing.B) {
	gw, _ := benchGatewayWith(b, func(s *memSource) {
		e := s.get("bench")
		canary := e.Routes[1]
		canary.Weight = 5
		old := canary
		old.Name, old.Version = "canary@v1", 1
		s.setRollout("bench", registry.RolloutStatus{
			ID: 1, State: registry.RolloutProgressing, Step: 1, StepPercents: []int{50, 100},
			Routes: []registry.Route{e.Routes[0], canary, old},
		})
	})
	if gw.table.Load().endpoints["bench"].rollout == nil {
		b.Fatal("no rollout in force")
	}
	benchServe(b, gw)
}

func benchServe(b *testing.B, gw *Gateway) {
	b.ReportAllocs()
	cpu0 := processCPU(b)
	defer func() { b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/serve/bench/predict", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			gw.ServeHTTP(w, req)
			if w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}

// BenchmarkEndToEnd goes through a real gateway server (behind Listener,
// as bench/gatewayserver serves it) and client.
func BenchmarkEndToEnd(b *testing.B) {
	gw, _ := benchGateway(b)
	srv := httptest.NewUnstartedServer(gw)
	srv.Listener = Listener(srv.Listener)
	srv.Start()
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(srv.URL + "/serve/bench/predict")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

// processCPU is the process's CPU time so far: on a shared machine wall
// time per request moves with everyone else's load, CPU time much less.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeHTTPReceipts is BenchmarkServeHTTP with every answer
// carrying a signed X-Prediction-Receipt (keys from a real SQLite store):
// what signing costs the serving path.
func BenchmarkServeHTTPReceipts(b *testing.B) {
	gw, _ := benchGateway(b)
	st, err := sqlstore.Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "r.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	kr, err := receipt.Open(b.Context(), st, receipt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	gw.receipts = kr
	benchServe(b, gw)
}
