// Command gatewayserver serves the gateway alone, for bench/gateway.sh: it
// opens (or creates) a SQLite registry, makes sure the model "bench", two
// versions and the endpoint "bench" (routes 90/10 to the two upstreams,
// with a guard) exist, and serves gateway.New directly on -listen, so the
// benchmark measures the gateway itself rather than the whole app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "address to serve the gateway on")
	db := flag.String("db", "", "SQLite file of the registry (created when missing)")
	upstreams := flag.String("upstreams", "http://127.0.0.1:18081,http://127.0.0.1:18082", "the two route upstreams, comma-separated")
	fast := flag.Bool("fast-listener", true, "serve through gateway.Listener (raw non-blocking socket calls)")
	procs := flag.Int("procs", 0, "GOMAXPROCS for the gateway (0: the Go runtime's default, one per CPU)")
	useLane := flag.Bool("lane", true, "serve plain GETs on the gateway's fast lane (as mlregistry serve does)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	seedOnly := flag.Bool("seed-only", false, "create the model, versions and endpoint, then exit (for benchmarking `mlregistry serve` on the same database)")
	progressive := flag.Bool("progressive", false, "seed the endpoint with a header-matched route (weight 0, never matched by the benchmark's requests) and its 90/10 split as a rollout in force")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	if *db == "" {
		log.Fatal("gatewayserver: -db is required")
	}
	ups := strings.Split(*upstreams, ",")
	if len(ups) != 2 {
		log.Fatal("gatewayserver: -upstreams takes two URLs")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := sqlstore.Open(ctx, "sqlite://"+*db, sqlstore.Options{})
	if err != nil {
		log.Fatalf("gatewayserver: open store: %v", err)
	}
	defer store.Close()
	if err := seed(ctx, store, ups, *progressive); err != nil {
		log.Fatalf("gatewayserver: seed: %v", err)
	}
	if *seedOnly {
		return
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}

	gw, err := gateway.New(gateway.Options{
		Source:     store,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := gw.Refresh(ctx); err != nil {
		log.Fatalf("gatewayserver: load endpoints: %v", err)
	}
	go func() { _ = gw.Run(ctx) }()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *fast {
		ln = gateway.Listener(ln)
	}
	var lane *gateway.Lane
	if *useLane {
		lane = gw.Lane(ln, gateway.LaneOptions{})
		ln = lane
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if lane != nil {
			_ = lane.Shutdown(sctx)
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// seedStore is what seeding writes through.
type seedStore interface {
	registry.ModelStore
	registry.VersionStore
	registry.EndpointStore
}

// seed creates what the benchmark routes to; it is idempotent so the
// script can run against a kept database. progressive adds what header
// routing and rollouts cost every request: a route with a header match
// that every request is checked against, and the split served from a
// rollout in force (its only step baking for a day), whose observations
// each request counts.
func seed(ctx context.Context, s seedStore, ups []string, progressive bool) error {
	actor := registry.Actor{Name: "bench"}
	if _, err := s.CreateModel(ctx, actor, registry.ModelCreate{Name: "bench", Owner: "bench"}); err != nil && !errors.Is(err, registry.ErrAlreadyExists) {
		return err
	}
	var versions []int64
	for i := range 2 {
		v, err := s.CreateVersion(ctx, actor, "bench", registry.ModelVersionCreate{
			Source:   fmt.Sprintf("file:///m/%d", i+1),
			Checksum: "sha256:" + strings.Repeat(fmt.Sprintf("%x", i+1), 64),
			Format:   "onnx",
		})
		if errors.Is(err, registry.ErrAlreadyExists) {
			versions = append(versions, int64(i+1))
			continue
		}
		if err != nil {
			return err
		}
		versions = append(versions, v.Version)
	}
	routes := []registry.Route{
		{Name: "stable", Version: versions[0], UpstreamURL: ups[0], Weight: 90},
		{Name: "canary", Version: versions[1], UpstreamURL: ups[1], Weight: 10},
	}
	create := registry.EndpointCreate{
		Name:   "bench",
		Model:  "bench",
		Routes: routes,
		// A guard that watches every request but never trips on a healthy
		// upstream: the benchmark measures the gateway with its guard on.
		Guard: &registry.Guard{MaxErrorRate: 0.5, MinRequests: 1000, Window: "1m"},
	}
	if progressive {
		tester := registry.Route{Name: "tester", Version: versions[1], UpstreamURL: ups[1],
			Match: &registry.RouteMatch{Header: "X-Bench-Tester", Value: "always"}}
		routes = append(routes, tester)
		create.Routes = []registry.Route{{Name: "stable", Version: versions[0], UpstreamURL: ups[0], Weight: 100}}
		create.Rollout = &registry.RolloutSpec{Steps: []int{100}, Bake: "24h"}
	}
	_, err := s.CreateEndpoint(ctx, actor, create)
	if errors.Is(err, registry.ErrAlreadyExists) {
		return nil
	}
	if err != nil || !progressive {
		return err
	}
	_, err = s.UpdateEndpoint(ctx, actor, "bench", registry.EndpointPatch{Routes: &routes}, registry.Precondition{})
	return err
}
