// Command modelserver is the quickstart's stand-in for a real model server:
// it loads one artifact of examples/quickstart/models (a logistic
// regression stored as JSON) and answers predictions for it, so the
// registry's gateway has something real to route to. make demo runs one per
// model version.
//
//	modelserver -model models/churn-r2.json -listen 127.0.0.1:8502
//
//	POST /predict      {"features":{"tenure_months":4,"monthly_charges":89.5,"support_calls":3}}
//	                   -> {"churn_probability":0.8338,"release":"r2","artifact":"sha256:..."}
//	GET  /healthz      200 once the model is loaded
//	POST /admin/fail   ?rate=1 makes that share of /predict calls answer 500
//	                   (0 heals it), to show the gateway's rollback guard
//
// MODELSERVER_FAIL_RATE sets the initial failure rate. It is an example, not
// a serving stack: no batching, no auth on /admin (it listens on loopback by
// default).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// model is the artifact format: a logistic regression over named features.
type model struct {
	Model       string    `json:"model"`
	Release     string    `json:"release"`
	Kind        string    `json:"kind"`
	Description string    `json:"description"`
	Features    []string  `json:"features"`
	Weights     []float64 `json:"weights"`
	Bias        float64   `json:"bias"`
	Output      string    `json:"output"`

	checksum string // sha256:<hex> of the file, as registered in the registry
}

func loadModel(path string) (*model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Kind != "logistic_regression" {
		return nil, fmt.Errorf("%s: kind %q, want logistic_regression", path, m.Kind)
	}
	if len(m.Features) == 0 || len(m.Features) != len(m.Weights) {
		return nil, fmt.Errorf("%s: %d features but %d weights", path, len(m.Features), len(m.Weights))
	}
	if m.Output == "" {
		m.Output = "prediction"
	}
	sum := sha256.Sum256(b)
	m.checksum = "sha256:" + hex.EncodeToString(sum[:])
	return &m, nil
}

// predict returns the probability for features; every feature of the
// model must be given.
func (m *model) predict(features map[string]float64) (float64, error) {
	z := m.Bias
	for i, name := range m.Features {
		v, ok := features[name]
		if !ok {
			return 0, fmt.Errorf("feature %q is missing (the model needs %v)", name, m.Features)
		}
		z += m.Weights[i] * v
	}
	return 1 / (1 + math.Exp(-z)), nil
}

// failures makes a share of the requests fail, deterministically: with
// rate 0.25 every fourth request answers 500.
type failures struct {
	mu   sync.Mutex
	rate float64
	acc  float64
}

func (f *failures) set(rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate, f.acc = rate, 0
}

func (f *failures) next() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acc += f.rate
	if f.acc >= 1 {
		f.acc--
		return true
	}
	return false
}

func parseRate(s string) (float64, error) {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 || r > 1 || math.IsNaN(r) {
		return 0, fmt.Errorf("failure rate %q: want a number from 0 to 1", s)
	}
	return r, nil
}

func newHandler(m *model, fail *failures, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /predict", func(w http.ResponseWriter, r *http.Request) {
		if fail.next() {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "injected failure (POST /admin/fail?rate=0 heals it)"})
			return
		}
		var req struct {
			Features map[string]float64 `json:"features"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
			return
		}
		p, err := m.predict(req.Features)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			m.Output:   math.Round(p*10000) / 10000,
			"model":    m.Model,
			"release":  m.Release,
			"artifact": m.checksum,
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "release": m.Release, "artifact": m.checksum})
	})
	mux.HandleFunc("POST /admin/fail", func(w http.ResponseWriter, r *http.Request) {
		rate, err := parseRate(r.URL.Query().Get("rate"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		fail.set(rate)
		log.Info("failure rate set", "rate", rate)
		writeJSON(w, http.StatusOK, map[string]float64{"fail_rate": rate})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "modelserver:", err)
		os.Exit(1)
	}
}

func run() error {
	path := flag.String("model", "", "model artifact (JSON) to serve")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	flag.Parse()
	if *path == "" {
		return errors.New("-model is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	m, err := loadModel(*path)
	if err != nil {
		return err
	}
	fail := &failures{}
	if s := os.Getenv("MODELSERVER_FAIL_RATE"); s != "" {
		rate, err := parseRate(s)
		if err != nil {
			return fmt.Errorf("MODELSERVER_FAIL_RATE: %w", err)
		}
		fail.set(rate)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newHandler(m, fail, log), ReadHeaderTimeout: 10 * time.Second}
	// The demo reads the address from this line.
	log.Info("serving", "release", m.Release, "artifact", m.checksum, "addr", "http://"+ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
