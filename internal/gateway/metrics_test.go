package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// counterValue reads a counter (testutil would pull in another module).
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// seriesCount counts the gathered series of the named families (all
// families when names is empty).
func seriesCount(t testing.TB, g prometheus.Gatherer, names ...string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	n := 0
	for _, mf := range mfs {
		if len(want) == 0 || want[mf.GetName()] {
			n += len(mf.GetMetric())
		}
	}
	return n
}

// scrape reads /metrics as Prometheus would and returns each sample by
// its series (name and labels, as printed).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", res.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsPerVersionOnEveryPath: every way through the gateway counts
// a request once under its endpoint, route and version, with its outcome
// (the upstream's status class, or transport when there was no usable
// answer), and observes its latency; /metrics shows it. When the table
// changes, the series of a removed route and of a replaced version go,
// and only configured names ever appear as labels.
func TestMetricsPerVersionOnEveryPath(t *testing.T) {
	up, _ := echoUpstream(t)
	failing := upstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusInternalServerError)
	})
	bad := rt("bad", 2, failing, 0)
	bad.Match = &registry.RouteMatch{Header: "X-To", Value: "bad"}
	dead := rt("dead", 3, "http://"+deadAddr(t), 0)
	dead.Match = &registry.RouteMatch{Header: "X-To", Value: "dead"}
	src := newMemSource(endpointOf("m", rt("ok", 1, up, 100), bad, dead))
	reg := prometheus.NewRegistry()
	h := newLaneHarnessWith(t, src, LaneOptions{}, func(o *Options, _ string) { o.Registerer = reg })
	ms := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(ms.Close)

	for _, p := range gatewayPaths {
		for _, to := range []string{"ok", "bad", "dead"} {
			// The request path is never a label: it names no series.
			p.send(t, h, "/serve/m/predict/"+p.name, http.Header{"X-To": {to}})
		}
	}

	n := float64(len(gatewayPaths))
	got := scrape(t, ms.URL)
	for series, want := range map[string]float64{
		`mlregistry_gateway_requests_total{code_class="2xx",endpoint="m",route="ok",version="1"}`:         n,
		`mlregistry_gateway_requests_total{code_class="5xx",endpoint="m",route="bad",version="2"}`:        n,
		`mlregistry_gateway_requests_total{code_class="transport",endpoint="m",route="dead",version="3"}`: n,
		`mlregistry_gateway_requests_total{code_class="5xx",endpoint="m",route="dead",version="3"}`:       0,
		`mlregistry_gateway_requests_total{code_class="client",endpoint="m",route="ok",version="1"}`:      0,
		`mlregistry_gateway_upstream_errors_total{endpoint="m",route="ok",version="1"}`:                   0,
		`mlregistry_gateway_upstream_errors_total{endpoint="m",route="bad",version="2"}`:                  n,
		`mlregistry_gateway_upstream_errors_total{endpoint="m",route="dead",version="3"}`:                 n,
		`mlregistry_gateway_request_duration_seconds_count{endpoint="m",route="ok",version="1"}`:          n,
		`mlregistry_gateway_request_duration_seconds_count{endpoint="m",route="bad",version="2"}`:         n,
		`mlregistry_gateway_request_duration_seconds_count{endpoint="m",route="dead",version="3"}`:        n,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	for series := range got {
		if strings.Contains(series, "predict") {
			t.Errorf("request input became a label: %s", series)
		}
	}

	// bad moves to version 4 and dead leaves the endpoint.
	bad.Version = 4
	src.put(endpointOf("m", rt("ok", 1, up, 100), bad))
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = scrape(t, ms.URL)
	for series := range got {
		if strings.Contains(series, `route="dead"`) || strings.Contains(series, `version="2"`) {
			t.Errorf("series of a route or version no longer served: %s", series)
		}
	}
	for _, series := range []string{
		`mlregistry_gateway_requests_total{code_class="2xx",endpoint="m",route="ok",version="1"}`,
		`mlregistry_gateway_requests_total{code_class="5xx",endpoint="m",route="bad",version="4"}`,
	} {
		if _, ok := got[series]; !ok {
			t.Errorf("%s missing after the table changed", series)
		}
	}
}
