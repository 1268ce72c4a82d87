package rollout_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/rollout"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/rollout/promtest"
)

// TestPrometheusQuery asks a real Prometheus every kind of answer a gate
// can meet.
func TestPrometheusQuery(t *testing.T) {
	srv := promtest.Start(t, time.Second)
	p, err := rollout.NewPrometheus(srv.URL+"/", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		query   string
		want    float64
		wantErr string
		is      error
	}{
		{query: `vector(0.25)`, want: 0.25},
		{query: `scalar(vector(3))`, want: 3},
		{query: `2 * 4`, want: 8},
		{query: `vector(1) > 2`, is: rollout.ErrNoSample},
		{query: `label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")`, is: rollout.ErrSamples, wantErr: "2 samples"},
		{query: `sum(`, wantErr: "prometheus refused the query (bad_data)"},
		{query: `"text"`, wantErr: "returned a string"},
		{query: `vector(0) / 0`, wantErr: "NaN"},
	} {
		v, err := p.Query(ctx, tc.query)
		switch {
		case tc.is == nil && tc.wantErr == "":
			if err != nil || v != tc.want {
				t.Errorf("%s = %v, %v; want %v", tc.query, v, err, tc.want)
			}
		case tc.is != nil && !errors.Is(err, tc.is), tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err %v, want %v %q", tc.query, err, tc.is, tc.wantErr)
		}
	}
}

// TestPrometheusUnreachable: a gate's query against something that is not
// a Prometheus, or that does not answer, fails with a message that says so.
func TestPrometheusUnreachable(t *testing.T) {
	stall := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(stall) })
	notProm := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notProm.Close)

	for _, tc := range []struct {
		url     string
		timeout time.Duration
		want    string
	}{
		{slow.URL, 100 * time.Millisecond, "did not answer within 100ms"},
		{notProm.URL, time.Second, "HTTP 404 with no Prometheus answer"},
	} {
		p, err := rollout.NewPrometheus(tc.url, tc.timeout)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Query(context.Background(), "up"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.url, err, tc.want)
		}
	}
	for _, bad := range []string{"", "prometheus:9090", "ftp://h", "http://u:p@h:9090", "http://h:9090/?x=1"} {
		if _, err := rollout.NewPrometheus(bad, 0); err == nil {
			t.Errorf("NewPrometheus(%q) accepted", bad)
		}
	}
}
