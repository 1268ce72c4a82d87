package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var feedbackCases = []testCase{
	{"FeedbackTotals", testFeedbackTotals},
	{"FeedbackDuplicates", testFeedbackDuplicates},
	{"FeedbackMetricNameBound", testFeedbackMetricNameBound},
	{"ReceiptKeys", testReceiptKeys},
	{"VersionStageHistory", testVersionStageHistory},
	{"FeedbackTrusted", testFeedbackTrusted},
	{"LivePolicy", testLivePolicy},
}

// testFeedbackTrusted: every value counts in the live metrics; only the
// trusted ones count in a TrustedOnly query.
func testFeedbackTrusted(e *env) {
	t := e.t
	feedbackFixture(e)
	start := e.clock.Now().UTC().Truncate(time.Minute)
	var batch []registry.FeedbackRecord
	for i := range 10 {
		r := record(i, 2, start, map[string]float64{"correct": float64(i % 2)})
		r.Trusted = i < 4
		batch = append(batch, r)
	}
	res, err := e.s.RecordFeedback(e.ctx, e.actor, "churn-api", batch)
	ok(t, err)
	equal(t, "accepted", res.Accepted, 10)
	q := registry.LiveQuery{Model: "churn", Version: 2, From: start, To: start.Add(time.Hour)}
	all, err := e.s.LiveSeries(e.ctx, q)
	ok(t, err)
	q.TrustedOnly = true
	trusted, err := e.s.LiveSeries(e.ctx, q)
	ok(t, err)
	equal(t, "all", registry.LiveSumsByMetric(all)["correct"], registry.LiveSums{Count: 10, Sum: 5, SumSq: 5})
	equal(t, "trusted", registry.LiveSumsByMetric(trusted)["correct"], registry.LiveSums{Count: 4, Sum: 2, SumSq: 2})
}

// testLivePolicy: min_live_metrics judges the version's trusted feedback
// of the last day inside the assignment's transaction, names the metric,
// the mean, the count and the floor, and lets the version through once
// enough good trusted feedback arrived.
func testLivePolicy(e *env) {
	t := e.t
	feedbackFixture(e)
	policy := map[string]registry.StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.9}, MinLiveCount: 10}}
	_, err := e.s.UpdateModel(e.ctx, e.actor, "churn", registry.ModelPatch{StagePolicies: &policy}, registry.Precondition{})
	ok(t, err)
	start := e.clock.Now().UTC()
	send := func(from, n int, trusted bool, correct func(i int) float64) {
		t.Helper()
		var batch []registry.FeedbackRecord
		for i := from; i < from+n; i++ {
			r := record(i, 2, start, map[string]float64{"correct": correct(i)})
			r.Trusted = trusted
			batch = append(batch, r)
		}
		res, err := e.s.RecordFeedback(e.ctx, e.actor, "churn-api", batch)
		ok(t, err)
		equal(t, "accepted", res.Accepted, n)
	}
	assign := func() error {
		_, err := e.s.AssignStage(e.ctx, e.actor, "churn", "production", registry.StageAssign{Version: 2}, registry.AssignOptions{})
		return err
	}
	// Serve-token feedback, however good, does not count.
	send(0, 50, false, func(int) float64 { return 1 })
	wantCode(t, assign(), registry.CodePolicyViolation, "min_live_metrics", `has 0 trusted feedback values of live metric "correct"`, "at least 10")
	// Trusted feedback with a mean of 0.8 is below the floor.
	send(100, 20, true, func(i int) float64 { return float64(min(1, i%5)) })
	wantCode(t, assign(), registry.CodePolicyViolation, "live correct = 0.8 over 20 trusted feedback values", ">= 0.9")
	// A day later that feedback is out of the window.
	e.clock.Advance(registry.PolicyLiveWindow + 2*time.Minute)
	start = e.clock.Now().UTC()
	send(200, 10, true, func(int) float64 { return 1 })
	ok(t, assign())
}

// feedbackFixture is endpoint churn-api over versions 1 and 2 of churn.
func feedbackFixture(e *env) {
	endpointFixture(e)
	_, err := e.s.CreateEndpoint(e.ctx, e.actor, registry.EndpointCreate{Name: "churn-api", Model: "churn", Routes: routes(1, 50, 2)})
	ok(e.t, err)
}

// record is one verified item of feedback for churn-api, issued at at.
func record(i int, version int64, at time.Time, metrics map[string]float64) registry.FeedbackRecord {
	route := "stable"
	if version == 2 {
		route = "canary"
	}
	return registry.FeedbackRecord{Index: i, Metrics: metrics, Receipt: registry.Receipt{
		KeyID: 1, IssuedAt: at, Endpoint: "churn-api", Route: route, Model: "churn", Version: version,
		RequestID: fmt.Sprintf("req-%d-%d", version, i),
	}}
}

// testFeedbackTotals records feedback in several batches and buckets and
// checks every dialect sums it to the same totals. The values are
// multiples of 1/4, so every sum is exact whatever order it is added in.
func testFeedbackTotals(e *env) {
	t := e.t
	feedbackFixture(e)
	start := e.clock.Now().UTC().Truncate(time.Minute)
	want := map[string]registry.LiveSums{} // "version/metric"
	var batch []registry.FeedbackRecord
	flush := func() {
		t.Helper()
		res, err := e.s.RecordFeedback(e.ctx, e.actor, "churn-api", batch)
		ok(t, err)
		equal(t, "accepted", res.Accepted, len(batch))
		equal(t, "rejected", len(res.Rejected), 0)
		batch = nil
	}
	for i := range 300 {
		version := int64(1 + i%2)
		at := start.Add(time.Duration(i%5) * time.Minute).Add(time.Duration(i%50) * time.Second)
		correct := float64((i / 2) % 4 / 3) // 1 in 4 is correct
		absErr := float64(i%7) * 0.25
		batch = append(batch, record(i, version, at, map[string]float64{"correct": correct, "abs_error": absErr}))
		for k, v := range map[string]float64{"correct": correct, "abs_error": absErr} {
			key := fmt.Sprintf("%d/%s", version, k)
			s := want[key]
			s.Count++
			s.Sum += v
			s.SumSq += v * v
			want[key] = s
		}
		if len(batch) == 100 {
			flush()
		}
	}
	e.clock.Advance(10 * time.Minute)
	series, err := e.s.LiveSeries(e.ctx, registry.LiveQuery{Endpoint: "churn-api", From: start, To: start.Add(time.Hour)})
	ok(t, err)
	got := map[string]registry.LiveSums{}
	for _, s := range series {
		equal(t, "series endpoint and model", s.Endpoint+"/"+s.Model, "churn-api/churn")
		got[fmt.Sprintf("%d/%s", s.Version, s.Metric)] = s.LiveSums
	}
	equal(t, "totals per version and metric", got, want)

	// A version's query sees the same sums; a window that ends before the
	// later buckets sees fewer.
	series, err = e.s.LiveSeries(e.ctx, registry.LiveQuery{Model: "churn", Version: 2, From: start, To: start.Add(time.Hour)})
	ok(t, err)
	equal(t, "version 2 series", len(series), 2)
	for _, s := range series {
		equal(t, "version 2 "+s.Metric, s.LiveSums, want["2/"+s.Metric])
	}
	series, err = e.s.LiveSeries(e.ctx, registry.LiveQuery{Model: "churn", Version: 2, From: start, To: start.Add(2 * time.Minute)})
	ok(t, err)
	for _, s := range series {
		if s.Count >= want["2/"+s.Metric].Count || s.Count == 0 {
			t.Errorf("a two-minute window counts %d of %d", s.Count, want["2/"+s.Metric].Count)
		}
	}

	// One event per batch, with counts and no values.
	evs := e.events(registry.EventFilter{Endpoint: "churn-api"})
	n := 0
	for _, ev := range evs {
		if ev.Action != registry.ActionEndpointFeedback {
			continue
		}
		n++
		var after struct {
			Accepted int     `json:"accepted"`
			Versions []int64 `json:"versions"`
		}
		ok(t, json.Unmarshal(ev.After, &after))
		equal(t, "event", after.Accepted, 100)
		equal(t, "event versions", after.Versions, []int64{1, 2})
		equal(t, "event model", ev.Model, "churn")
	}
	equal(t, "feedback events", n, 3)

	_, err = e.s.RecordFeedback(e.ctx, e.actor, "nope", []registry.FeedbackRecord{record(0, 1, start, map[string]float64{"x": 1})})
	wantCode(t, err, registry.CodeNotFound, "nope")
}

// testFeedbackDuplicates: a request ID counts once, within a batch and
// across batches, and a refused item adds nothing.
func testFeedbackDuplicates(e *env) {
	t := e.t
	feedbackFixture(e)
	at := e.clock.Now()
	m := map[string]float64{"correct": 1}
	res, err := e.s.RecordFeedback(e.ctx, e.actor, "churn-api", []registry.FeedbackRecord{record(0, 1, at, m), record(1, 1, at, m), record(0, 1, at, m)})
	ok(t, err)
	equal(t, "accepted", res.Accepted, 2)
	if len(res.Rejected) != 1 || res.Rejected[0].Index != 0 || !strings.Contains(res.Rejected[0].Reason, "duplicate") {
		t.Fatalf("rejected: %+v", res.Rejected)
	}
	res, err = e.s.RecordFeedback(e.ctx, e.actor, "churn-api", []registry.FeedbackRecord{record(1, 1, at, m)})
	ok(t, err)
	equal(t, "accepted again", res.Accepted, 0)
	equal(t, "rejected again", len(res.Rejected), 1)
	series, err := e.s.LiveSeries(e.ctx, registry.LiveQuery{Endpoint: "churn-api", From: at.Add(-time.Hour), To: at.Add(time.Hour)})
	ok(t, err)
	equal(t, "series", len(series), 1)
	equal(t, "count", series[0].Count, int64(2))
}

// testFeedbackMetricNameBound: an endpoint collects at most
// MaxLiveMetricNames names; an item naming one more is refused, items with
// known names still count.
func testFeedbackMetricNameBound(e *env) {
	t := e.t
	feedbackFixture(e)
	at := e.clock.Now()
	var batch []registry.FeedbackRecord
	for i := range registry.MaxLiveMetricNames {
		batch = append(batch, record(i, 1, at, map[string]float64{fmt.Sprintf("m%d", i): 1}))
	}
	batch = append(batch,
		record(1000, 1, at, map[string]float64{"one_too_many": 1}),
		record(1001, 1, at, map[string]float64{"m0": 2}))
	res, err := e.s.RecordFeedback(e.ctx, e.actor, "churn-api", batch)
	ok(t, err)
	equal(t, "accepted", res.Accepted, registry.MaxLiveMetricNames+1)
	if len(res.Rejected) != 1 || res.Rejected[0].Index != 1000 || !strings.Contains(res.Rejected[0].Reason, "one_too_many") {
		t.Fatalf("rejected: %+v", res.Rejected)
	}
	// The refused item's request ID was not spent.
	res, err = e.s.RecordFeedback(e.ctx, e.actor, "churn-api", []registry.FeedbackRecord{record(1000, 1, at, map[string]float64{"m1": 1})})
	ok(t, err)
	equal(t, "accepted after", res.Accepted, 1)
}

func testReceiptKeys(e *env) {
	t := e.t
	secret := func(b byte) []byte { return []byte(strings.Repeat(string(rune('a'+b)), 32)) }
	keys, err := e.s.EnsureReceiptKey(e.ctx, secret(0))
	ok(t, err)
	equal(t, "first keys", len(keys), 1)
	equal(t, "first key", string(keys[0].Secret), string(secret(0)))
	// A second process starting finds the key and keeps it.
	keys, err = e.s.EnsureReceiptKey(e.ctx, secret(1))
	ok(t, err)
	equal(t, "keys after a second ensure", len(keys), 1)
	equal(t, "kept key", string(keys[0].Secret), string(secret(0)))

	e.clock.Advance(time.Hour)
	k2, err := e.s.RotateReceiptKey(e.ctx, e.actor, secret(2))
	ok(t, err)
	keys, err = e.s.ReceiptKeys(e.ctx)
	ok(t, err)
	equal(t, "keys after rotation", len(keys), 2)
	equal(t, "newest first", keys[0].ID, k2.ID)
	if keys[0].RetiredAt != nil || keys[1].RetiredAt == nil || !keys[1].RetiredAt.Equal(at(e.clock.Now())) {
		t.Fatalf("retired: %+v", keys)
	}
	evs := e.events(registry.EventFilter{})
	equal(t, "rotation event", evs[len(evs)-1].Action, "receipt_key.rotate")
	if strings.Contains(string(evs[len(evs)-1].After), "secret") {
		t.Fatalf("event holds the secret: %s", evs[len(evs)-1].After)
	}

	// The retired key verifies for the receipt validity, then goes at the
	// next rotation.
	e.clock.Advance(registry.ReceiptValidity - time.Minute)
	k3, err := e.s.RotateReceiptKey(e.ctx, e.actor, secret(3))
	ok(t, err)
	keys, err = e.s.ReceiptKeys(e.ctx)
	ok(t, err)
	equal(t, "keys within validity", len(keys), 3)
	e.clock.Advance(2 * time.Minute)
	_, err = e.s.RotateReceiptKey(e.ctx, e.actor, secret(4))
	ok(t, err)
	keys, err = e.s.ReceiptKeys(e.ctx)
	ok(t, err)
	ids := []int64{}
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	equal(t, "keys after the first retired one expired", ids, []int64{k3.ID + 1, k3.ID, k2.ID})
	_, err = e.s.RotateReceiptKey(e.ctx, e.actor, []byte("short"))
	wantField(t, err, "secret")
}

func testVersionStageHistory(e *env) {
	t := e.t
	endpointFixture(e)
	e.assign("churn", "staging", 1)
	e.assign("churn", "staging", 2)
	e.assign("churn", "production", 1)
	h, err := e.s.VersionStageHistory(e.ctx, "churn", 1)
	ok(t, err)
	var got []string
	for _, x := range h {
		got = append(got, fmt.Sprintf("%s %d<-%d", x.Stage, x.Version, x.PreviousVersion))
	}
	equal(t, "version 1 history", got, []string{"production 1<-0", "staging 2<-1", "staging 1<-0"})
	h, err = e.s.VersionStageHistory(e.ctx, "churn", 3)
	ok(t, err)
	equal(t, "no history", len(h), 0)
}
