package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Receipts verifies prediction receipts and rotates their keys (the
// receipt package's Keyring).
type Receipts interface {
	Verify(ctx context.Context, receipt string) (registry.Receipt, error)
	Rotate(ctx context.Context, actor registry.Actor) (*registry.ReceiptKey, error)
}

// mayFeedBack lets a serve token send feedback for the endpoints it may
// call, and a write or admin token for any; a read token changes nothing,
// so it sends none.
func mayFeedBack(r *http.Request, endpoint string) error {
	tok, ok := TokenFromContext(r.Context())
	if !ok {
		return registry.Errorf(registry.CodeUnauthenticated, "sending feedback needs an authenticated token")
	}
	switch {
	case tok.Scope == registry.ScopeServe:
		if !tok.MayServe(endpoint) {
			return &registry.Error{
				Code: registry.CodePermissionDenied,
				Rule: "token_endpoints",
				Message: fmt.Sprintf("token %q may call endpoints [%s], not %q, so it may not send feedback for it",
					tok.Name, strings.Join(tok.Endpoints, ", "), endpoint),
			}
		}
		return nil
	case tok.Scope.Allows(registry.ScopeWrite):
		return nil
	}
	return &registry.Error{
		Code: registry.CodePermissionDenied,
		Rule: "scope",
		Message: fmt.Sprintf("token %q has scope %s; sending feedback needs a serve token that may call the endpoint, or a write token",
			tok.Name, tok.Scope),
	}
}

// postFeedback verifies each item's receipt and metrics, refuses the bad
// ones by index, and records the rest in one transaction. A retried batch
// changes nothing: every request ID counts once.
func (s *Server) postFeedback(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "endpoint")
	if err != nil {
		return err
	}
	if err := mayFeedBack(r, name); err != nil {
		return err
	}
	if s.receipts == nil {
		return registry.Errorf(registry.CodeUnavailable, "this registry signs no receipts, so it takes no feedback")
	}
	var req registry.FeedbackRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Items) == 0 {
		return registry.FieldError("items", "required", "send 1 to %d items", registry.MaxFeedbackItems)
	}
	if len(req.Items) > registry.MaxFeedbackItems {
		return &registry.Error{Code: registry.CodeTooLarge, Field: "items", Rule: "max_items",
			Message: fmt.Sprintf("items: a batch holds at most %d items, got %d; split it", registry.MaxFeedbackItems, len(req.Items))}
	}
	tok, _ := TokenFromContext(r.Context())
	trusted := tok != nil && tok.Scope.Allows(registry.ScopeWrite)
	res := &registry.FeedbackResult{Rejected: []registry.FeedbackRejected{}}
	records := make([]registry.FeedbackRecord, 0, len(req.Items))
	for i, it := range req.Items {
		rc, err := s.receipts.Verify(r.Context(), it.Receipt)
		if err != nil {
			if ctxErr := r.Context().Err(); ctxErr != nil {
				return ctxErr
			}
			res.Rejected = append(res.Rejected, registry.FeedbackRejected{Index: i, Reason: "receipt: " + err.Error()})
			continue
		}
		if rc.Endpoint != name {
			res.Rejected = append(res.Rejected, registry.FeedbackRejected{Index: i,
				Reason: fmt.Sprintf("receipt: issued by endpoint %q, not %q; send it to that endpoint's feedback", rc.Endpoint, name)})
			continue
		}
		m, err := registry.ParseFeedbackMetrics(it.Metrics)
		if err != nil {
			res.Rejected = append(res.Rejected, registry.FeedbackRejected{Index: i, Reason: err.Error()})
			continue
		}
		records = append(records, registry.FeedbackRecord{Index: i, Receipt: rc, Metrics: m, Trusted: trusted})
	}
	if len(records) > 0 {
		stored, err := s.store.RecordFeedback(r.Context(), actor(r), name, records)
		if err != nil {
			return err
		}
		res.Accepted = stored.Accepted
		res.Rejected = mergeRejected(res.Rejected, stored.Rejected)
	} else if _, err := s.store.GetEndpoint(r.Context(), name); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// mergeRejected merges two index-sorted refusal lists.
func mergeRejected(a, b []registry.FeedbackRejected) []registry.FeedbackRejected {
	out := make([]registry.FeedbackRejected, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].Index < b[0].Index {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// liveWindow reads ?window= and returns the query's bounds.
func (s *Server) liveWindow(r *http.Request) (q registry.LiveQuery, window string, err error) {
	v := r.URL.Query().Get("window")
	d, err := registry.ParseLiveWindow("window", v)
	if err != nil {
		return q, "", err
	}
	q.From, q.To = registry.LiveWindow(s.now(), d)
	return q, registry.FormatWindow(d), nil
}

func (s *Server) versionLiveMetrics(w http.ResponseWriter, r *http.Request) error {
	model, version, err := s.versionParams(r)
	if err != nil {
		return err
	}
	q, window, err := s.liveWindow(r)
	if err != nil {
		return err
	}
	if _, err := s.store.GetVersion(r.Context(), model, version); err != nil {
		return err
	}
	q.Model, q.Version = model, version
	series, err := s.store.LiveSeries(r.Context(), q)
	if err != nil {
		return err
	}
	all, _ := registry.SummarizeLive(series)
	out := registry.LiveMetrics{Model: model, Version: version, Window: window, From: q.From, To: q.To, Metrics: all}
	if err := s.attachTrusted(r.Context(), q, &out); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) endpointLiveMetrics(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "endpoint")
	if err != nil {
		return err
	}
	q, window, err := s.liveWindow(r)
	if err != nil {
		return err
	}
	ep, err := s.store.GetEndpoint(r.Context(), name)
	if err != nil {
		return err
	}
	q.Endpoint, q.Model = name, ep.Model
	series, err := s.store.LiveSeries(r.Context(), q)
	if err != nil {
		return err
	}
	all, per := registry.SummarizeLive(series)
	if per == nil {
		per = []registry.VersionLiveMetrics{}
	}
	out := registry.LiveMetrics{Model: ep.Model, Endpoint: name, Window: window, From: q.From, To: q.To, Metrics: all, Versions: per}
	if err := s.attachTrusted(r.Context(), q, &out); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// attachTrusted adds the trusted part of q's live metrics to out.
func (s *Server) attachTrusted(ctx context.Context, q registry.LiveQuery, out *registry.LiveMetrics) error {
	q.TrustedOnly = true
	series, err := s.store.LiveSeries(ctx, q)
	if err != nil {
		return err
	}
	out.AttachTrusted(series)
	return nil
}

func (s *Server) compareVersions(w http.ResponseWriter, r *http.Request) error {
	model, err := pathName(r, "model")
	if err != nil {
		return err
	}
	numbers, err := registry.ParseCompareVersions("versions", r.URL.Query().Get("versions"))
	if err != nil {
		return err
	}
	q, window, err := s.liveWindow(r)
	if err != nil {
		return err
	}
	q.Model = model
	vs := make([]registry.ModelVersion, 0, len(numbers))
	history := map[int64][]registry.StageHistoryEntry{}
	for _, n := range numbers {
		v, err := s.store.GetVersion(r.Context(), model, n)
		if err != nil {
			return err
		}
		vs = append(vs, *fixVersion(v))
		if history[n], err = s.store.VersionStageHistory(r.Context(), model, n); err != nil {
			return err
		}
	}
	series, err := s.store.LiveSeries(r.Context(), q)
	if err != nil {
		return err
	}
	_, per := registry.SummarizeLive(series)
	live := map[int64]map[string]registry.LiveMetric{}
	for _, p := range per {
		live[p.Version] = p.Metrics
	}
	return writeJSON(w, http.StatusOK, registry.CompareVersions(model, window, vs, live, history))
}

func (s *Server) rotateReceiptKey(w http.ResponseWriter, r *http.Request) error {
	if s.receipts == nil {
		return registry.Errorf(registry.CodeUnavailable, "this registry signs no receipts")
	}
	k, err := s.receipts.Rotate(r.Context(), actor(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, registry.ReceiptKeyInfo{ID: k.ID, CreatedAt: k.CreatedAt})
}

func (s *Server) listReceiptKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.store.ReceiptKeys(r.Context())
	if err != nil {
		return err
	}
	out := make([]registry.ReceiptKeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, registry.ReceiptKeyInfo{ID: k.ID, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": out})
}
