package app_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // integrity_check on the SQLite file after each kill

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// crashKills is how many times each backend's registry is SIGKILLed with
// writes in flight in make test; make soak raises it with
// MLREGISTRY_CRASH_KILLS (100 there).
func crashKills(t *testing.T) int {
	if s := os.Getenv("MLREGISTRY_CRASH_KILLS"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			t.Fatalf("MLREGISTRY_CRASH_KILLS=%q: want a positive number", s)
		}
		return n
	}
	return 20
}

var (
	crashBinOnce sync.Once
	crashBin     string
	crashBinErr  error
)

// crashBinary builds bin/mlregistry once for the package's tests.
func crashBinary(t *testing.T) string {
	t.Helper()
	crashBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mlregistry-crash")
		if err != nil {
			crashBinErr = err
			return
		}
		crashBin = filepath.Join(dir, "mlregistry")
		out, err := exec.Command("go", "build", "-o", crashBin, "../cmd/mlregistry").CombinedOutput()
		if err != nil {
			crashBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if crashBinErr != nil {
		t.Fatal(crashBinErr)
	}
	return crashBin
}

var crashAddrRE = regexp.MustCompile(`addr=(http://127\.0\.0\.1:\d+)`)

// crashServe starts `mlregistry serve` and returns its URL and process.
func crashServe(t *testing.T, db string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(crashBinary(t), "serve", "--listen", "127.0.0.1:0", "--db", db)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	urlCh := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := crashAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlCh <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	select {
	case u := <-urlCh:
		return u, cmd
	case <-done:
	case <-time.After(30 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	t.Fatalf("server did not start:\n%s", logs.String())
	return "", nil
}

// ack is a write the server acknowledged (201) before it was killed.
type ack struct {
	version  int64
	checksum string
}

// TestKillDuringWrites SIGKILLs the real server while 8 clients are
// creating versions, restarts it on the same database, and checks that
// every acknowledged write is there with what was acknowledged, that
// version numbers were never reused, and (SQLite) that the file passes
// PRAGMA integrity_check. The registry is killed, never the database.
func TestKillDuringWrites(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "r.db")
		testKillDuringWrites(t, "sqlite://"+path, func(t *testing.T) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var res string
			if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
				t.Fatalf("integrity_check = %q, %v", res, err)
			}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testKillDuringWrites(t, storetest.PostgresDSN(t), func(*testing.T) {})
	})
}

func testKillDuringWrites(t *testing.T, db string, check func(t *testing.T)) {
	bin := crashBinary(t)
	out, err := exec.Command(bin, "token", "create", "--db", db, "--name", "crash", "--scope", "admin").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := regexp.MustCompile(`mlr_[a-z0-9]+`).FindString(string(out))
	if token == "" {
		t.Fatalf("token create printed no token: %q", out)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, url string, body any) (int, []byte, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}

	var acked []ack
	var seq atomic.Int64
	for round := range crashKills(t) {
		url, cmd := crashServe(t, db)
		if round == 0 {
			if st, b, err := do("POST", url+"/api/v1/models", registry.ModelCreate{Name: "crash"}); err != nil || st != http.StatusCreated {
				t.Fatalf("create model: %d %s %v", st, b, err)
			}
		}

		var mu sync.Mutex
		var inFlight, started atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					sum := sha256.Sum256(fmt.Appendf(nil, "crash-%d", seq.Add(1)))
					checksum := "sha256:" + hex.EncodeToString(sum[:])
					started.Add(1)
					inFlight.Add(1)
					st, b, err := do("POST", url+"/api/v1/models/crash/versions", registry.ModelVersionCreate{
						Source: "s3://b/m.onnx", Checksum: checksum, Format: "onnx",
					})
					inFlight.Add(-1)
					if err != nil {
						return // the server is gone: the outcome is unknown, nothing was acknowledged
					}
					if st != http.StatusCreated {
						t.Errorf("round %d: create version: %d %s", round, st, b)
						return
					}
					var v registry.ModelVersion
					if err := json.Unmarshal(b, &v); err != nil {
						t.Errorf("round %d: %v", round, err)
						return
					}
					mu.Lock()
					acked = append(acked, ack{v.Version, checksum})
					mu.Unlock()
				}
			}()
		}
		// Kill at a random moment once writes are flowing (a few were
		// acknowledged this round, however loaded the machine is), while
		// some are in flight.
		mu.Lock()
		before := len(acked)
		mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && !t.Failed() {
			mu.Lock()
			n := len(acked) - before
			mu.Unlock()
			if n >= 2 {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
		deadline = time.Now().Add(5 * time.Second)
		for inFlight.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if inFlight.Load() == 0 {
			t.Fatalf("round %d: no write in flight to kill", round)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		_ = cmd.Wait()
		if t.Failed() {
			return
		}
		check(t)
	}

	// A last restart: every acknowledged write is there, as acknowledged.
	url, _ := crashServe(t, db)
	got := map[int64]string{}
	token2 := ""
	for {
		st, b, err := do("GET", url+"/api/v1/models/crash/versions?page_size=1000"+token2, nil)
		if err != nil || st != http.StatusOK {
			t.Fatalf("list versions: %d %s %v", st, b, err)
		}
		var page registry.Page[registry.ModelVersion]
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Items {
			if prev, dup := got[v.Version]; dup {
				t.Fatalf("version %d listed twice (%s, %s)", v.Version, prev, v.Checksum)
			}
			got[v.Version] = v.Checksum
		}
		if page.NextPageToken == "" {
			break
		}
		token2 = "&page_token=" + page.NextPageToken
	}
	if len(acked) < crashKills(t) {
		t.Fatalf("only %d writes were acknowledged over %d rounds", len(acked), crashKills(t))
	}
	for _, a := range acked {
		if got[a.version] != a.checksum {
			t.Errorf("acknowledged version %d (%s) is %q after the kills", a.version, a.checksum, got[a.version])
		}
	}
	t.Logf("%d kills, %d acknowledged writes all present, %d versions stored", crashKills(t), len(acked), len(got))
}
