// Command feedback measures feedback ingestion through the real HTTP API
// and what it costs the serving path. It builds `mlregistry`, runs
// `mlregistry serve` on a fresh SQLite file (WAL, synchronous=FULL, as
// shipped) in a child process, and measures, one phase after the other:
//
//   - feedback alone: W writers POST batches of B items (receipts signed
//     with the registry's own key, read from its database as a second
//     replica would) to /api/v1/endpoints/{name}/feedback;
//
//   - feedback beside version creates: the same writers, and C writers
//     POSTing versions at the same time;
//
//   - predictions alone: P clients POST 2 KB JSON through /serve/ to a
//     local upstream;
//
//   - predictions beside the feedback load.
//
//     go run ./bench/feedback -duration 5s -rounds 3
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/receipt"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

var servingRE = regexp.MustCompile(`addr=(https?://127\.0\.0\.1:\d+)`)

type registryProc struct {
	cmd   *exec.Cmd
	url   string
	admin string
	db    string
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "measured time per phase and round")
	rounds := flag.Int("rounds", 1, "rounds (medians are reported)")
	writers := flag.Int("writers", 4, "feedback writers")
	batch := flag.Int("batch", 100, "items per feedback batch")
	creators := flag.Int("creators", 4, "version-create writers beside the feedback")
	predictors := flag.Int("predictors", 16, "prediction clients")
	flag.Parse()

	dir, err := os.MkdirTemp("", "feedback-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	bin := filepath.Join(dir, "mlregistry")
	build := exec.Command("go", "build", "-o", bin, "./internal/cmd/mlregistry")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		log.Fatalf("build: %v", err)
	}

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"score":0.73}`))
	}))
	defer up.Close()

	type row struct{ phase, what string }
	results := map[row][]float64{}
	var order []row
	record := func(phase, what string, v float64) {
		k := row{phase, what}
		if _, ok := results[k]; !ok {
			order = append(order, k)
		}
		results[k] = append(results[k], v)
	}
	for round := 1; round <= *rounds; round++ {
		reg, err := start(bin, filepath.Join(dir, fmt.Sprintf("r%d.db", round)))
		if err != nil {
			log.Fatal(err)
		}
		if err := seed(reg, up.URL); err != nil {
			reg.stop()
			log.Fatal(err)
		}
		fb, err := newFeeder(reg, *batch)
		if err != nil {
			reg.stop()
			log.Fatal(err)
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}

		items, _ := measure(*duration, loads{feedback: *writers}, reg, client, fb)
		record("feedback alone", "items/s", items.feedback)
		both, _ := measure(*duration, loads{feedback: *writers, creates: *creators}, reg, client, fb)
		record("feedback + version creates", "items/s", both.feedback)
		record("feedback + version creates", "creates/s", both.creates)
		creates, _ := measure(*duration, loads{creates: *creators}, reg, client, fb)
		record("version creates alone", "creates/s", creates.creates)
		pred, _ := measure(*duration, loads{predict: *predictors}, reg, client, fb)
		record("predictions alone", "req/s", pred.predict)
		predFB, _ := measure(*duration, loads{predict: *predictors, feedback: *writers}, reg, client, fb)
		record("predictions + feedback", "req/s", predFB.predict)
		record("predictions + feedback", "items/s", predFB.feedback)
		client.CloseIdleConnections()
		reg.stop()
	}
	fmt.Printf("feedback bench: %d round(s) of %s per phase, %d feedback writers x %d items, %d create writers, %d prediction clients, GOMAXPROCS %d\n\n",
		*rounds, *duration, *writers, *batch, *creators, *predictors, runtime.GOMAXPROCS(0))
	fmt.Println("| phase | measure | median | rounds |")
	fmt.Println("| --- | --- | --- | --- |")
	for _, k := range order {
		v := slices.Clone(results[k])
		slices.Sort(v)
		parts := make([]string, len(results[k]))
		for i, x := range results[k] {
			parts[i] = fmt.Sprintf("%.0f", x)
		}
		fmt.Printf("| %s | %s | %.0f | %s |\n", k.phase, k.what, (v[(len(v)-1)/2]+v[len(v)/2])/2, strings.Join(parts, ", "))
	}
}

func start(bin, db string) (*registryProc, error) {
	dsn := "sqlite://" + db
	out, err := exec.Command(bin, "token", "create", "--db", dsn, "--name", "admin", "--scope", "admin").Output()
	if err != nil {
		return nil, fmt.Errorf("token create: %w", err)
	}
	p := &registryProc{db: dsn, admin: strings.TrimSpace(string(out))}
	p.cmd = exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--db", dsn)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p.url = <-urls:
		return p, nil
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("registry did not start")
	}
}

func (p *registryProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
}

func post(c *http.Client, url, token string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}

func seed(p *registryProc, upstream string) error {
	c := http.DefaultClient
	steps := []struct {
		path string
		body any
	}{
		{"/api/v1/models", map[string]any{"name": "m"}},
		{"/api/v1/models/m/versions", map[string]any{"source": "s3://b/1", "checksum": "sha256:" + strings.Repeat("1", 64), "format": "onnx"}},
		{"/api/v1/models/m/versions", map[string]any{"source": "s3://b/2", "checksum": "sha256:" + strings.Repeat("2", 64), "format": "onnx"}},
		{"/api/v1/endpoints", map[string]any{"name": "ep", "model": "m", "routes": []map[string]any{
			{"name": "stable", "version": 1, "upstream_url": upstream, "weight": 90},
			{"name": "canary", "version": 2, "upstream_url": upstream, "weight": 10},
		}}},
		{"/api/v1/models", map[string]any{"name": "w"}},
	}
	for _, s := range steps {
		b, _ := json.Marshal(s.body)
		if code, err := post(c, p.url+s.path, p.admin, b); err != nil || code != http.StatusCreated {
			return fmt.Errorf("seed %s: %d %v", s.path, code, err)
		}
	}
	return nil
}

// feeder makes batches of fresh receipts signed with the registry's key.
type feeder struct {
	kr    *receipt.Keyring
	batch int
	seq   atomic.Int64
}

func newFeeder(p *registryProc, batch int) (*feeder, error) {
	st, err := sqlstore.Open(context.Background(), p.db, sqlstore.Options{NoMigrate: true})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	kr, err := receipt.Open(context.Background(), st, receipt.Options{})
	if err != nil {
		return nil, err
	}
	return &feeder{kr: kr, batch: batch}, nil
}

func (f *feeder) body() []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := range f.batch {
		n := f.seq.Add(1)
		v, route := int64(1), "stable"
		if n%10 == 0 {
			v, route = 2, "canary"
		}
		rc := f.kr.Sign(registry.Receipt{Endpoint: "ep", Route: route, Model: "m", Version: v, RequestID: fmt.Sprintf("bench-%d", n)})
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"receipt":%q,"metrics":{"correct":%d,"abs_error":%.3f}}`, rc, n%4/3, float64(n%17)/16)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

type loads struct{ feedback, creates, predict int }

type rates struct{ feedback, creates, predict float64 }

// measure runs the loads for d and returns items, creates and predictions
// per second.
func measure(d time.Duration, l loads, p *registryProc, c *http.Client, f *feeder) (rates, error) {
	var (
		stop                    atomic.Bool
		items, creates, predict atomic.Int64
		failures                atomic.Int64
		wg                      sync.WaitGroup
		seq                     atomic.Int64
	)
	run := func(n int, fn func()) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					fn()
				}
			}()
		}
	}
	run(l.feedback, func() {
		body := f.body()
		code, err := post(c, p.url+"/api/v1/endpoints/ep/feedback", p.admin, body)
		if err != nil || code != http.StatusOK {
			failures.Add(1)
			return
		}
		items.Add(int64(f.batch))
	})
	run(l.creates, func() {
		n := seq.Add(1)
		sum := sha256.Sum256([]byte(fmt.Sprintf("%d-%d", time.Now().UnixNano(), n)))
		b, _ := json.Marshal(map[string]any{"source": fmt.Sprintf("s3://w/%d", n), "checksum": "sha256:" + hex.EncodeToString(sum[:]), "format": "onnx"})
		code, err := post(c, p.url+"/api/v1/models/w/versions", p.admin, b)
		if err != nil || code != http.StatusCreated {
			failures.Add(1)
			return
		}
		creates.Add(1)
	})
	payload := bytes.Repeat([]byte(`{"x":1.5},`), 200)
	payload = append(append([]byte(`[`), payload[:len(payload)-1]...), ']')
	run(l.predict, func() {
		code, err := post(c, p.url+"/serve/ep/predict", p.admin, payload)
		if err != nil || code != http.StatusOK {
			failures.Add(1)
			return
		}
		predict.Add(1)
	})
	time.Sleep(d / 5) // warm up
	i0, c0, p0 := items.Load(), creates.Load(), predict.Load()
	t0 := time.Now()
	time.Sleep(d)
	el := time.Since(t0).Seconds()
	i1, c1, p1 := items.Load(), creates.Load(), predict.Load()
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		log.Printf("%d failed requests", n)
	}
	return rates{feedback: float64(i1-i0) / el, creates: float64(c1-c0) / el, predict: float64(p1-p0) / el}, nil
}
