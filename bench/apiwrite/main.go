// Command apiwrite measures version creates through the real HTTP API: N
// concurrent writers POST /api/v1/models/{model}/versions against a
// registry (app.Main: store, server, listener on 127.0.0.1:0) on a SQLite
// file (WAL, synchronous=FULL, as shipped) and, when -postgres is given,
// on PostgreSQL. SQLite runs twice per round, with group commit off (every
// write commits on its own: the baseline) and on, interleaved in the same
// run so that the ratio survives a noisy machine.
//
//	go run ./bench/apiwrite -writers 8 -duration 5s -rounds 2 [-postgres DSN]
//
// bench/apiwrite.sh starts a durable PostgreSQL (fsync on) for -postgres.
//
// The registry runs in a child process (this program, "apiwrite serve"),
// as `mlregistry serve` does in production, so the load generator's
// goroutines and garbage do not share the registry's two Ps and its
// collector: with them in one process, the serial group committer waited
// for a P behind the load generator and the figure came out at about half
// of what wrk measures against `mlregistry serve`. -inprocess keeps the
// old layout for comparison.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

type config struct {
	name          string // table label
	dialect       string // "sqlite" or "postgres"
	noGroupCommit bool
}

type result struct {
	creates int
	errors  int
	batches int64 // group commit batches during the measurement
	// regCPU and genCPU: CPU time of the registry's process and of the
	// load generator during the measurement (one figure, the process's,
	// in regCPU when they share it).
	regCPU, genCPU time.Duration
	writes         int64 // writes in them
	elapsed        time.Duration
	latencies      []time.Duration
}

func (r *result) add(o result) {
	r.creates += o.creates
	r.errors += o.errors
	r.batches += o.batches
	r.regCPU += o.regCPU
	r.genCPU += o.genCPU
	r.writes += o.writes
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
}

func (r *result) rate() float64 { return float64(r.creates) / r.elapsed.Seconds() }

func (r *result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

func main() {
	writers := flag.Int("writers", 8, "concurrent writers (one HTTP connection each)")
	duration := flag.Duration("duration", 5*time.Second, "measured time per configuration and round")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "unmeasured time before each measurement")
	rounds := flag.Int("rounds", 2, "rounds; each runs every configuration once, interleaved")
	pgDSN := flag.String("postgres", os.Getenv("MLREGISTRY_BENCH_POSTGRES_DSN"), "PostgreSQL DSN (empty: SQLite only)")
	idem := flag.Bool("idempotency-key", false, "send an Idempotency-Key with every create, as the provider does")
	sharedModel := flag.Bool("shared-model", false, "all writers create versions of one model (default: one model each)")
	profDir := flag.String("cpuprofile", "", "directory for one CPU profile per configuration (of the registry's process)")
	withWrk := flag.Bool("wrk", false, "also measure the group-commit configuration with wrk (one connection per writer) against the registry's own process, each round")
	inProcess := flag.Bool("inprocess", false, "run the registry in this process, beside the load generator (the layout before the registry had a process of its own)")
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		serveChild(os.Args[2:])
		return
	}
	flag.Parse()

	configs := []config{
		{name: "sqlite, commit per write (before)", dialect: "sqlite", noGroupCommit: true},
		{name: "sqlite, group commit (after)", dialect: "sqlite"},
	}
	if *pgDSN != "" {
		configs = append(configs, config{name: "postgres (own path: concurrent commits)", dialect: "postgres"})
	}
	tmp, err := os.MkdirTemp("", "apiwrite")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	results := make([]result, len(configs))
	var wrkRates []float64
	profiles := make([]*bytes.Buffer, len(configs))
	for round := 0; round < *rounds; round++ {
		for i, c := range configs {
			db := "sqlite://" + filepath.Join(tmp, fmt.Sprintf("r%d-%d.db", round, i))
			if c.dialect == "postgres" {
				db = *pgDSN
			}
			var prof *bytes.Buffer
			if *profDir != "" {
				prof = &bytes.Buffer{}
			}
			r, err := run(c, db, fmt.Sprintf("r%d-%d-%d", round, i, time.Now().UnixNano()), *writers, *warmup, *duration, *idem, *sharedModel, *inProcess, prof)
			if err != nil {
				log.Fatalf("%s: %v", c.name, err)
			}
			if prof != nil && profiles[i] == nil {
				profiles[i] = prof
			}
			fmt.Fprintf(os.Stderr, "round %d %-40s %7.0f creates/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n",
				round+1, c.name, r.rate(), ms(r.pct(0.50)), ms(r.pct(0.99)), r.errors)
			results[i].add(r)
		}
		if *withWrk {
			db := "sqlite://" + filepath.Join(tmp, fmt.Sprintf("r%d-wrk.db", round))
			rate, bad, err := runWrk(configs[1], db, fmt.Sprintf("w%d-%d", round, time.Now().UnixNano()), *writers, *warmup, *duration)
			if err != nil {
				log.Fatalf("wrk: %v", err)
			}
			if bad > 0 {
				log.Fatalf("wrk: %d answers were not 2xx", bad)
			}
			fmt.Fprintf(os.Stderr, "round %d %-40s %7.0f creates/s\n", round+1, "wrk, sqlite, group commit", rate)
			wrkRates = append(wrkRates, rate)
		}
	}
	for i, p := range profiles {
		if p == nil {
			continue
		}
		name := filepath.Join(*profDir, strings.NewReplacer(" ", "", ",", "-", "(", "", ")", "", ":", "").Replace(configs[i].name)+".pprof")
		if err := os.WriteFile(name, p.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintln(os.Stderr, "profile:", name)
	}

	shape := "POST /api/v1/models/{model}/versions, JSON body of source, checksum, format, 2 metrics, 1 tag, a write token"
	if *idem {
		shape += ", Idempotency-Key on each"
	}
	models := "each writer its own model"
	if *sharedModel {
		models = "all writers on one model"
	}
	layout := "registry in its own process"
	if *inProcess {
		layout = "registry in the load generator's process"
	}
	fmt.Printf("apiwrite: %d writers (%s), %s; %d rounds x %s each, interleaved; %s; GOMAXPROCS %d\n",
		*writers, models, shape, *rounds, *duration, layout, runtime.GOMAXPROCS(0))
	fmt.Println("CPU µs/create: the registry's process, + the load generator's when it has its own")
	fmt.Printf("%-42s %10s %9s %9s %7s %12s %14s\n", "configuration", "creates/s", "p50 ms", "p99 ms", "errors", "writes/batch", "CPU µs/create")
	for i, c := range configs {
		r := &results[i]
		perBatch := "-"
		if r.batches > 0 {
			perBatch = fmt.Sprintf("%.1f", float64(r.writes)/float64(r.batches))
		}
		cpu := fmt.Sprintf("%.0f", float64(r.regCPU.Microseconds())/float64(max(r.creates, 1)))
		if r.genCPU > 0 {
			cpu += fmt.Sprintf(" + %.0f", float64(r.genCPU.Microseconds())/float64(max(r.creates, 1)))
		}
		fmt.Printf("%-42s %10.0f %9.2f %9.2f %7d %12s %14s\n", c.name, r.rate(), ms(r.pct(0.50)), ms(r.pct(0.99)), r.errors, perBatch, cpu)
	}
	before, after := &results[0], &results[1]
	fmt.Printf("%-42s %9.2fx %8.2fx %8.2fx\n", "sqlite group commit / per write", after.rate()/before.rate(),
		ms(after.pct(0.50))/ms(before.pct(0.50)), ms(after.pct(0.99))/ms(before.pct(0.99)))
	if len(configs) > 2 {
		pg := &results[2]
		fmt.Printf("%-42s %9.2fx %8.2fx %8.2fx\n", "sqlite group commit / postgres", after.rate()/pg.rate(),
			ms(after.pct(0.50))/ms(pg.pct(0.50)), ms(after.pct(0.99))/ms(pg.pct(0.99)))
	}
	if len(wrkRates) > 0 {
		var sum float64
		for _, r := range wrkRates {
			sum += r
		}
		w := sum / float64(len(wrkRates))
		fmt.Printf("%-42s %10.0f   (this program's figure / wrk's: %.2fx)\n", "wrk, sqlite, group commit (mean of rounds)", w, after.rate()/w)
	}
	fmt.Printf("target: 2000 creates/s on SQLite with group commit: %s\n", map[bool]string{true: "met", false: "MISSED"}[after.rate() >= 2000])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// run boots a registry on db, creates the writers' models, and measures
// creates for d after warmup.
func run(c config, db, prefix string, writers int, warmup, d time.Duration, idem, shared, inProcess bool, prof *bytes.Buffer) (result, error) {
	var (
		reg *registryUnderTest
		err error
	)
	if inProcess {
		reg, err = startInProcess(c, db, prefix)
	} else {
		reg, err = startChild(c, db, prefix)
	}
	if err != nil {
		return result{}, err
	}
	defer func() { _ = reg.close() }()
	token, admin := reg.token, reg.admin
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers * 2}, Timeout: time.Minute}
	do := func(path, tok, key string, body any) (int, error) {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		req, err := http.NewRequest(http.MethodPost, reg.url+path, bytes.NewReader(b))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	model := func(w int) string {
		if shared {
			return prefix + "-m"
		}
		return fmt.Sprintf("%s-m%d", prefix, w)
	}
	for w := 0; w < writers; w++ {
		if w > 0 && shared {
			break
		}
		if code, err := do("/api/v1/models", admin, "", registry.ModelCreate{Name: model(w)}); err != nil || code != http.StatusCreated {
			return result{}, fmt.Errorf("create model: status %d, %v", code, err)
		}
	}

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		seq       atomic.Int64
		wg        sync.WaitGroup
		per       = make([]result, writers)
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/api/v1/models/" + model(w) + "/versions"
			for !stop.Load() {
				n := seq.Add(1)
				sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", prefix, n)))
				body := registry.ModelVersionCreate{
					Source:   fmt.Sprintf("s3://models/%s/%d/model.onnx", model(w), n),
					Checksum: "sha256:" + hex.EncodeToString(sum[:]),
					Format:   "onnx",
					Metrics:  map[string]float64{"auc": 0.9, "f1": 0.8},
					Tags:     map[string]string{"team": "bench"},
				}
				key := ""
				if idem {
					key = fmt.Sprintf("%s-%d", prefix, n)
				}
				start := time.Now()
				code, err := do(path, token, key, body)
				lat := time.Since(start)
				if !measuring.Load() {
					continue
				}
				if err != nil || code != http.StatusCreated {
					per[w].errors++
					continue
				}
				per[w].creates++
				per[w].latencies = append(per[w].latencies, lat)
			}
		}()
	}
	time.Sleep(warmup)
	if prof != nil {
		if err := reg.startProfile(); err != nil {
			return result{}, err
		}
	}
	b0, w0, err := reg.stats()
	if err != nil {
		return result{}, err
	}
	reg0, self0 := reg.cpu(), selfCPU()
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	elapsed := time.Since(start)
	regCPU, genCPU := reg.cpu()-reg0, selfCPU()-self0
	if inProcess {
		genCPU = 0
	}
	b1, w1, err := reg.stats()
	if err != nil {
		return result{}, err
	}
	if prof != nil {
		if err := reg.stopProfile(prof); err != nil {
			return result{}, err
		}
	}
	stop.Store(true)
	wg.Wait()
	client.CloseIdleConnections()
	out := result{elapsed: elapsed, batches: b1 - b0, writes: w1 - w0, regCPU: regCPU, genCPU: genCPU}
	for _, p := range per {
		out.creates += p.creates
		out.errors += p.errors
		out.latencies = append(out.latencies, p.latencies...)
	}
	return out, nil
}
