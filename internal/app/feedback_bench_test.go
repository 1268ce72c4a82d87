package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/receipt"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// BenchmarkFeedbackBatch posts batches of 100 items (two metrics each)
// through the real API over loopback, from b.RunParallel's clients:
// decoding, receipt checks and the store's transaction together.
func BenchmarkFeedbackBatch(b *testing.B) {
	r := apptest.Start(b)
	for _, step := range []struct {
		path string
		body string
	}{
		{"/api/v1/models", `{"name":"m"}`},
		{"/api/v1/models/m/versions", `{"source":"s3://b/1","checksum":"sha256:` + strings.Repeat("1", 64) + `","format":"onnx"}`},
		{"/api/v1/endpoints", `{"name":"ep","model":"m","routes":[{"name":"stable","version":1,"upstream_url":"http://127.0.0.1:9","weight":100}]}`},
	} {
		req, _ := http.NewRequest("POST", r.URL+step.path, strings.NewReader(step.body))
		req.Header.Set("Authorization", "Bearer "+r.AdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusCreated {
			b.Fatalf("seed %s: %v %v", step.path, res.StatusCode, err)
		}
		res.Body.Close()
	}
	kr, err := receipt.Open(b.Context(), r.Store, receipt.Options{Now: r.Clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	var seq int64
	next := func() int64 { seq++; return seq }
	bodies := make(chan []byte, 64)
	go func() {
		for {
			var buf bytes.Buffer
			buf.WriteString(`{"items":[`)
			for i := range 100 {
				n := next()
				rc := kr.Sign(registry.Receipt{Endpoint: "ep", Route: "stable", Model: "m", Version: 1, RequestID: fmt.Sprintf("b-%d", n)})
				if i > 0 {
					buf.WriteByte(',')
				}
				fmt.Fprintf(&buf, `{"receipt":%q,"metrics":{"correct":%d,"abs_error":0.25}}`, rc, n%2)
			}
			buf.WriteString(`]}`)
			select {
			case bodies <- buf.Bytes():
			case <-b.Context().Done():
				return
			}
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", r.URL+"/api/v1/endpoints/ep/feedback", bytes.NewReader(<-bodies))
			req.Header.Set("Authorization", "Bearer "+r.AdminToken)
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "items/s")
}
