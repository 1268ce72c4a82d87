// Command apiread is the helper of bench/apiread.sh, which measures the
// registry's API reads against a bare net/http handler serving the same
// bytes. Modes:
//
//	seed      create MODELS models of VERSIONS versions each, with metrics,
//	          tags, parameters, lineage and a signature, through the store
//	          (registry.Store: the same write path, transactions and audit
//	          events as the API), WORKERS writers at once; with -through N
//	          only N per model, the rest SQL copies of those
//	baseline  capture the answer of every benchmarked URL from a running
//	          registry (-from, -token), then serve those bytes from a map
//	          with a bare net/http handler: the floor the registry is
//	          compared with
//	serve     run the registry in process (app.New, what `mlregistry serve`
//	          runs) with CPU and heap profiles written on SIGTERM
//	rss       print VmRSS and VmHWM of a process in MB
//
// The benchmarked URLs (the Lua scripts of bench/apiread.sh build the same
// strings):
//
//	get   /api/v1/models/mNNNNN/versions/V
//	list  /api/v1/models/mNNNNN/versions?tag=env%3Dprod&order_by=metrics.auc+desc&page_size=20
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// ListQuery is the filtered list of the benchmark: a model's versions
// tagged env=prod (half of them), best AUC first, one page of 20.
const ListQuery = "?tag=env%3Dprod&order_by=metrics.auc+desc&page_size=20"

func modelName(i int) string { return fmt.Sprintf("m%05d", i) }

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: apiread seed|baseline|serve|rss [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	var err error
	switch mode {
	case "seed":
		err = seed(args)
	case "baseline":
		err = baseline(args)
	case "serve":
		err = serve(args)
	case "rss":
		err = rss(args)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		log.Fatalf("apiread %s: %v", mode, err)
	}
}

func seed(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	db := fs.String("db", "", "registry database (sqlite://... or postgres://...)")
	models := fs.Int("models", 1000, "models to create")
	versions := fs.Int("versions", 20, "versions per model")
	workers := fs.Int("workers", 8, "concurrent writers")
	through := fs.Int("through", 0, "create only this many versions per model through the store and the rest as SQL copies of them (0: all through the store; SQLite only)")
	_ = fs.Parse(args)
	copies := 0
	if *through > 0 && *through < *versions {
		copies = *versions - *through
		*versions = *through
	}
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, *db, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	actor := registry.Actor{Name: "bench-seed"}
	start := time.Now()
	var done atomic.Int64
	jobs := make(chan int)
	errs := make(chan error, *workers)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				if err := seedModel(ctx, st, actor, m, *versions); err != nil {
					errs <- err
					return
				}
				if n := done.Add(1); n%200 == 0 {
					log.Printf("seed: %d/%d models (%.0f versions/s)", n, *models, float64(n)*float64(*versions)/time.Since(start).Seconds())
				}
			}
		}()
	}
	var firstErr error
feed:
	for m := 1; m <= *models; m++ {
		select {
		case jobs <- m:
		case firstErr = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		select {
		case firstErr = <-errs:
		default:
		}
	}
	if firstErr != nil {
		return firstErr
	}
	n := *models * *versions
	log.Printf("seed: %d models x %d versions = %d versions in %s (%.0f versions/s, %d writers)",
		*models, *versions, n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds(), *workers)
	if copies > 0 {
		if err := st.Close(); err != nil {
			return err
		}
		start = time.Now()
		if err := copyVersions(ctx, *db, *versions, copies); err != nil {
			return err
		}
		log.Printf("seed: %d more versions per model copied in SQL in %s", copies, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// copyVersions adds copies versions to every model of the SQLite registry
// at dsn, as copies of its first `through` versions (same columns, metric
// and tag rows, a new number and checksum), in one transaction, and moves
// the version counters on. A shortcut for loading 100,000 versions in
// seconds: the copies skip the store's write path and audit events.
func copyVersions(ctx context.Context, dsn string, through, copies int) error {
	path, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok {
		return fmt.Errorf("-through needs a sqlite:// database, not %q", dsn)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for offset := through; offset < through+copies; offset += through {
		n := min(through, through+copies-offset)
		for _, q := range []string{
			`INSERT INTO model_versions (model, version, source, checksum, format, parameters, metrics, lineage, signature,
				description, tags, flagged, flag_reason, created_at, created_by, updated_at, revision)
			SELECT model, version + ?1, source || '#' || (version + ?1), 'sha256:' || lower(hex(randomblob(32))), format, parameters, metrics,
				lineage, signature, description, tags, flagged, flag_reason, created_at, created_by, updated_at, revision
			FROM model_versions WHERE version <= ?2`,
			`INSERT INTO version_metrics (model, version, name, value) SELECT model, version + ?1, name, value FROM version_metrics WHERE version <= ?2`,
			`INSERT INTO version_tags (model, version, tag_key, tag_value) SELECT model, version + ?1, tag_key, tag_value FROM version_tags WHERE version <= ?2`,
		} {
			if _, err := tx.ExecContext(ctx, q, offset, n); err != nil {
				return fmt.Errorf("copy versions: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE version_counters SET last_version = ?", through+copies); err != nil {
		return err
	}
	return tx.Commit()
}

// seedStore is what seeding writes through.
type seedStore interface {
	registry.ModelStore
	registry.VersionStore
	registry.StageStore
}

// seedModel creates model m, its versions and two stages (staging on the
// next to last version, production on the last).
func seedModel(ctx context.Context, st seedStore, actor registry.Actor, m, versions int) error {
	name := modelName(m)
	if _, err := st.CreateModel(ctx, actor, registry.ModelCreate{
		Name: name, Description: "benchmark model " + name, Owner: "team-" + fmt.Sprint(m%10),
		Tags: map[string]string{"domain": "bench", "tier": fmt.Sprint(m % 3)},
	}); err != nil && registry.ErrorCode(err) != registry.CodeAlreadyExists {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(m), 7))
	for v := 1; v <= versions; v++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", name, v)))
		env := "prod"
		if v%2 == 0 {
			env = "dev"
		}
		vc := registry.ModelVersionCreate{
			Source:   fmt.Sprintf("s3://bench-artifacts/%s/%d/model.onnx", name, v),
			Checksum: "sha256:" + hex.EncodeToString(sum[:]),
			Format:   "onnx",
			Parameters: map[string]string{
				"learning_rate": fmt.Sprintf("%.4f", rng.Float64()/100), "epochs": fmt.Sprint(10 + rng.IntN(90)),
				"batch_size": "256", "optimizer": "adamw",
			},
			Metrics: map[string]float64{
				"auc": rng.Float64(), "f1": rng.Float64(), "precision": rng.Float64(), "recall": rng.Float64(),
				"latency_p99_ms": float64(rng.IntN(200)) + 0.5,
			},
			Lineage: &registry.Lineage{
				RunID: fmt.Sprintf("run-%d-%d", m, v), GitCommit: hex.EncodeToString(sum[:20]),
				Dataset: "s3://bench-data/train-2026-11", CodeURI: "https://git.example.com/ml/" + name,
			},
			Signature: &registry.Signature{
				Inputs:  []registry.TensorSpec{{Name: "features", DType: "float32", Shape: []int64{-1, 64}}},
				Outputs: []registry.TensorSpec{{Name: "score", DType: "float32", Shape: []int64{-1, 1}}},
			},
			Description: fmt.Sprintf("version %d of %s, trained nightly", v, name),
			Tags:        map[string]string{"env": env, "dataset": fmt.Sprintf("d%d", v%4)},
		}
		if _, err := st.CreateVersion(ctx, actor, name, vc); err != nil {
			if registry.ErrorCode(err) == registry.CodeAlreadyExists {
				continue // a rerun on the same database
			}
			return fmt.Errorf("create %s/%d: %w", name, v, err)
		}
	}
	for i, stage := range []string{"staging", "production"} {
		v := int64(versions - 1 + i)
		if v < 1 {
			continue
		}
		if _, err := st.AssignStage(ctx, actor, name, stage, registry.StageAssign{Version: v, Reason: "bench"}, registry.AssignOptions{}); err != nil {
			return fmt.Errorf("assign %s %s: %w", name, stage, err)
		}
	}
	return nil
}

// captured is one answer of the registry, replayed by the baseline.
type captured struct {
	etag string
	body []byte
}

func baseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18200", "address to serve on")
	from := fs.String("from", "", "base URL of the registry to capture answers from")
	token := fs.String("token", "", "bearer token for the capture")
	models := fs.Int("models", 1000, "models")
	versions := fs.Int("versions", 20, "versions per model")
	gets := fs.Bool("gets", true, "capture the GETs of every version (else only the lists)")
	_ = fs.Parse(args)

	var urls []string
	for m := 1; m <= *models; m++ {
		urls = append(urls, "/api/v1/models/"+modelName(m)+"/versions"+ListQuery)
		if *gets {
			for v := 1; v <= *versions; v++ {
				urls = append(urls, fmt.Sprintf("/api/v1/models/%s/versions/%d", modelName(m), v))
			}
		}
	}
	start := time.Now()
	answers, err := capture(*from, *token, urls)
	if err != nil {
		return err
	}
	var total int
	for _, a := range answers {
		total += len(a.body)
	}
	log.Printf("baseline: captured %d answers (%d bytes) in %s", len(answers), total, time.Since(start).Round(time.Millisecond))

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if a.etag != "" {
			w.Header().Set("ETag", a.etag)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(a.body)
	})
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// capture GETs every URL from the registry (8 at a time) and keeps each
// answer; anything but 200 is an error.
func capture(base, token string, urls []string) (map[string]captured, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	out := make(map[string]captured, len(urls))
	var mu sync.Mutex
	var firstErr error
	next := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				req, _ := http.NewRequest(http.MethodGet, base+u, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					out[u] = captured{etag: resp.Header.Get("ETag"), body: body}
				}
				mu.Unlock()
			}
		}()
	}
	for _, u := range urls {
		next <- u
	}
	close(next)
	wg.Wait()
	return out, firstErr
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18201", "address to serve on")
	db := fs.String("db", "", "registry database")
	cpuProfile := fs.String("cpuprofile", "", "CPU profile of the whole run")
	memProfile := fs.String("memprofile", "", "heap profile written at exit")
	_ = fs.Parse(args)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	m := app.New(app.Config{
		Listen: *listen, DB: *db,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err := m.Run(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-m.Err():
		return err
	}
	err := m.Close()
	if *memProfile != "" {
		f, ferr := os.Create(*memProfile)
		if ferr != nil {
			return ferr
		}
		runtime.GC()
		ferr = pprof.WriteHeapProfile(f)
		_ = f.Close()
		err = errors.Join(err, ferr)
	}
	return err
}

// rss prints "VmRSS VmHWM" of -pid in MB.
func rss(args []string) error {
	fs := flag.NewFlagSet("rss", flag.ExitOnError)
	pid := fs.Int("pid", 0, "process id")
	_ = fs.Parse(args)
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", *pid))
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	vals := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		var kb float64
		if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb); err != nil {
			return fmt.Errorf("parse %s: %w", key, err)
		}
		vals[key] = kb / 1024
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Printf("%.1f %.1f\n", vals["VmRSS"], vals["VmHWM"])
	return nil
}
