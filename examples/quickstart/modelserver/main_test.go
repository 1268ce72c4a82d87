package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// The shipped artifacts load, predict differently, and report the checksum
// the quickstart registers (filesha256 of the same file).
func TestArtifacts(t *testing.T) {
	features := map[string]float64{"tenure_months": 4, "monthly_charges": 89.5, "support_calls": 3}
	got := map[string]float64{}
	for _, release := range []string{"r1", "r2", "r3"} {
		path := "../models/churn-" + release + ".json"
		m, err := loadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if want := "sha256:" + hex.EncodeToString(sum[:]); m.checksum != want || m.Release != release {
			t.Fatalf("%s: release %q checksum %s, want %s", path, m.Release, m.checksum, want)
		}
		p, err := m.predict(features)
		if err != nil || p <= 0 || p >= 1 {
			t.Fatalf("%s: predict = %v, %v", path, p, err)
		}
		got[release] = p
	}
	if got["r1"] == got["r2"] {
		t.Fatalf("r1 and r2 predict the same: %v", got)
	}
}

func TestHandler(t *testing.T) {
	m, err := loadModel("../models/churn-r2.json")
	if err != nil {
		t.Fatal(err)
	}
	fail := &failures{}
	srv := httptest.NewServer(newHandler(m, fail, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)

	predict := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/predict", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	ok := `{"features":{"tenure_months":4,"monthly_charges":89.5,"support_calls":3}}`
	if code, out := predict(ok); code != 200 || out["churn_probability"] != 0.8338 || out["release"] != "r2" || out["artifact"] != m.checksum {
		t.Fatalf("predict: %d %v", code, out)
	}
	if code, out := predict(`{"features":{"tenure_months":4}}`); code != 400 || !strings.Contains(out["error"].(string), "monthly_charges") {
		t.Fatalf("missing feature: %d %v", code, out)
	}
	if code, _ := predict(`{"features":{},"extra":1}`); code != 400 {
		t.Fatalf("unknown field: %d", code)
	}

	// Half the requests fail at rate 0.5, none once healed.
	for _, c := range []struct {
		rate string
		want int
	}{{"0.5", 5}, {"1", 10}, {"0", 0}} {
		resp, err := http.Post(srv.URL+"/admin/fail?rate="+c.rate, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		failed := 0
		for range 10 {
			if code, _ := predict(ok); code == 500 {
				failed++
			}
		}
		if failed != c.want {
			t.Fatalf("rate %s: %d of 10 failed, want %d", c.rate, failed, c.want)
		}
	}
	resp, err := http.Post(srv.URL+"/admin/fail?rate=2", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("rate 2: status %d", resp.StatusCode)
	}
}
