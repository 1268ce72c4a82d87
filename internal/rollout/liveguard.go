package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// LiveGuardStore is what the live-metric guard needs of the store: the
// endpoints, their versions' trusted feedback, and the guard's rollback
// (parts of registry.EndpointStore and registry.FeedbackStore).
type LiveGuardStore interface {
	ListEndpoints(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Endpoint], error)
	LiveSeries(ctx context.Context, q registry.LiveQuery) ([]registry.LiveSeries, error)
	RecordGuardRollback(ctx context.Context, actor registry.Actor, name string, expectedRevision int64, routes []registry.Route, message string) (*registry.Endpoint, error)
}

var _ LiveGuardStore = registry.Store(nil)

// DefaultLiveGuardEvery is how often the leader judges live-metric guards:
// feedback is summed by the minute, so judging every tick would read the
// same sums over and over.
const DefaultLiveGuardEvery = 5 * time.Second

// liveGuards judges every endpoint's guard.live_metric on the trusted
// feedback of its window (registry.CheckLiveGuard) and records each
// rollback; the leader alone runs it, so one process acts.
func (d *Driver) liveGuards(ctx context.Context) {
	st := d.opts.LiveGuard
	if st == nil {
		return
	}
	now := d.opts.Now()
	if !d.lastLiveGuard.IsZero() && now.Sub(d.lastLiveGuard) < d.opts.LiveGuardEvery && now.After(d.lastLiveGuard) {
		return
	}
	d.lastLiveGuard = now
	opts := registry.ListOptions{PageSize: 1000}
	for {
		page, err := st.ListEndpoints(ctx, opts)
		if err != nil {
			d.logFailure(ctx, "rollout driver: cannot list endpoints for live-metric guards", err)
			return
		}
		for i := range page.Items {
			if ctx.Err() != nil {
				return
			}
			if err := d.liveGuard(ctx, &page.Items[i], now); err != nil && ctx.Err() == nil {
				d.opts.Logger.Warn("live-metric guard", "endpoint", page.Items[i].Name, "err", err)
			}
		}
		if page.NextPageToken == "" {
			return
		}
		opts.PageToken = page.NextPageToken
	}
}

func (d *Driver) liveGuard(ctx context.Context, ep *registry.Endpoint, now time.Time) error {
	if ep.Guard == nil || ep.Guard.LiveMetric == nil {
		return nil
	}
	from, to, err := registry.LiveGuardFrom(ep, now)
	if err != nil {
		return err
	}
	series, err := d.opts.LiveGuard.LiveSeries(ctx, registry.LiveQuery{
		Endpoint: ep.Name, Model: ep.Model, From: from, To: to, TrustedOnly: true,
	})
	if err != nil {
		return fmt.Errorf("live metrics: %w", err)
	}
	live := map[int64]registry.LiveSums{}
	for _, s := range series {
		if s.Metric == ep.Guard.LiveMetric.Metric {
			live[s.Version] = s.LiveSums
		}
	}
	act := registry.CheckLiveGuard(ep, live)
	if act == nil {
		return nil
	}
	if _, err := d.opts.LiveGuard.RecordGuardRollback(ctx, Actor, ep.Name, ep.Revision, act.Routes, act.Message); err != nil {
		if errors.Is(err, registry.ErrPreconditionFailed) || errors.Is(err, registry.ErrNotFound) {
			// Changed or gone since the list: the next round judges
			// what is stored then.
			return nil
		}
		return fmt.Errorf("record rollback: %w", err)
	}
	d.metrics.actions.WithLabelValues(registry.ActionEndpointGuardRollback).Inc()
	d.opts.Logger.Warn("live-metric guard rolled back a route", "endpoint", ep.Name, "message", act.Message)
	if d.opts.OnChange != nil {
		d.opts.OnChange(ep.Name)
	}
	return nil
}

// advances reports whether dec moves the rollout past its step: to the
// next one or to completion.
func advances(dec Decision, st *registry.RolloutStatus) bool {
	switch dec.Action {
	case registry.ActionEndpointRolloutCompleted:
		return true
	case registry.ActionEndpointRolloutStep:
		return dec.Next.Step > st.Step
	}
	return false
}

// liveGate checks the rollout's min_live_metrics on each gaining route
// before a baked step advances (registry.CheckLiveGate): the trusted
// feedback of the route's version on this endpoint since the step began.
// A route below a floor rolls the rollout back; one short of values holds
// the step; otherwise dec stands.
func (d *Driver) liveGate(ctx context.Context, ep registry.Endpoint, dec Decision, now time.Time) (Decision, error) {
	st := *ep.Rollout.RolloutStatus
	step := stepName(st)
	routes := gainingRoutes(st, nil)
	if d.opts.LiveGuard == nil {
		if len(routes) == 0 {
			return dec, nil
		}
		res := gateResult(registry.GateMinLiveMetrics, routes[0], 0, 0, now)
		res.Message = "waiting: the leading process " + d.opts.Holder + " cannot read live metrics"
		return wait(st, step, res, now), nil
	}
	_, to := registry.LiveWindow(now, registry.LiveBucket)
	from := st.StepStarted.UTC().Truncate(registry.LiveBucket)
	for _, g := range routes {
		series, err := d.opts.LiveGuard.LiveSeries(ctx, registry.LiveQuery{
			Endpoint: ep.Name, Model: ep.Model, Version: g.route.Version, From: from, To: to, TrustedOnly: true,
		})
		if err != nil {
			return Decision{}, fmt.Errorf("live metrics: %w", err)
		}
		v := registry.CheckLiveGate(ep.Rollout.RolloutSpec, registry.LiveSumsByMetric(series))
		if !v.Fail && !v.Wait {
			continue
		}
		res := gateResult(registry.GateMinLiveMetrics, g, v.Mean, v.Floor, now)
		res.Message = v.Message
		if v.Fail {
			return rollBack(st, step, res, now), nil
		}
		return wait(st, step, res, now), nil
	}
	return dec, nil
}
