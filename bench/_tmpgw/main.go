package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

type mem struct{ e registry.Endpoint }

func (m *mem) ListEndpoints(context.Context, registry.ListOptions) (*registry.Page[registry.Endpoint], error) {
	return &registry.Page[registry.Endpoint]{Items: []registry.Endpoint{m.e}}, nil
}
func (m *mem) LatestEventID(context.Context) (int64, error) { return 1, nil }
func (m *mem) RecordGuardRollback(ctx context.Context, a registry.Actor, n string, r int64, routes []registry.Route, msg string) (*registry.Endpoint, error) {
	return nil, registry.ErrInternal
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "")
	upstreams := flag.String("upstreams", "http://127.0.0.1:18081,http://127.0.0.1:18082", "")
	prof := flag.String("cpuprofile", "", "")
	_ = flag.String("db", "", "")
	flag.Parse()
	ups := strings.Split(*upstreams, ",")
	src := &mem{e: registry.Endpoint{Name: "bench", Model: "bench", Revision: 1, Routes: []registry.Route{
		{Name: "stable", Version: 1, UpstreamURL: ups[0], Weight: 90},
		{Name: "canary", Version: 2, UpstreamURL: ups[1], Weight: 10},
	}, Guard: &registry.Guard{MaxErrorRate: 0.5, MinRequests: 1000, Window: "1m"}}}
	gw, err := gateway.New(gateway.Options{Source: src, Registerer: prometheus.NewRegistry()})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := gw.Refresh(ctx); err != nil {
		log.Fatal(err)
	}
	if *prof != "" {
		f, _ := os.Create(*prof)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	srv := &http.Server{Addr: *listen, Handler: gw}
	go srv.ListenAndServe()
	<-ctx.Done()
}
