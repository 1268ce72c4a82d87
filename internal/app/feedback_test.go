package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// prediction is one answer through /serve/: who answered and its receipt.
type prediction struct {
	version int64
	receipt string
}

// predict POSTs a prediction request to endpoint ep through the gateway.
func predict(t *testing.T, r *apptest.Registry, ep, token string) prediction {
	t.Helper()
	req, err := http.NewRequest("POST", r.URL+"/serve/"+ep+"/predict", strings.NewReader(`{"x":[1,2,3]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("predict: status %d", res.StatusCode)
	}
	v, err := strconv.ParseInt(res.Header.Get("X-Model-Version"), 10, 64)
	if err != nil {
		t.Fatalf("X-Model-Version %q", res.Header.Get("X-Model-Version"))
	}
	rc := res.Header.Get(registry.ReceiptHeader)
	if rc == "" {
		t.Fatalf("answer without %s: %v", registry.ReceiptHeader, res.Header)
	}
	return prediction{version: v, receipt: rc}
}

type feedbackItem struct {
	Receipt string         `json:"receipt"`
	Metrics map[string]any `json:"metrics"`
}

// sendFeedback posts items and decodes the answer (status must be 200).
func sendFeedback(t *testing.T, r *apptest.Registry, ep, token string, items []feedbackItem) registry.FeedbackResult {
	t.Helper()
	res := call(t, "POST", r.URL+"/api/v1/endpoints/"+ep+"/feedback", token, map[string]any{"items": items})
	mustStatus(t, res, http.StatusOK)
	var out registry.FeedbackResult
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func getJSON(t *testing.T, r *apptest.Registry, path string, out any) {
	t.Helper()
	res := call(t, "GET", r.URL+path, r.AdminToken, nil)
	mustStatus(t, res, http.StatusOK)
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// serveToken creates a serve token limited to endpoints.
func serveToken(t *testing.T, r *apptest.Registry, name string, endpoints ...string) string {
	t.Helper()
	res := call(t, "POST", r.URL+"/api/v1/tokens", r.AdminToken, map[string]any{"name": name, "scope": "serve", "endpoints": endpoints})
	mustStatus(t, res, http.StatusCreated)
	var out registry.TokenCreated
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Secret
}

// splitEndpoint creates model m with versions 1 and 2 and endpoint ep
// sending half the traffic to each.
func splitEndpoint(t *testing.T, r *apptest.Registry) {
	t.Helper()
	seedEndpoint(t, r, upstream(t, "blue"), upstream(t, "green"))
	ep := map[string]any{}
	getJSON(t, r, "/api/v1/endpoints/ep", &ep)
	routes := ep["routes"].([]any)
	routes[0].(map[string]any)["weight"] = 50
	routes[1].(map[string]any)["weight"] = 50
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{"routes": routes}), http.StatusOK)
}

type sums struct {
	n          int64
	sum, sumSq float64
}

func (s *sums) add(v float64) { s.n++; s.sum += v; s.sumSq += v * v }

// TestFeedbackEndToEnd: two versions behind an endpoint, real predictions
// through /serve/, feedback from each answer's receipt, and live metrics
// per version (and per endpoint, and in compare) that match what was sent.
func TestFeedbackEndToEnd(t *testing.T) {
	r := apptest.Start(t)
	splitEndpoint(t, r)
	serve := serveToken(t, r, "app", "ep")

	want := map[int64]map[string]*sums{1: {"correct": {}, "abs_error": {}}, 2: {"correct": {}, "abs_error": {}}}
	var items []feedbackItem
	for i := range 60 {
		p := predict(t, r, "ep", serve)
		correct := 0.0
		if (p.version == 1 && i%4 != 0) || (p.version == 2 && i%10 != 0) {
			correct = 1
		}
		absErr := float64(i%9) / 8
		want[p.version]["correct"].add(correct)
		want[p.version]["abs_error"].add(absErr)
		items = append(items, feedbackItem{Receipt: p.receipt, Metrics: map[string]any{"correct": correct, "abs_error": absErr}})
	}
	if want[1]["correct"].n == 0 || want[2]["correct"].n == 0 {
		t.Fatalf("one version got no traffic: %d/%d", want[1]["correct"].n, want[2]["correct"].n)
	}
	for _, batch := range [][]feedbackItem{items[:25], items[25:]} {
		res := sendFeedback(t, r, "ep", serve, batch)
		if res.Accepted != len(batch) || len(res.Rejected) != 0 {
			t.Fatalf("feedback: %+v", res)
		}
	}

	check := func(what string, got map[string]registry.LiveMetric, want map[string]*sums) {
		t.Helper()
		for name, w := range want {
			g, ok := got[name]
			if !ok {
				t.Fatalf("%s: no %s in %+v", what, name, got)
			}
			mean := w.sum / float64(w.n)
			if g.Count != w.n || math.Abs(g.Mean-mean) > 1e-9 || math.Abs(g.Sum-w.sum) > 1e-9 {
				t.Errorf("%s %s: count %d mean %v, want %d %v", what, name, g.Count, g.Mean, w.n, mean)
			}
			if w.n >= 2 && (g.CILow == nil || g.CIHigh == nil || *g.CILow > mean || *g.CIHigh < mean) {
				t.Errorf("%s %s: interval %v..%v does not hold the mean %v", what, name, g.CILow, g.CIHigh, mean)
			}
		}
	}
	for v := int64(1); v <= 2; v++ {
		var lm registry.LiveMetrics
		getJSON(t, r, fmt.Sprintf("/api/v1/models/m/versions/%d/live-metrics?window=1h", v), &lm)
		check(fmt.Sprintf("version %d", v), lm.Metrics, want[v])
	}
	var ep registry.LiveMetrics
	getJSON(t, r, "/api/v1/endpoints/ep/live-metrics", &ep)
	if len(ep.Versions) != 2 || ep.Versions[0].Version != 1 || ep.Versions[1].Version != 2 {
		t.Fatalf("endpoint live metrics: %+v", ep.Versions)
	}
	check("endpoint version 1", ep.Versions[0].Metrics, want[1])
	check("endpoint version 2", ep.Versions[1].Metrics, want[2])
	if ep.Metrics["correct"].Count != 60 {
		t.Errorf("endpoint total: %+v", ep.Metrics["correct"])
	}

	var c registry.Comparison
	getJSON(t, r, "/api/v1/models/m/compare?versions=1,2", &c)
	if len(c.LiveMetrics) != 2 || c.LiveMetrics[1].Name != "correct" {
		t.Fatalf("compare live metrics: %+v", c.LiveMetrics)
	}
	lc := c.LiveMetrics[1]
	if lc.Values[0].Count != want[1]["correct"].n || lc.Values[1].Count != want[2]["correct"].n || lc.Deltas[1] == nil {
		t.Fatalf("compare correct: %+v", lc)
	}
	wantDelta := want[2]["correct"].sum/float64(want[2]["correct"].n) - want[1]["correct"].sum/float64(want[1]["correct"].n)
	if math.Abs(*lc.Deltas[1]-wantDelta) > 1e-9 {
		t.Errorf("compare delta %v, want %v", *lc.Deltas[1], wantDelta)
	}

	// A window that ends before the predictions were made sees none.
	r.Clock.Advance(3 * time.Hour)
	var later registry.LiveMetrics
	getJSON(t, r, "/api/v1/models/m/versions/1/live-metrics?window=1h", &later)
	if len(later.Metrics) != 0 {
		t.Errorf("an hour's window three hours later: %+v", later.Metrics)
	}
}

// firstRejected sends one item and returns the reason it was refused.
func firstRejected(t *testing.T, r *apptest.Registry, ep, token string, it feedbackItem) string {
	t.Helper()
	res := sendFeedback(t, r, ep, token, []feedbackItem{it})
	if res.Accepted != 0 || len(res.Rejected) != 1 || res.Rejected[0].Index != 0 {
		t.Fatalf("want the item refused: %+v", res)
	}
	return res.Rejected[0].Reason
}

func TestFeedbackRefusesForgedReceipt(t *testing.T) {
	r := apptest.Start(t)
	seedEndpoint(t, r, upstream(t, "blue"), upstream(t, "green"))
	p := predict(t, r, "ep", r.AdminToken)
	payload, mac, _ := strings.Cut(p.receipt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	// The version changed to the other one, the signature kept.
	altered := bytes.Replace(raw, []byte("|m|1|"), []byte("|m|2|"), 1)
	if bytes.Equal(altered, raw) {
		t.Fatalf("receipt payload %q does not name version 1", raw)
	}
	forged := []string{
		base64.RawURLEncoding.EncodeToString(altered) + "." + mac,
		payload + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 16)),
		// A key ID the database never held.
		base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte("1|1|"), []byte("1|99|"), 1)) + "." + mac,
	}
	for _, f := range forged {
		reason := firstRejected(t, r, "ep", r.AdminToken, feedbackItem{Receipt: f, Metrics: map[string]any{"correct": 1}})
		if !strings.Contains(reason, "does not verify") {
			t.Errorf("forged receipt: reason %q", reason)
		}
	}
	for _, bad := range []string{"", "not-a-receipt", "a.b.c", strings.Repeat("x", 2000)} {
		reason := firstRejected(t, r, "ep", r.AdminToken, feedbackItem{Receipt: bad, Metrics: map[string]any{"correct": 1}})
		if !strings.Contains(reason, "malformed") {
			t.Errorf("receipt %q: reason %q", bad, reason)
		}
	}
	// The real one still counts.
	res := sendFeedback(t, r, "ep", r.AdminToken, []feedbackItem{{Receipt: p.receipt, Metrics: map[string]any{"correct": 1}}})
	if res.Accepted != 1 {
		t.Fatalf("genuine receipt: %+v", res)
	}
}

func TestFeedbackRefusesReplayedReceipt(t *testing.T) {
	r := apptest.Start(t)
	seedEndpoint(t, r, upstream(t, "blue"), upstream(t, "green"))
	p := predict(t, r, "ep", r.AdminToken)
	it := feedbackItem{Receipt: p.receipt, Metrics: map[string]any{"correct": 1}}
	// Twice in one batch: the second refused.
	res := sendFeedback(t, r, "ep", r.AdminToken, []feedbackItem{it, it})
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || !strings.Contains(res.Rejected[0].Reason, "duplicate") {
		t.Fatalf("same receipt twice in a batch: %+v", res)
	}
	// Again later, with other values: refused, and the totals keep the first.
	it.Metrics["correct"] = 0
	if reason := firstRejected(t, r, "ep", r.AdminToken, it); !strings.Contains(reason, "duplicate") {
		t.Fatalf("replay: %q", reason)
	}
	var lm registry.LiveMetrics
	getJSON(t, r, "/api/v1/models/m/versions/1/live-metrics", &lm)
	if got := lm.Metrics["correct"]; got.Count != 1 || got.Mean != 1 {
		t.Fatalf("after a replay: %+v", got)
	}
}

func TestFeedbackRefusesExpiredReceipt(t *testing.T) {
	r := apptest.Start(t)
	seedEndpoint(t, r, upstream(t, "blue"), upstream(t, "green"))
	old := predict(t, r, "ep", r.AdminToken)
	r.Clock.Advance(registry.ReceiptValidity - time.Second)
	fresh := predict(t, r, "ep", r.AdminToken)
	r.Clock.Advance(time.Second)
	res := sendFeedback(t, r, "ep", r.AdminToken, []feedbackItem{
		{Receipt: old.receipt, Metrics: map[string]any{"correct": 1}},
		{Receipt: fresh.receipt, Metrics: map[string]any{"correct": 1}},
	})
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 0 || !strings.Contains(res.Rejected[0].Reason, "expired") {
		t.Fatalf("expired receipt: %+v", res)
	}
}

func TestFeedbackRefusesCrossEndpointReceipt(t *testing.T) {
	r := apptest.Start(t)
	blue := upstream(t, "blue")
	seedEndpoint(t, r, blue, upstream(t, "green"))
	mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
		"name": "ep2", "model": "m",
		"routes": []map[string]any{{"name": "blue", "version": 1, "upstream_url": blue, "weight": 100}},
	}), http.StatusCreated)
	p := predict(t, r, "ep", r.AdminToken)
	reason := firstRejected(t, r, "ep2", r.AdminToken, feedbackItem{Receipt: p.receipt, Metrics: map[string]any{"correct": 1}})
	if !strings.Contains(reason, `issued by endpoint "ep", not "ep2"`) {
		t.Fatalf("cross-endpoint receipt: %q", reason)
	}
	// Refused on ep2, it still counts once on ep.
	if res := sendFeedback(t, r, "ep", r.AdminToken, []feedbackItem{{Receipt: p.receipt, Metrics: map[string]any{"correct": 1}}}); res.Accepted != 1 {
		t.Fatalf("on its own endpoint: %+v", res)
	}
}

// TestFeedbackItemRefusals: bad metrics refuse their item and keep the
// rest of the batch; whole-batch faults answer 4xx.
func TestFeedbackItemRefusals(t *testing.T) {
	r := apptest.Start(t)
	seedEndpoint(t, r, upstream(t, "blue"), upstream(t, "green"))
	var ps []prediction
	for range 6 {
		ps = append(ps, predict(t, r, "ep", r.AdminToken))
	}
	res := sendFeedback(t, r, "ep", r.AdminToken, []feedbackItem{
		{Receipt: ps[0].receipt, Metrics: map[string]any{"correct": "yes"}},
		{Receipt: ps[1].receipt, Metrics: map[string]any{}},
		{Receipt: ps[2].receipt, Metrics: map[string]any{"Bad-Name": 1}},
		{Receipt: ps[3].receipt, Metrics: map[string]any{"correct": nil}},
		{Receipt: ps[4].receipt, Metrics: map[string]any{"correct": 1, "abs_error": 0.5}},
	})
	if res.Accepted != 1 || len(res.Rejected) != 4 {
		t.Fatalf("item refusals: %+v", res)
	}
	for i, want := range []string{"metrics.correct: must be a number", "at least one metric", `"Bad-Name" must match`, "metrics.correct: must be a number"} {
		if res.Rejected[i].Index != i || !strings.Contains(res.Rejected[i].Reason, want) {
			t.Errorf("rejected[%d] = %+v, want %q", i, res.Rejected[i], want)
		}
	}
	// A refused item's request ID is not spent.
	if res := sendFeedback(t, r, "ep", r.AdminToken, []feedbackItem{{Receipt: ps[0].receipt, Metrics: map[string]any{"correct": 1}}}); res.Accepted != 1 {
		t.Fatalf("after a refusal: %+v", res)
	}

	problem := func(body any, status int, contains string) {
		t.Helper()
		res := call(t, "POST", r.URL+"/api/v1/endpoints/ep/feedback", r.AdminToken, body)
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != status || !strings.Contains(string(b), contains) {
			t.Errorf("%d %s, want %d with %q", res.StatusCode, b, status, contains)
		}
	}
	problem(map[string]any{"items": []any{}}, 400, "items")
	problem(map[string]any{"itemz": []any{}}, 400, "itemz")
	big := make([]feedbackItem, registry.MaxFeedbackItems+1)
	for i := range big {
		big[i] = feedbackItem{Receipt: "x", Metrics: map[string]any{"c": 1}}
	}
	problem(map[string]any{"items": big}, 413, "at most 1000")
	res2 := call(t, "POST", r.URL+"/api/v1/endpoints/nope/feedback", r.AdminToken, map[string]any{"items": []feedbackItem{{Receipt: ps[5].receipt, Metrics: map[string]any{"c": 1}}}})
	mustStatus(t, res2, http.StatusNotFound)
	for _, bad := range []string{"window=0m", "window=90s", "window=soon", "window=2160h1m"} {
		res := call(t, "GET", r.URL+"/api/v1/models/m/versions/1/live-metrics?"+bad, r.AdminToken, nil)
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 400 || !strings.Contains(string(b), `"field":"window"`) {
			t.Errorf("%s: %d %s", bad, res.StatusCode, b)
		}
	}
	for _, bad := range []string{"", "versions=1", "versions=1,1", "versions=1,x", "versions=0,1"} {
		res := call(t, "GET", r.URL+"/api/v1/models/m/compare?"+bad, r.AdminToken, nil)
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 400 || !strings.Contains(string(b), `"field":"versions"`) {
			t.Errorf("compare %q: %d %s", bad, res.StatusCode, b)
		}
	}
	mustStatus(t, call(t, "GET", r.URL+"/api/v1/models/m/compare?versions=1,7", r.AdminToken, nil), http.StatusNotFound)
	mustStatus(t, call(t, "GET", r.URL+"/api/v1/models/m/versions/7/live-metrics", r.AdminToken, nil), http.StatusNotFound)
}

// TestFeedbackScopes: serve tokens for the endpoints they may call, write
// and admin tokens for any; read tokens and other endpoints' serve tokens
// are refused.
func TestFeedbackScopes(t *testing.T) {
	r := apptest.Start(t)
	seedEndpoint(t, r, upstream(t, "blue"), upstream(t, "green"))
	p := predict(t, r, "ep", r.AdminToken)
	body := map[string]any{"items": []feedbackItem{{Receipt: p.receipt, Metrics: map[string]any{"correct": 1}}}}
	for _, c := range []struct {
		token  string
		status int
	}{
		{r.Token(t, "reader", registry.ScopeRead), http.StatusForbidden},
		{serveToken(t, r, "other", "ep2"), http.StatusForbidden},
		{"mlr_bogus", http.StatusUnauthorized},
		{serveToken(t, r, "mine", "ep"), http.StatusOK},
		{serveToken(t, r, "any"), http.StatusOK},
		{r.Token(t, "writer", registry.ScopeWrite), http.StatusOK},
	} {
		mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints/ep/feedback", c.token, body), c.status)
	}
	// Serve tokens read nothing, live metrics included.
	mustStatus(t, call(t, "GET", r.URL+"/api/v1/endpoints/ep/live-metrics", serveToken(t, r, "s2", "ep"), nil), http.StatusForbidden)
}

// TestFeedbackSurvivesRestart: totals, the keys that verify receipts and
// the record of which requests were fed back all live in the database.
func TestFeedbackSurvivesRestart(t *testing.T) {
	db := "sqlite://" + t.TempDir() + "/registry.db"
	r := apptest.Start(t, apptest.WithDB(db))
	seedEndpoint(t, r, upstream(t, "blue"), upstream(t, "green"))
	a, b := predict(t, r, "ep", r.AdminToken), predict(t, r, "ep", r.AdminToken)
	sendFeedback(t, r, "ep", r.AdminToken, []feedbackItem{{Receipt: a.receipt, Metrics: map[string]any{"correct": 1}}})
	if err := r.Main.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := apptest.Start(t, apptest.WithDB(db))
	res := sendFeedback(t, r2, "ep", r2.AdminToken, []feedbackItem{
		{Receipt: a.receipt, Metrics: map[string]any{"correct": 1}},
		{Receipt: b.receipt, Metrics: map[string]any{"correct": 0}},
	})
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 0 || !strings.Contains(res.Rejected[0].Reason, "duplicate") {
		t.Fatalf("after a restart: %+v", res)
	}
	var lm registry.LiveMetrics
	getJSON(t, r2, "/api/v1/models/m/versions/1/live-metrics", &lm)
	if got := lm.Metrics["correct"]; got.Count != 2 || got.Mean != 0.5 {
		t.Fatalf("after a restart: %+v", got)
	}
}

// TestReceiptsAcrossReplicasAndRotation: a receipt one replica signed is
// accepted by another; after a rotation the new key signs and receipts of
// the old one keep counting.
func TestReceiptsAcrossReplicasAndRotation(t *testing.T) {
	db := "sqlite://" + t.TempDir() + "/registry.db"
	a := apptest.Start(t, apptest.WithDB(db))
	b := apptest.Start(t, apptest.WithDB(db))
	seedEndpoint(t, a, upstream(t, "blue"), upstream(t, "green"))
	before := predict(t, a, "ep", a.AdminToken)

	res := call(t, "POST", a.URL+"/api/v1/receipt-keys", a.AdminToken, nil)
	mustStatus(t, res, http.StatusCreated)
	var k registry.ReceiptKeyInfo
	if err := json.NewDecoder(res.Body).Decode(&k); err != nil {
		t.Fatal(err)
	}
	if k.ID != 2 {
		t.Fatalf("rotated key: %+v", k)
	}
	after := predict(t, a, "ep", a.AdminToken)
	if keyID(t, after.receipt) != 2 || keyID(t, before.receipt) != 1 {
		t.Fatalf("key ids: before %d after %d", keyID(t, before.receipt), keyID(t, after.receipt))
	}
	// Replica b has not reloaded its keys yet: it looks the new one up
	// when a receipt names it.
	got := sendFeedback(t, b, "ep", b.AdminToken, []feedbackItem{
		{Receipt: before.receipt, Metrics: map[string]any{"correct": 1}},
		{Receipt: after.receipt, Metrics: map[string]any{"correct": 1}},
	})
	if got.Accepted != 2 {
		t.Fatalf("replica b: %+v", got)
	}
	var keys struct {
		Items []registry.ReceiptKeyInfo `json:"items"`
	}
	getJSON(t, b, "/api/v1/receipt-keys", &keys)
	if len(keys.Items) != 2 || keys.Items[1].RetiredAt == nil {
		t.Fatalf("keys: %+v", keys.Items)
	}
	mustStatus(t, call(t, "POST", a.URL+"/api/v1/receipt-keys", a.Token(t, "w", registry.ScopeWrite), nil), http.StatusForbidden)
}

func keyID(t *testing.T, receipt string) int64 {
	t.Helper()
	payload, _, _ := strings.Cut(receipt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(string(raw), "|")
	id, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
