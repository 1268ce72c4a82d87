package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// An endpoint's rollout lives in its row: the configuration (rollout) and
// the latest rollout's status (rollout_status), with its state and seq
// copied into columns for ActiveRollouts and EndpointRevisions. Without a
// configuration there is no status: removing it ends a running rollout
// first (see applyRollout).

func scanRollout(e *registry.Endpoint, spec, status sql.NullString) error {
	if !spec.Valid {
		return nil
	}
	e.Rollout = &registry.EndpointRollout{}
	if err := fromJSON(spec.String, &e.Rollout.RolloutSpec); err != nil {
		return err
	}
	if status.Valid {
		e.Rollout.RolloutStatus = &registry.RolloutStatus{}
		if err := fromJSON(status.String, e.Rollout.RolloutStatus); err != nil {
			return err
		}
	}
	return nil
}

func rolloutColumns(e *registry.Endpoint) (spec, status sql.NullString, err error) {
	if e.Rollout == nil {
		return spec, status, nil
	}
	if spec, err = nullJSON(e.Rollout.RolloutSpec, false); err != nil {
		return spec, status, err
	}
	st := e.Rollout.RolloutStatus
	status, err = nullJSON(st, st == nil)
	return spec, status, err
}

func rolloutStatusOf(e *registry.Endpoint) *registry.RolloutStatus {
	if e == nil || e.Rollout == nil {
		return nil
	}
	return e.Rollout.RolloutStatus
}

func activeRollout(e *registry.Endpoint) *registry.RolloutStatus {
	if st := rolloutStatusOf(e); registry.RolloutActive(st) {
		return st
	}
	return nil
}

func rolloutStateSeq(e *registry.Endpoint) (string, int64) {
	if st := rolloutStatusOf(e); st != nil {
		return st.State, st.Seq
	}
	return "", 0
}

// specOnly is the rollout object of an endpoint configured with spec and
// no rollout yet.
func specOnly(spec *registry.RolloutSpec) *registry.EndpointRollout {
	if spec == nil {
		return nil
	}
	return &registry.EndpointRollout{RolloutSpec: cloneSpec(*spec)}
}

func cloneSpec(s registry.RolloutSpec) registry.RolloutSpec {
	s.Steps = slices.Clone(s.Steps)
	s.Prometheus = slices.Clone(s.Prometheus)
	if s.MaxErrorRate != nil {
		r := *s.MaxErrorRate
		s.MaxErrorRate = &r
	}
	return s
}

// newRolloutID hands out the next rollout id.
func newRolloutID(ctx context.Context, t *txn, endpoint string, now time.Time) (int64, error) {
	var id int64
	if err := t.queryRow(ctx, "INSERT INTO rollouts (endpoint, started_at) VALUES (?, ?) RETURNING id", endpoint, now.UnixMicro()).Scan(&id); err != nil {
		return 0, fmt.Errorf("new rollout id: %w", err)
	}
	return id, nil
}

// rolloutChange is what an endpoint update does to its rollout, decided by
// applyRollout; action is the event it writes besides endpoint.update ("":
// none).
type rolloutChange struct {
	action string
	// ended is the rollout completed because its configuration was
	// removed: the endpoint no longer shows it, its event does.
	ended *registry.RolloutStatus
}

// applyRollout sets after's rollout configuration from the patch and acts
// on what registry.RolloutOnUpdate decides: start a rollout (with a new
// id), complete a running one at once, or carry a change of the routes
// into the weights in force.
func (s *Store) applyRollout(ctx context.Context, t *txn, before *registry.Endpoint, after *registry.Endpoint, p registry.EndpointPatch, now time.Time) (rolloutChange, error) {
	running := activeRollout(before)
	var status *registry.RolloutStatus
	if st := rolloutStatusOf(before); st != nil {
		cp := *st
		status = &cp
	}
	switch {
	case p.ClearRollout:
		after.Rollout = nil
	case p.Rollout != nil:
		after.Rollout = &registry.EndpointRollout{RolloutSpec: cloneSpec(*p.Rollout), RolloutStatus: status}
	case before.Rollout != nil:
		after.Rollout = &registry.EndpointRollout{RolloutSpec: before.Rollout.RolloutSpec, RolloutStatus: status}
	}
	if after.Rollout != nil {
		// The guard may have changed in the same patch: the bake is
		// judged against the guard as it will be stored.
		if err := after.Rollout.Validate("rollout", after.Guard); err != nil {
			return rolloutChange{}, err
		}
	}

	switch registry.RolloutOnUpdate(before, after, p.Routes != nil) {
	case registry.RolloutCompleteNow:
		// Its status goes with the configuration, so the event carries it.
		end := registry.EndRollout(*running, registry.RolloutCompleted,
			fmt.Sprintf("rollout %d completed at once: the rollout configuration was removed, so the configured weights are in force", running.ID), now)
		end.Routes = slices.Clone(after.Routes)
		return rolloutChange{action: registry.ActionEndpointRolloutCompleted, ended: &end}, nil
	case registry.RolloutStart:
		id, err := newRolloutID(ctx, t, after.Name, now)
		if err != nil {
			return rolloutChange{}, err
		}
		var seq int64
		if status != nil {
			seq = status.Seq
		}
		st := registry.StartRollout(after.Rollout.RolloutSpec, before.RoutesInForce(), after.Routes, running, id, seq, now)
		after.Rollout.RolloutStatus = &st
		if _, err := t.exec(ctx, "DELETE FROM rollout_observations WHERE endpoint = ? AND rollout_id <> ?", after.Name, id); err != nil {
			return rolloutChange{}, fmt.Errorf("drop old rollout observations: %w", err)
		}
		return rolloutChange{action: registry.ActionEndpointRolloutStarted}, nil
	case registry.RolloutRefresh:
		st := registry.RefreshRollout(*running, after.Routes)
		after.Rollout.RolloutStatus = &st
	}
	return rolloutChange{}, nil
}

// addRolloutEvent writes the event of what applyRollout did, after the
// endpoint was saved as saved.
func (s *Store) addRolloutEvent(ctx context.Context, t *txn, actor registry.Actor, c rolloutChange, before, saved *registry.Endpoint) error {
	if c.action == "" {
		return nil
	}
	after := *saved
	if c.ended != nil {
		after.Rollout = &registry.EndpointRollout{RolloutStatus: c.ended}
	}
	return s.addEvent(ctx, t, actor, saved.UpdatedAt, event{
		action: c.action, subjectType: "endpoint", subject: saved.Name,
		model: saved.Model, endpoint: saved.Name, before: before, after: after,
	})
}

// rolloutRoutes are the routes of e's row in endpoint_routes: its
// configured routes and, while a rollout is progressing or paused, the
// versions it serves or would roll back to, so none of them can be
// deleted under it and flagging one finds the endpoint.
func rolloutRoutes(e *registry.Endpoint) []registry.Route {
	st := activeRollout(e)
	if st == nil {
		return e.Routes
	}
	out := slices.Clone(e.Routes)
	have := map[int64]bool{}
	for _, r := range e.Routes {
		have[r.Version] = true
	}
	for _, r := range slices.Concat(st.Routes, st.From) {
		if have[r.Version] {
			continue
		}
		have[r.Version] = true
		// Named as the rollout names an old version's share; '@' never
		// appears in a configured route's name, and one row per version
		// keeps the names apart.
		base, _, _ := strings.Cut(r.Name, "@")
		out = append(out, registry.Route{Name: registry.OldShareName(base, r.Version), Version: r.Version})
	}
	return out
}

// ActiveRollouts returns the endpoints whose rollout is progressing or
// paused, by name.
func (s *Store) ActiveRollouts(ctx context.Context) ([]registry.Endpoint, error) {
	var out []registry.Endpoint
	err := s.inTx(ctx, "active rollouts", modeRead, func(t *txn) error {
		rows, err := t.query(ctx, "SELECT "+endpointCols+" FROM endpoints WHERE rollout_state IN (?, ?) ORDER BY name",
			registry.RolloutProgressing, registry.RolloutPaused)
		if err != nil {
			return fmt.Errorf("active rollouts: %w", err)
		}
		defer rows.Close()
		out = []registry.Endpoint{}
		for rows.Next() {
			e, err := scanEndpoint(rows)
			if err != nil {
				return fmt.Errorf("active rollouts: %w", err)
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var recordActions = []string{
	registry.ActionEndpointRolloutStep, registry.ActionEndpointRolloutPaused, registry.ActionEndpointRolloutResumed,
	registry.ActionEndpointRolloutAborted, registry.ActionEndpointRolloutRolledBack, registry.ActionEndpointRolloutCompleted,
}

// RecordRollout stores next as the rollout status of endpoint name, when
// its stored status is still rollout id at seq expectedSeq. The store
// numbers the status: next.Seq becomes expectedSeq+1. Ending in
// rolled_back or aborted writes next.From back as the routes, with a new
// revision and status rolled_back.
func (s *Store) RecordRollout(ctx context.Context, actor registry.Actor, name string, id, expectedSeq int64, next registry.RolloutStatus, action string) (*registry.Endpoint, error) {
	if !slices.Contains(recordActions, action) {
		return nil, registry.FieldError("action", "enum", "%q is not a rollout event action", action)
	}
	if next.ID != id {
		return nil, registry.FieldError("id", "mismatch", "status of rollout %d recorded as rollout %d", next.ID, id)
	}
	switch next.State {
	case registry.RolloutProgressing, registry.RolloutPaused, registry.RolloutCompleted, registry.RolloutRolledBack, registry.RolloutAborted:
	default:
		return nil, registry.FieldError("state", "enum", "%q is not a rollout state", next.State)
	}
	if next.Step < 1 || next.Step > len(next.StepPercents) {
		return nil, registry.FieldError("step", "range", "%d is not a step of %v", next.Step, next.StepPercents)
	}
	if registry.RolloutActive(&next) && !registry.WholeSplit(next.Routes) {
		return nil, registry.FieldError("routes", "weights_sum", "weights in force must sum to 100")
	}
	if len(next.Message) > registry.MaxReasonLen {
		next.Message = next.Message[:registry.MaxReasonLen]
	}
	var out *registry.Endpoint
	err := s.inTx(ctx, "record rollout", modeWrite, func(t *txn) error {
		before, m, err := s.lockEndpoint(ctx, t, name)
		if err != nil {
			return err
		}
		cur := rolloutStatusOf(before)
		if cur == nil || cur.ID != id || cur.Seq != expectedSeq {
			have := "no rollout"
			if cur != nil {
				have = fmt.Sprintf("rollout %d at seq %d", cur.ID, cur.Seq)
			}
			return registry.Errorf(registry.CodePreconditionFailed,
				"endpoint %q has %s, not rollout %d at seq %d; it changed meanwhile", name, have, id, expectedSeq)
		}
		next.Seq = expectedSeq + 1
		out, err = s.saveRollout(ctx, t, actor, m, before, next, action)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// saveRollout writes next as before's rollout status with one event of
// action. A rollout ending without completing puts its From back as the
// routes (a new revision); otherwise only what is in force changes, and
// the revision stays.
func (s *Store) saveRollout(ctx context.Context, t *txn, actor registry.Actor, m *registry.Model, before *registry.Endpoint, next registry.RolloutStatus, action string) (*registry.Endpoint, error) {
	after := *before
	after.Rollout = &registry.EndpointRollout{RolloutSpec: before.Rollout.RolloutSpec, RolloutStatus: &next}
	if next.State == registry.RolloutRolledBack || next.State == registry.RolloutAborted {
		next.Routes = slices.Clone(next.From)
		// Rolling back only moves weight between versions this endpoint
		// served; a version flagged meanwhile keeps its weight here and
		// the flag's drain takes it.
		if err := s.checkRoutes(ctx, t, m, "", next.From, true); err != nil {
			return nil, err
		}
		after.Routes = slices.Clone(next.From)
		after.Status = registry.EndpointStatusRolledBack
		after.StatusMessage = next.Message
		return s.saveEndpoint(ctx, t, actor, before, after, action, true)
	}
	now := s.clock()
	spec, status, err := rolloutColumns(&after)
	if err != nil {
		return nil, err
	}
	if _, err := t.exec(ctx, "UPDATE endpoints SET rollout = ?, rollout_status = ?, rollout_state = ?, rollout_seq = ? WHERE name = ?",
		spec, status, next.State, next.Seq, after.Name); err != nil {
		return nil, fmt.Errorf("update rollout: %w", err)
	}
	if err := writeRoutes(ctx, t, &after); err != nil {
		return nil, err
	}
	if err := s.addEvent(ctx, t, actor, now, event{
		action: action, subjectType: "endpoint", subject: after.Name,
		model: after.Model, endpoint: after.Name, before: before, after: after,
	}); err != nil {
		return nil, err
	}
	return &after, nil
}

// ControlRollout pauses, resumes or aborts endpoint name's rollout.
func (s *Store) ControlRollout(ctx context.Context, actor registry.Actor, name, op, reason string) (*registry.Endpoint, error) {
	if op != registry.RolloutOpPause && op != registry.RolloutOpResume && op != registry.RolloutOpAbort {
		return nil, registry.FieldError("op", "enum", "%q must be one of pause, resume, abort", op)
	}
	if len(reason) > registry.MaxReasonLen {
		return nil, registry.FieldError("reason", "max_length", "must be at most %d bytes", registry.MaxReasonLen)
	}
	var out *registry.Endpoint
	err := s.inTx(ctx, "control rollout", modeWrite, func(t *txn) error {
		before, m, err := s.lockEndpoint(ctx, t, name)
		if err != nil {
			return err
		}
		cur := rolloutStatusOf(before)
		if cur == nil {
			return registry.Errorf(registry.CodeConflict, "endpoint %q has no rollout to %s", name, op)
		}
		allowed := map[string][]string{
			registry.RolloutOpPause:  {registry.RolloutProgressing},
			registry.RolloutOpResume: {registry.RolloutPaused},
			registry.RolloutOpAbort:  {registry.RolloutProgressing, registry.RolloutPaused},
		}[op]
		if !slices.Contains(allowed, cur.State) {
			return registry.Errorf(registry.CodeConflict, "rollout %d of endpoint %q is %s; only a %s rollout can be %s",
				cur.ID, name, cur.State, orList(allowed), pastTense(op))
		}
		now := s.clock()
		by := "by " + actor.Name
		if reason != "" {
			by += ": " + reason
		}
		next := *cur
		next.Seq++
		var action string
		switch op {
		case registry.RolloutOpPause:
			next.State = registry.RolloutPaused
			next.NextStepAt = nil
			next.Message = fmt.Sprintf("rollout %d paused at step %d (%d%%) %s", cur.ID, cur.Step, cur.StepPercents[cur.Step-1], by)
			action = registry.ActionEndpointRolloutPaused
		case registry.RolloutOpResume:
			due := now.Add(registry.RolloutBake(before.Rollout.RolloutSpec))
			next.State = registry.RolloutProgressing
			next.StepStarted = now
			next.NextStepAt = &due
			next.Message = fmt.Sprintf("rollout %d resumed at step %d (%d%%) %s; the step bakes again", cur.ID, cur.Step, cur.StepPercents[cur.Step-1], by)
			action = registry.ActionEndpointRolloutResumed
		case registry.RolloutOpAbort:
			next = registry.EndRollout(*cur, registry.RolloutAborted, "aborted "+by, now)
			action = registry.ActionEndpointRolloutAborted
		}
		out, err = s.saveRollout(ctx, t, actor, m, before, next, action)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func orList(states []string) string {
	if len(states) == 1 {
		return states[0]
	}
	return states[0] + " or " + states[1]
}

func pastTense(op string) string {
	switch op {
	case registry.RolloutOpPause:
		return "paused"
	case registry.RolloutOpResume:
		return "resumed"
	}
	return "aborted"
}

// endRolloutFor ends before's running rollout in state with message
// (guard rollback, flag drain) and returns the endpoint as saved, with
// From in force again.
func (s *Store) endRolloutFor(ctx context.Context, t *txn, actor registry.Actor, m *registry.Model, before *registry.Endpoint, state, message, action string) (*registry.Endpoint, error) {
	running := activeRollout(before)
	next := registry.EndRollout(*running, state, message, s.clock())
	return s.saveRollout(ctx, t, actor, m, before, next, action)
}

// RecordRolloutObservations upserts process's cumulative observations.
func (s *Store) RecordRolloutObservations(ctx context.Context, process string, obs []registry.RolloutObservation) error {
	if process == "" {
		return registry.FieldError("process", "required", "is required")
	}
	for i, o := range obs {
		f := fmt.Sprintf("observations[%d]", i)
		if o.Endpoint == "" || o.Route == "" || o.RolloutID <= 0 || o.Step < 1 {
			return registry.FieldError(f, "required", "needs endpoint, route, rollout_id and step")
		}
		if o.Requests < 0 || o.Errors < 0 || o.Errors > o.Requests {
			return registry.FieldError(f, "range", "requests and errors must be >= 0, errors at most requests")
		}
		if len(o.Latency) > registry.LatencyBins {
			return registry.FieldError(f+".latency", "max_items", "must have at most %d bins", registry.LatencyBins)
		}
	}
	if len(obs) == 0 {
		return nil
	}
	return s.inTx(ctx, "record rollout observations", modeWrite, func(t *txn) error {
		now := s.clock().UnixMicro()
		for _, o := range obs {
			lat, err := toJSON(o.Latency)
			if err != nil {
				return err
			}
			if _, err := t.exec(ctx, `INSERT INTO rollout_observations
				(endpoint, rollout_id, step, route, process, version, requests, errors, latency, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (endpoint, rollout_id, step, route, process) DO UPDATE SET
				version = excluded.version, requests = excluded.requests, errors = excluded.errors,
				latency = excluded.latency, updated_at = excluded.updated_at`,
				o.Endpoint, o.RolloutID, o.Step, o.Route, process, o.Version, o.Requests, o.Errors, lat, now); err != nil {
				return fmt.Errorf("record rollout observation: %w", err)
			}
		}
		return nil
	})
}

// RolloutObservations sums every process's observations of one step, one
// entry per route, by route name.
func (s *Store) RolloutObservations(ctx context.Context, endpoint string, id int64, step int) ([]registry.RolloutObservation, error) {
	var out []registry.RolloutObservation
	err := s.inTx(ctx, "rollout observations", modeRead, func(t *txn) error {
		rows, err := t.query(ctx, `SELECT route, version, requests, errors, latency FROM rollout_observations
			WHERE endpoint = ? AND rollout_id = ? AND step = ? ORDER BY route, process`, endpoint, id, step)
		if err != nil {
			return fmt.Errorf("rollout observations: %w", err)
		}
		defer rows.Close()
		out = []registry.RolloutObservation{}
		for rows.Next() {
			var (
				o   registry.RolloutObservation
				lat string
			)
			if err := rows.Scan(&o.Route, &o.Version, &o.Requests, &o.Errors, &lat); err != nil {
				return fmt.Errorf("rollout observations: %w", err)
			}
			if err := fromJSON(lat, &o.Latency); err != nil {
				return err
			}
			if n := len(out); n > 0 && out[n-1].Route == o.Route {
				sum := &out[n-1]
				sum.Requests += o.Requests
				sum.Errors += o.Errors
				for i, c := range o.Latency {
					sum.Latency[i] += c
				}
				continue
			}
			o.Endpoint, o.RolloutID, o.Step = endpoint, id, step
			bins := make([]int64, registry.LatencyBins)
			copy(bins, o.Latency)
			o.Latency = bins
			out = append(out, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AcquireLease takes or renews the lease name for holder until now+ttl.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" {
		return false, registry.FieldError("lease", "required", "needs a name and a holder")
	}
	if ttl <= 0 {
		return false, registry.FieldError("ttl", "positive", "must be greater than zero")
	}
	var held bool
	err := s.inTx(ctx, "acquire lease", modeWrite, func(t *txn) error {
		if _, err := t.exec(ctx, "INSERT INTO leases (name, holder, expires_at) VALUES (?, '', 0) ON CONFLICT (name) DO NOTHING", name); err != nil {
			return fmt.Errorf("acquire lease: %w", err)
		}
		res, err := t.exec(ctx, "UPDATE leases SET holder = ?, expires_at = ? WHERE name = ? AND (holder = ? OR expires_at <= ?)",
			holder, now.Add(ttl).UnixMicro(), name, holder, now.UnixMicro())
		if err != nil {
			return fmt.Errorf("acquire lease: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("acquire lease: %w", err)
		}
		held = n == 1
		return nil
	})
	return held, err
}

// ReleaseLease frees the lease name if holder holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.inTx(ctx, "release lease", modeWrite, func(t *txn) error {
		if _, err := t.exec(ctx, "UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?", name, holder); err != nil {
			return fmt.Errorf("release lease: %w", err)
		}
		return nil
	})
}
