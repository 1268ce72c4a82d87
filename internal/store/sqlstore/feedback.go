package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// ActionReceiptKeyRotate is the event of a receipt key rotation.
const ActionReceiptKeyRotate = "receipt_key.rotate"

// ReceiptKeys returns the keys that still verify, newest first.
func (s *Store) ReceiptKeys(ctx context.Context) ([]registry.ReceiptKey, error) {
	var keys []registry.ReceiptKey
	err := s.inTx(ctx, "list receipt keys", modeReadOne, func(t *txn) error {
		var err error
		keys, err = s.receiptKeys(ctx, t)
		return err
	})
	return keys, err
}

func (s *Store) receiptKeys(ctx context.Context, t *txn) ([]registry.ReceiptKey, error) {
	rows, err := t.query(ctx, "SELECT id, secret, created_at, retired_at FROM receipt_keys ORDER BY id DESC")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []registry.ReceiptKey
	for rows.Next() {
		var (
			k       registry.ReceiptKey
			created int64
			retired sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Secret, &created, &retired); err != nil {
			return nil, err
		}
		k.CreatedAt = fromMicros(created)
		k.RetiredAt = optMicros(retired)
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// EnsureReceiptKey stores secret as key 1 when the table is empty.
// Replicas starting together race on the primary key, and every one reads
// the winner's key.
func (s *Store) EnsureReceiptKey(ctx context.Context, secret []byte) ([]registry.ReceiptKey, error) {
	if len(secret) < 16 {
		return nil, registry.FieldError("secret", "length", "must be at least 16 bytes")
	}
	err := s.inTx(ctx, "ensure receipt key", modeWrite, func(t *txn) error {
		_, err := t.exec(ctx, `INSERT INTO receipt_keys (id, secret, created_at)
			SELECT 1, ?, ? WHERE NOT EXISTS (SELECT 1 FROM receipt_keys)
			ON CONFLICT (id) DO NOTHING`, secret, s.clock().UnixMicro())
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.ReceiptKeys(ctx)
}

// RotateReceiptKey adds secret as the signing key and retires the previous
// one; keys retired longer than registry.ReceiptValidity ago go.
func (s *Store) RotateReceiptKey(ctx context.Context, actor registry.Actor, secret []byte) (*registry.ReceiptKey, error) {
	if len(secret) < 16 {
		return nil, registry.FieldError("secret", "length", "must be at least 16 bytes")
	}
	var out *registry.ReceiptKey
	err := s.inTx(ctx, "rotate receipt key", modeWrite, func(t *txn) error {
		if t.pg {
			// Two rotations at once would pick the same id; the second
			// waits here for the first to commit.
			if _, err := t.exec(ctx, "LOCK TABLE receipt_keys IN SHARE ROW EXCLUSIVE MODE"); err != nil {
				return err
			}
		}
		var last sql.NullInt64
		if err := t.queryRow(ctx, "SELECT MAX(id) FROM receipt_keys").Scan(&last); err != nil {
			return err
		}
		now := s.clock()
		k := registry.ReceiptKey{ID: last.Int64 + 1, Secret: append([]byte(nil), secret...), CreatedAt: now}
		if _, err := t.exec(ctx, "UPDATE receipt_keys SET retired_at = ? WHERE retired_at IS NULL", now.UnixMicro()); err != nil {
			return err
		}
		if _, err := t.exec(ctx, "INSERT INTO receipt_keys (id, secret, created_at) VALUES (?, ?, ?)", k.ID, k.Secret, now.UnixMicro()); err != nil {
			return err
		}
		if _, err := t.exec(ctx, "DELETE FROM receipt_keys WHERE retired_at IS NOT NULL AND retired_at < ?",
			now.Add(-registry.ReceiptValidity).UnixMicro()); err != nil {
			return err
		}
		info := registry.ReceiptKeyInfo{ID: k.ID, CreatedAt: k.CreatedAt}
		if err := s.addEvent(ctx, t, actor, now, event{
			action: ActionReceiptKeyRotate, subjectType: "receipt_key", subject: fmt.Sprint(k.ID), after: info,
			cacheNeutral: true,
		}); err != nil {
			return err
		}
		out = &k
		return nil
	})
	return out, err
}

// liveKey is one bucket row of live_metrics.
type liveKey struct {
	model   string
	version int64
	metric  string
	bucket  int64
}

// feedbackEvent is the endpoint.feedback event's after object: counts,
// never the receipts or values.
type feedbackEvent struct {
	Accepted int     `json:"accepted"`
	Rejected int     `json:"rejected"`
	Versions []int64 `json:"versions"`
}

// RecordFeedback records a batch of verified feedback in one transaction.
func (s *Store) RecordFeedback(ctx context.Context, actor registry.Actor, endpoint string, items []registry.FeedbackRecord) (*registry.FeedbackResult, error) {
	if len(items) > registry.MaxFeedbackItems {
		return nil, registry.FieldError("items", "max_items", "a batch holds at most %d items, got %d", registry.MaxFeedbackItems, len(items))
	}
	var res *registry.FeedbackResult
	err := s.inTx(ctx, "record feedback", modeWrite, func(t *txn) error {
		res = &registry.FeedbackResult{Rejected: []registry.FeedbackRejected{}}
		var model string
		if err := t.queryRow(ctx, "SELECT model FROM endpoints WHERE name = ?", endpoint).Scan(&model); err != nil {
			if err == sql.ErrNoRows {
				return registry.Errorf(registry.CodeNotFound, "endpoint %q not found", endpoint)
			}
			return err
		}
		names := map[string]bool{}
		rows, err := t.query(ctx, "SELECT name FROM live_metric_names WHERE endpoint = ?", endpoint)
		if err != nil {
			return err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names[n] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// Names first, so an item refused for a new name keeps its request
		// ID unspent; a repeat inside the batch is refused here too.
		type candidate struct {
			it    registry.FeedbackRecord
			fresh []string
		}
		tentative := maps.Clone(names)
		inBatch := make(map[string]bool, len(items))
		cands := make([]candidate, 0, len(items))
		for _, it := range items {
			var fresh []string
			for _, k := range slices.Sorted(maps.Keys(it.Metrics)) {
				if !tentative[k] {
					fresh = append(fresh, k)
				}
			}
			if len(tentative)+len(fresh) > registry.MaxLiveMetricNames {
				res.Rejected = append(res.Rejected, registry.FeedbackRejected{Index: it.Index, Reason: fmt.Sprintf(
					"metrics: endpoint %q collects %d metric names, the most it may; %q would be new (send the metrics it already collects)",
					endpoint, len(tentative), fresh[0])})
				continue
			}
			if inBatch[it.Receipt.RequestID] {
				res.Rejected = append(res.Rejected, duplicate(it))
				continue
			}
			inBatch[it.Receipt.RequestID] = true
			for _, k := range fresh {
				tentative[k] = true
			}
			cands = append(cands, candidate{it: it, fresh: fresh})
		}
		recs := make([]registry.FeedbackRecord, len(cands))
		for i, c := range cands {
			recs[i] = c.it
		}
		fresh, err := s.claimRequests(ctx, t, endpoint, recs)
		if err != nil {
			return err
		}
		var added []string
		sums := map[liveKey]registry.LiveSums{}
		tsums := map[liveKey]registry.LiveSums{}
		versions := map[int64]bool{}
		for _, c := range cands {
			it := c.it
			if !fresh[it.Receipt.RequestID] {
				res.Rejected = append(res.Rejected, duplicate(it))
				continue
			}
			for _, k := range c.fresh {
				if !names[k] {
					names[k] = true
					added = append(added, k)
				}
			}
			bucket := it.Receipt.IssuedAt.UTC().Truncate(registry.LiveBucket).Unix()
			for k, v := range it.Metrics {
				lk := liveKey{model: it.Receipt.Model, version: it.Receipt.Version, metric: k, bucket: bucket}
				s := sums[lk]
				s.Count++
				s.Sum += v
				s.SumSq += v * v
				sums[lk] = s
				if it.Trusted {
					ts := tsums[lk]
					ts.Count++
					ts.Sum += v
					ts.SumSq += v * v
					tsums[lk] = ts
				}
			}
			versions[it.Receipt.Version] = true
			res.Accepted++
		}
		slices.SortFunc(res.Rejected, func(a, b registry.FeedbackRejected) int { return cmp.Compare(a.Index, b.Index) })
		for _, n := range added {
			if _, err := t.exec(ctx, "INSERT INTO live_metric_names (endpoint, name) VALUES (?, ?) ON CONFLICT (endpoint, name) DO NOTHING", endpoint, n); err != nil {
				return err
			}
		}
		// A fixed order keeps concurrent batches on PostgreSQL from
		// locking the same rows in opposite orders.
		byKey := func(a, b liveKey) int {
			return cmp.Or(cmp.Compare(a.model, b.model), cmp.Compare(a.version, b.version),
				cmp.Compare(a.metric, b.metric), cmp.Compare(a.bucket, b.bucket))
		}
		// live_metrics holds every value; live_metrics_trusted holds the
		// trusted ones again, so neither sum needs the other to be read.
		for _, tbl := range []struct {
			name string
			sums map[liveKey]registry.LiveSums
		}{{"live_metrics", sums}, {"live_metrics_trusted", tsums}} {
			for _, k := range slices.SortedFunc(maps.Keys(tbl.sums), byKey) {
				v := tbl.sums[k]
				if _, err := t.exec(ctx, `INSERT INTO `+tbl.name+` (endpoint, model, version, metric, bucket, n, total, total_sq)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?)
					ON CONFLICT (endpoint, model, version, metric, bucket) DO UPDATE SET
						n = `+tbl.name+`.n + excluded.n,
						total = `+tbl.name+`.total + excluded.total,
						total_sq = `+tbl.name+`.total_sq + excluded.total_sq`,
					endpoint, k.model, k.version, k.metric, k.bucket, v.Count, v.Sum, v.SumSq); err != nil {
					return err
				}
			}
		}
		now := s.clock()
		if _, err := t.exec(ctx, "DELETE FROM feedback_receipts WHERE expires_at < ?", now.UnixMicro()); err != nil {
			return err
		}
		return s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionEndpointFeedback, subjectType: "endpoint", subject: endpoint,
			model: model, endpoint: endpoint,
			after:        feedbackEvent{Accepted: res.Accepted, Rejected: len(res.Rejected), Versions: slices.Sorted(maps.Keys(versions))},
			cacheNeutral: true,
		})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func duplicate(it registry.FeedbackRecord) registry.FeedbackRejected {
	return registry.FeedbackRejected{Index: it.Index, Reason: fmt.Sprintf(
		"duplicate: feedback for request %q was already recorded", it.Receipt.RequestID)}
}

// claimChunks are the row counts of the multi-row inserts claimRequests
// sends: a few fixed statement shapes, so each is prepared once.
var claimChunks = []int{100, 10, 1}

// claimRequests records the request IDs of items (distinct) as fed back
// and returns those that were not already: one multi-row insert per chunk
// instead of a statement per item.
func (s *Store) claimRequests(ctx context.Context, t *txn, endpoint string, items []registry.FeedbackRecord) (map[string]bool, error) {
	fresh := make(map[string]bool, len(items))
	for len(items) > 0 {
		n := claimChunks[len(claimChunks)-1]
		for _, c := range claimChunks {
			if len(items) >= c {
				n = c
				break
			}
		}
		chunk := items[:n]
		items = items[n:]
		var q strings.Builder
		q.WriteString("INSERT INTO feedback_receipts (endpoint, request_id, expires_at) VALUES ")
		args := make([]any, 0, 3*n)
		for i, it := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, endpoint, it.Receipt.RequestID, it.Receipt.IssuedAt.Add(registry.ReceiptValidity).UnixMicro())
		}
		q.WriteString(" ON CONFLICT (endpoint, request_id) DO NOTHING RETURNING request_id")
		rows, err := t.query(ctx, q.String(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			fresh[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

// LiveSeries sums the selected buckets per endpoint, version and metric.
func (s *Store) LiveSeries(ctx context.Context, q registry.LiveQuery) ([]registry.LiveSeries, error) {
	where := "bucket >= ? AND bucket < ?"
	args := []any{q.From.Unix(), q.To.Unix()}
	if q.Endpoint != "" {
		where += " AND endpoint = ?"
		args = append(args, q.Endpoint)
	}
	if q.Model != "" {
		where += " AND model = ?"
		args = append(args, q.Model)
	}
	if q.Version > 0 {
		where += " AND version = ?"
		args = append(args, q.Version)
	}
	table := "live_metrics"
	if q.TrustedOnly {
		table = "live_metrics_trusted"
	}
	var out []registry.LiveSeries
	err := s.inTx(ctx, "live metrics", modeReadOne, func(t *txn) error {
		var err error
		out, err = liveSeries(ctx, t, table, where, args)
		return err
	})
	return out, err
}

func liveSeries(ctx context.Context, t *txn, table, where string, args []any) ([]registry.LiveSeries, error) {
	rows, err := t.query(ctx, `SELECT endpoint, model, version, metric, CAST(SUM(n) AS BIGINT), SUM(total), SUM(total_sq)
		FROM `+table+` WHERE `+where+`
		GROUP BY endpoint, model, version, metric
		ORDER BY endpoint, model, version, metric`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []registry.LiveSeries
	for rows.Next() {
		var ls registry.LiveSeries
		if err := rows.Scan(&ls.Endpoint, &ls.Model, &ls.Version, &ls.Metric, &ls.Count, &ls.Sum, &ls.SumSq); err != nil {
			return nil, err
		}
		out = append(out, ls)
	}
	return out, rows.Err()
}

// VersionStageHistory lists the stage changes that gave the version a
// stage or took one from it, newest first (at most the latest 1000).
func (s *Store) VersionStageHistory(ctx context.Context, model string, version int64) ([]registry.StageHistoryEntry, error) {
	out := []registry.StageHistoryEntry{}
	err := s.inTx(ctx, "version stage history", modeReadOne, func(t *txn) error {
		rows, err := t.query(ctx, "SELECT "+historyCols+` FROM stage_history
			WHERE model = ? AND (version = ? OR previous_version = ?) ORDER BY id DESC LIMIT 1000`, model, version, version)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			h, err := scanHistory(rows)
			if err != nil {
				return err
			}
			out = append(out, h)
		}
		return rows.Err()
	})
	return out, err
}
