package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Feedback joins what an application learns after a prediction (was it
// correct, how far off) to the version that made it, without the registry
// storing any request: the gateway signs a receipt into every /serve/
// answer, the application hands it back with its metrics, and the store
// keeps per-bucket sums only.

// ReceiptHeader carries a prediction's receipt on every /serve/ answer.
const ReceiptHeader = "X-Prediction-Receipt"

// ReceiptValidity is how long after its prediction a receipt is taken
// back with feedback. A rotated receipt key keeps verifying this long after
// its successor replaced it, so no receipt in flight is lost.
const ReceiptValidity = 24 * time.Hour

// Bounds of feedback.
const (
	// MaxFeedbackItems is the largest batch POST .../feedback takes.
	MaxFeedbackItems = 1000
	// MaxFeedbackMetricsPerItem bounds the metrics one item carries.
	MaxFeedbackMetricsPerItem = 32
	// MaxLiveMetricNames bounds the distinct metric names an endpoint
	// collects: an item naming a new one past it is refused, so a client
	// sending arbitrary names cannot grow the registry's tables.
	MaxLiveMetricNames = 64
	// LiveBucket is the width of the time buckets live metrics are summed
	// in; windows are whole buckets.
	LiveBucket = time.Minute
	// DefaultLiveWindow and MaxLiveWindow bound ?window= of live metrics.
	DefaultLiveWindow = time.Hour
	MaxLiveWindow     = 90 * 24 * time.Hour
)

// Receipt is what a prediction receipt certifies: which answer of which
// endpoint, route, model and version, and when. KeyID names the receipt
// key that signed it.
type Receipt struct {
	KeyID     int64
	IssuedAt  time.Time
	Endpoint  string
	Route     string
	Model     string
	Version   int64
	RequestID string
}

// ReceiptKey is a secret receipts are signed with. Every replica and
// gateway process reads the same keys from the database, so a receipt
// signed by one is accepted by all. The newest key signs; the others verify
// until RetiredAt+ReceiptValidity.
type ReceiptKey struct {
	ID        int64
	Secret    []byte
	CreatedAt time.Time
	// RetiredAt is when a newer key replaced this one (nil: the current key).
	RetiredAt *time.Time
}

// ReceiptKeyInfo is a receipt key as the API shows it: never the secret.
type ReceiptKeyInfo struct {
	ID        int64      `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
}

// FeedbackRequest is the body of POST /api/v1/endpoints/{name}/feedback.
// Metric values stay raw so one bad value refuses its item, not the batch.
type FeedbackRequest struct {
	Items []FeedbackItem `json:"items"`
}

// FeedbackItem is one prediction's feedback.
type FeedbackItem struct {
	Receipt string                     `json:"receipt"`
	Metrics map[string]json.RawMessage `json:"metrics"`
}

// FeedbackResult is the answer of POST .../feedback: how many items were
// kept, and why each other one was refused.
type FeedbackResult struct {
	Accepted int                `json:"accepted"`
	Rejected []FeedbackRejected `json:"rejected"`
}

// FeedbackRejected names a refused item by its index in the batch.
type FeedbackRejected struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// FeedbackRecord is a verified item as the store records it.
type FeedbackRecord struct {
	// Index is the item's position in the batch, for refusals.
	Index   int
	Receipt Receipt
	Metrics map[string]float64
	// Trusted marks feedback sent by a write or admin token. Only trusted
	// feedback moves automatic actions and stage policies: a serve token's
	// holder makes requests, so it could report every answer wrong (or
	// right) and steer a rollback or a promotion.
	Trusted bool
}

// Feedback event action: one per batch, in the batch's transaction.
const ActionEndpointFeedback = "endpoint.feedback"

// ParseFeedbackMetrics checks one item's metrics: 1 to
// MaxFeedbackMetricsPerItem names of the metric-name form, each a finite
// JSON number. The error is the item's refusal reason.
func ParseFeedbackMetrics(raw map[string]json.RawMessage) (map[string]float64, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("metrics: at least one metric is required")
	}
	if len(raw) > MaxFeedbackMetricsPerItem {
		return nil, fmt.Errorf("metrics: %d metrics; an item carries at most %d", len(raw), MaxFeedbackMetricsPerItem)
	}
	out := make(map[string]float64, len(raw))
	for k, v := range raw {
		if !ValidLiveMetricName(k) {
			return nil, fmt.Errorf("metrics: name %q must match %s", k, LiveMetricNamePattern)
		}
		s := strings.TrimSpace(string(v))
		if s == "" || s[0] == '"' || s[0] == '{' || s[0] == '[' || s == "null" || s == "true" || s == "false" {
			return nil, fmt.Errorf("metrics.%s: must be a number, got %s", k, abbreviate(s))
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("metrics.%s: must be a finite number, got %s", k, abbreviate(s))
		}
		out[k] = f
	}
	return out, nil
}

// LiveMetricNamePattern is the form of a live metric's name.
const LiveMetricNamePattern = "^[a-z][a-z0-9_]{0,62}$"

// ValidLiveMetricName reports whether name matches LiveMetricNamePattern.
func ValidLiveMetricName(name string) bool {
	if name == "" || len(name) > 63 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ParseLiveWindow reads ?window= of live metrics: a Go duration of whole
// minutes from one minute to MaxLiveWindow; "" is DefaultLiveWindow.
func ParseLiveWindow(field, v string) (time.Duration, error) {
	if v == "" {
		return DefaultLiveWindow, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, FieldError(field, "duration", "must be a duration such as 1h or 30m, got %q", v)
	}
	if d < LiveBucket || d > MaxLiveWindow || d%LiveBucket != 0 {
		return 0, FieldError(field, "range", "must be whole minutes from 1m to %s, got %s", MaxLiveWindow, v)
	}
	return d, nil
}

// FormatWindow spells a window the way it is written: 1h, 30m, 1h30m.
func FormatWindow(d time.Duration) string {
	s := strings.TrimSuffix(d.String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// LiveSums are the sums a live metric is kept as.
type LiveSums struct {
	Count int64
	Sum   float64
	SumSq float64
}

// LiveMetric is a live metric over a window: its mean and a 95% interval
// for it (normal approximation, mean +/- 1.96 standard errors; absent
// below two values).
type LiveMetric struct {
	Count  int64    `json:"count"`
	Mean   float64  `json:"mean"`
	Sum    float64  `json:"sum"`
	StdDev *float64 `json:"stddev,omitempty"`
	CILow  *float64 `json:"ci95_low,omitempty"`
	CIHigh *float64 `json:"ci95_high,omitempty"`
}

// Summarize turns sums into a LiveMetric.
func (s LiveSums) Summarize() LiveMetric {
	m := LiveMetric{Count: s.Count, Sum: s.Sum}
	if s.Count == 0 {
		return m
	}
	n := float64(s.Count)
	m.Mean = s.Sum / n
	if s.Count < 2 {
		return m
	}
	// Rounding can make the centred sum of squares a hair below zero.
	v := math.Max(0, (s.SumSq-s.Sum*s.Sum/n)/(n-1))
	sd := math.Sqrt(v)
	half := 1.96 * sd / math.Sqrt(n)
	lo, hi := m.Mean-half, m.Mean+half
	m.StdDev, m.CILow, m.CIHigh = &sd, &lo, &hi
	return m
}

// LiveQuery selects live metrics: of one endpoint ("" = every endpoint),
// of one model's version (Version 0 = every version), in [From, To).
type LiveQuery struct {
	Endpoint string
	Model    string
	Version  int64
	From, To time.Time
	// TrustedOnly sums only trusted feedback (FeedbackRecord.Trusted).
	TrustedOnly bool
}

// LiveSeries is one (endpoint, version, metric)'s sums in a window.
type LiveSeries struct {
	Endpoint string
	Model    string
	Version  int64
	Metric   string
	LiveSums
}

// LiveMetrics is the answer of GET .../versions/{n}/live-metrics and
// GET /api/v1/endpoints/{name}/live-metrics.
type LiveMetrics struct {
	Model    string    `json:"model,omitempty"`
	Version  int64     `json:"version,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Window   string    `json:"window"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Metrics sums every series the query selects (a version's feedback
	// from every endpoint; an endpoint's from every version).
	Metrics map[string]LiveMetric `json:"metrics"`
	// Trusted is the part of Metrics sent by write and admin tokens: what
	// stage policies, guards and rollout gates judge. Metrics minus
	// Trusted came from serve tokens.
	Trusted map[string]LiveMetric `json:"trusted"`
	// Versions, for an endpoint, splits Metrics by version, oldest first.
	Versions []VersionLiveMetrics `json:"versions,omitempty"`
}

// VersionLiveMetrics is one version's live metrics on an endpoint.
type VersionLiveMetrics struct {
	Version int64                 `json:"version"`
	Metrics map[string]LiveMetric `json:"metrics"`
	// Trusted is the part of Metrics sent by write and admin tokens.
	Trusted map[string]LiveMetric `json:"trusted"`
}

// AttachTrusted sets Trusted, here and per version, from the trusted
// series of the same query.
func (l *LiveMetrics) AttachTrusted(trusted []LiveSeries) {
	all, per := SummarizeLive(trusted)
	l.Trusted = all
	byVersion := map[int64]map[string]LiveMetric{}
	for _, v := range per {
		byVersion[v.Version] = v.Metrics
	}
	for i := range l.Versions {
		l.Versions[i].Trusted = byVersion[l.Versions[i].Version]
		if l.Versions[i].Trusted == nil {
			l.Versions[i].Trusted = map[string]LiveMetric{}
		}
	}
}

// LiveSumsByMetric adds series up per metric, whatever their endpoint
// and version.
func LiveSumsByMetric(series []LiveSeries) map[string]LiveSums {
	out := map[string]LiveSums{}
	for _, s := range series {
		t := out[s.Metric]
		t.Count, t.Sum, t.SumSq = t.Count+s.Count, t.Sum+s.Sum, t.SumSq+s.SumSq
		out[s.Metric] = t
	}
	return out
}

// SummarizeLive folds series into per-metric summaries (all of them) and
// per-version ones.
func SummarizeLive(series []LiveSeries) (all map[string]LiveMetric, byVersion []VersionLiveMetrics) {
	total := map[string]LiveSums{}
	per := map[int64]map[string]LiveSums{}
	var versions []int64
	for _, s := range series {
		t := total[s.Metric]
		t.Count, t.Sum, t.SumSq = t.Count+s.Count, t.Sum+s.Sum, t.SumSq+s.SumSq
		total[s.Metric] = t
		pv := per[s.Version]
		if pv == nil {
			pv = map[string]LiveSums{}
			per[s.Version] = pv
			versions = append(versions, s.Version)
		}
		v := pv[s.Metric]
		v.Count, v.Sum, v.SumSq = v.Count+s.Count, v.Sum+s.Sum, v.SumSq+s.SumSq
		pv[s.Metric] = v
	}
	all = make(map[string]LiveMetric, len(total))
	for k, v := range total {
		all[k] = v.Summarize()
	}
	slices.Sort(versions)
	for _, ver := range versions {
		m := make(map[string]LiveMetric, len(per[ver]))
		for k, v := range per[ver] {
			m[k] = v.Summarize()
		}
		byVersion = append(byVersion, VersionLiveMetrics{Version: ver, Metrics: m})
	}
	return all, byVersion
}

// LiveWindow returns the whole-bucket window of length d ending with the
// bucket that holds now: [from, to).
func LiveWindow(now time.Time, d time.Duration) (from, to time.Time) {
	to = now.UTC().Truncate(LiveBucket).Add(LiveBucket)
	return to.Add(-d), to
}

// ReceiptKeyStore is the persistence of the keys that sign and verify
// prediction receipts.
type ReceiptKeyStore interface {
	// ReceiptKeys returns the keys that still verify, newest first.
	ReceiptKeys(ctx context.Context) ([]ReceiptKey, error)
	// EnsureReceiptKey stores secret as the first key when there is none
	// (replicas starting together agree on one) and returns the keys.
	EnsureReceiptKey(ctx context.Context, secret []byte) ([]ReceiptKey, error)
	// RotateReceiptKey stores secret as the new signing key, retires the
	// previous one (it verifies for ReceiptValidity more), drops keys
	// retired longer ago than that, and writes a receipt_key.rotate event,
	// in one transaction.
	RotateReceiptKey(ctx context.Context, actor Actor, secret []byte) (*ReceiptKey, error)
}

// FeedbackStore is the persistence of feedback and of the receipt keys
// that vouch for it.
type FeedbackStore interface {
	ReceiptKeyStore
	// RecordFeedback records verified items of one endpoint in one
	// transaction with an endpoint.feedback event: each request ID is
	// recorded once (a second time is refused), an item naming a metric
	// the endpoint does not collect yet is refused once it collects
	// MaxLiveMetricNames, and the rest are added to their time buckets.
	// Refusals come back per item (by FeedbackRecord.Index); Accepted
	// counts the rest.
	RecordFeedback(ctx context.Context, actor Actor, endpoint string, items []FeedbackRecord) (*FeedbackResult, error)
	// LiveSeries sums the buckets q selects per endpoint, version and
	// metric.
	LiveSeries(ctx context.Context, q LiveQuery) ([]LiveSeries, error)
}
