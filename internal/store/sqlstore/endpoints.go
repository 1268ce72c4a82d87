package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const endpointCols = "name, model, stage, routes, sticky_header, guard, status, status_message, created_at, updated_at, revision, timeout, rollout, rollout_status"

func scanEndpoint(sc scanner) (registry.Endpoint, error) {
	var (
		e                registry.Endpoint
		routes           string
		guard            sql.NullString
		rollout, status  sql.NullString
		created, updated int64
	)
	if err := sc.Scan(&e.Name, &e.Model, &e.Stage, &routes, &e.StickyHeader, &guard, &e.Status, &e.StatusMessage, &created, &updated, &e.Revision, &e.Timeout, &rollout, &status); err != nil {
		return e, err
	}
	if err := scanRollout(&e, rollout, status); err != nil {
		return e, err
	}
	e.Routes = []registry.Route{}
	if err := fromJSON(routes, &e.Routes); err != nil {
		return e, err
	}
	if e.Routes == nil {
		e.Routes = []registry.Route{}
	}
	if guard.Valid {
		e.Guard = &registry.Guard{}
		if err := fromJSON(guard.String, e.Guard); err != nil {
			return e, err
		}
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	return e, nil
}

func endpointNotFound(name string) error {
	return registry.Errorf(registry.CodeNotFound, "endpoint %q not found", name)
}

func loadEndpoint(ctx context.Context, t *txn, name string, lock bool) (*registry.Endpoint, error) {
	q := "SELECT " + endpointCols + " FROM endpoints WHERE name = ?"
	if lock {
		q += t.forUpdate()
	}
	e, err := scanEndpoint(t.queryRow(ctx, q, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, endpointNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("load endpoint: %w", err)
	}
	return &e, nil
}

// checkRoutes checks that every route's version exists in model m and,
// when allowFlagged is false, is not flagged unless the route's weight is
// 0 and it has no header match (such a route gets no traffic and is not
// judged further). When stage is set (the stage
// the endpoint serves), every route's version must hold that stage or
// satisfy its stage policy, judged like an assignment: otherwise an
// endpoint could send production traffic to a version that never passed
// the production policy.
func (s *Store) checkRoutes(ctx context.Context, t *txn, m *registry.Model, stage string, routes []registry.Route, allowFlagged bool) error {
	var cur *stageRow
	if stage != "" {
		var err error
		if cur, err = loadStage(ctx, t, m.Name, stage, false); err != nil {
			return err
		}
	}
	for i, r := range routes {
		field := fmt.Sprintf("routes[%d].version", i)
		v, err := loadVersion(ctx, t, m.Name, r.Version)
		if err != nil {
			return fmt.Errorf("check route version: %w", err)
		}
		if v == nil {
			return registry.FieldError(field, "exists", "version %d of model %q not found", r.Version, m.Name)
		}
		if v.Flagged && r.Weight == 0 && r.Match == nil && !r.Shadow {
			// Kept at weight 0 (as a flag drain leaves it): it gets no
			// traffic, so neither the flag nor the stage policy applies.
			// A shadow gets copies of real requests, so it is judged.
			continue
		}
		if v.Flagged && !allowFlagged {
			reason := ""
			if v.FlagReason != "" {
				reason = " (" + v.FlagReason + ")"
			}
			pe := registry.PolicyError("flagged", "%s: version %d of %q is flagged%s and cannot receive traffic (route %q)", field, r.Version, m.Name, reason, r.Name)
			pe.Field = field
			return pe
		}
		if stage == "" || (cur != nil && cur.assigned() && cur.Version == v.Version) {
			continue
		}
		check, err := s.stageCheck(ctx, t, m, stage, cur, v)
		if err != nil {
			return err
		}
		if err := registry.CheckAssignment(check); err != nil {
			var re *registry.Error
			if errors.As(err, &re) && re.Code == registry.CodePolicyViolation {
				out := *re
				out.Field = field
				out.Message = fmt.Sprintf("%s: endpoint serves stage %q, and version %d (route %q) neither holds it nor satisfies its policy: %s", field, stage, v.Version, r.Name, re.Message)
				return &out
			}
			return err
		}
	}
	return nil
}

// writeRoutes replaces the endpoint's rows in endpoint_routes, which let
// the database refuse to delete a version that receives traffic.
func writeRoutes(ctx context.Context, t *txn, e *registry.Endpoint) error {
	if _, err := t.exec(ctx, "DELETE FROM endpoint_routes WHERE endpoint = ?", e.Name); err != nil {
		return fmt.Errorf("replace endpoint routes: %w", err)
	}
	for _, r := range rolloutRoutes(e) {
		if _, err := t.exec(ctx, "INSERT INTO endpoint_routes (endpoint, route, model, version) VALUES (?, ?, ?, ?)",
			e.Name, r.Name, e.Model, r.Version); err != nil {
			return fmt.Errorf("insert endpoint route: %w", err)
		}
	}
	return nil
}

func endpointColumns(e *registry.Endpoint) (routes string, guard sql.NullString, err error) {
	if routes, err = toJSON(e.Routes); err != nil {
		return "", guard, err
	}
	guard, err = nullJSON(e.Guard, e.Guard == nil)
	return routes, guard, err
}

// CreateEndpoint stores a new endpoint, healthy, at revision 1. URL is left
// for the server to fill.
func (s *Store) CreateEndpoint(ctx context.Context, actor registry.Actor, ec registry.EndpointCreate) (*registry.Endpoint, error) {
	return s.createEndpoint(ctx, actor, ec, modeWrite)
}

// CheckEndpointCreate runs every check of CreateEndpoint under the same
// locks and writes nothing.
func (s *Store) CheckEndpointCreate(ctx context.Context, actor registry.Actor, ec registry.EndpointCreate) (*registry.Endpoint, error) {
	return s.createEndpoint(ctx, actor, ec, modeDryRun)
}

func (s *Store) createEndpoint(ctx context.Context, actor registry.Actor, ec registry.EndpointCreate, mode txMode) (*registry.Endpoint, error) {
	if err := ec.Validate(); err != nil {
		return nil, err
	}
	var out *registry.Endpoint
	err := s.inTx(ctx, "create endpoint", mode, func(t *txn) error {
		m, err := loadModel(ctx, t, ec.Model, true)
		if err != nil {
			if registry.ErrorCode(err) == registry.CodeNotFound {
				return registry.FieldError("model", "exists", "model %q not found", ec.Model)
			}
			return err
		}
		var n int
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM endpoints WHERE name = ?", ec.Name).Scan(&n); err != nil {
			return fmt.Errorf("check endpoint: %w", err)
		}
		if n > 0 {
			return registry.Errorf(registry.CodeAlreadyExists, "endpoint %q already exists", ec.Name)
		}
		if err := s.checkRoutes(ctx, t, m, ec.Stage, ec.Routes, false); err != nil {
			return err
		}
		now := s.clock()
		e := registry.Endpoint{
			Name:         ec.Name,
			Model:        ec.Model,
			Stage:        ec.Stage,
			Routes:       append([]registry.Route{}, ec.Routes...),
			StickyHeader: ec.StickyHeader,
			Guard:        ec.Guard,
			Timeout:      ec.Timeout,
			Rollout:      specOnly(ec.Rollout),
			Status:       registry.EndpointStatusHealthy,
			CreatedAt:    now,
			UpdatedAt:    now,
			Revision:     1,
		}
		routes, guard, err := endpointColumns(&e)
		if err != nil {
			return err
		}
		rollout, status, err := rolloutColumns(&e)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, "INSERT INTO endpoints ("+endpointCols+", rollout_state, rollout_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 0)",
			e.Name, e.Model, e.Stage, routes, e.StickyHeader, guard, e.Status, e.StatusMessage, now.UnixMicro(), now.UnixMicro(), e.Revision, e.Timeout, rollout, status); err != nil {
			return fmt.Errorf("insert endpoint: %w", err)
		}
		if err := writeRoutes(ctx, t, &e); err != nil {
			return err
		}
		out = &e
		if err := s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionEndpointCreate, subjectType: "endpoint", subject: e.Name,
			model: e.Model, endpoint: e.Name, after: e,
		}); err != nil {
			return err
		}
		if mode != modeWrite {
			return nil // a dry run completes no idempotency claim
		}
		return completeWrite(ctx, t, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetEndpoint reads an endpoint.
func (s *Store) GetEndpoint(ctx context.Context, name string) (*registry.Endpoint, error) {
	var out *registry.Endpoint
	err := s.inTx(ctx, "get endpoint", modeRead, func(t *txn) error {
		var err error
		out, err = loadEndpoint(ctx, t, name, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListEndpoints lists endpoints by name.
func (s *Store) ListEndpoints(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Endpoint], error) {
	size, err := pageSize(opts)
	if err != nil {
		return nil, err
	}
	const list = "endpoints"
	cur, err := decodeCursor(opts.PageToken, list)
	if err != nil {
		return nil, err
	}
	var page *registry.Page[registry.Endpoint]
	err = s.inTx(ctx, "list endpoints", modeRead, func(t *txn) error {
		q, args := "SELECT "+endpointCols+" FROM endpoints", []any{}
		if cur != nil {
			q += " WHERE name > ?"
			args = append(args, cur.Name)
		}
		q += " ORDER BY name LIMIT ?"
		args = append(args, size+1)
		rows, err := t.query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list endpoints: %w", err)
		}
		page, err = collect(rows, size, scanEndpoint, func(e registry.Endpoint) cursor {
			return cursor{List: list, Name: e.Name}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// UpdateEndpoint applies a patch. Setting routes checks them like create
// does and resets the status to healthy. A patch that changes nothing
// returns the endpoint as it is.
func (s *Store) UpdateEndpoint(ctx context.Context, actor registry.Actor, name string, p registry.EndpointPatch, pre registry.Precondition) (*registry.Endpoint, error) {
	return s.updateEndpoint(ctx, actor, name, p, pre, modeWrite)
}

// CheckEndpointUpdate runs every check of UpdateEndpoint under the same
// locks and writes nothing.
func (s *Store) CheckEndpointUpdate(ctx context.Context, actor registry.Actor, name string, p registry.EndpointPatch, pre registry.Precondition) (*registry.Endpoint, error) {
	return s.updateEndpoint(ctx, actor, name, p, pre, modeDryRun)
}

func (s *Store) updateEndpoint(ctx context.Context, actor registry.Actor, name string, p registry.EndpointPatch, pre registry.Precondition, mode txMode) (*registry.Endpoint, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var out *registry.Endpoint
	err := s.inTx(ctx, "update endpoint", mode, completing(ctx, mode, func() any { return out }, func(t *txn) error {
		before, m, err := s.lockEndpoint(ctx, t, name)
		if err != nil {
			return err
		}
		if err := checkRevision(pre, before.Revision, fmt.Sprintf("endpoint %q", name)); err != nil {
			return err
		}
		after := *before
		if p.Stage != nil {
			after.Stage = *p.Stage
		}
		if p.Routes != nil {
			after.Routes = append([]registry.Route{}, (*p.Routes)...)
			after.Status = registry.EndpointStatusHealthy
			after.StatusMessage = ""
		}
		if p.Routes != nil || (p.Stage != nil && *p.Stage != before.Stage) {
			if err := s.checkRoutes(ctx, t, m, after.Stage, after.Routes, false); err != nil {
				return err
			}
		}
		if p.StickyHeader != nil {
			after.StickyHeader = *p.StickyHeader
		}
		if p.Timeout != nil {
			after.Timeout = *p.Timeout
		}
		if p.Guard != nil {
			g := *p.Guard
			after.Guard = &g
		}
		if p.ClearGuard {
			after.Guard = nil
		}
		change, err := s.applyRollout(ctx, t, before, &after, p, s.clock())
		if err != nil {
			return err
		}
		if sameJSON(before, &after) {
			out = before
			return nil
		}
		out, err = s.saveEndpoint(ctx, t, actor, before, after, registry.ActionEndpointUpdate, p.Routes != nil)
		if err != nil {
			return err
		}
		return s.addRolloutEvent(ctx, t, actor, change, before, out)
	}))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lockEndpoint locks the endpoint's model (the order every write under a
// model locks in) and then the endpoint, and reads both.
func (s *Store) lockEndpoint(ctx context.Context, t *txn, name string) (*registry.Endpoint, *registry.Model, error) {
	e, err := loadEndpoint(ctx, t, name, false)
	if err != nil {
		return nil, nil, err
	}
	m, err := loadModel(ctx, t, e.Model, true)
	if err != nil {
		return nil, nil, err
	}
	e, err = loadEndpoint(ctx, t, name, true)
	return e, m, err
}

// saveEndpoint writes after over before with a new revision and its event.
func (s *Store) saveEndpoint(ctx context.Context, t *txn, actor registry.Actor, before *registry.Endpoint, after registry.Endpoint, action string, routesChanged bool) (*registry.Endpoint, error) {
	now := s.clock()
	after.UpdatedAt = now
	after.Revision = before.Revision + 1
	routes, guard, err := endpointColumns(&after)
	if err != nil {
		return nil, err
	}
	rollout, status, err := rolloutColumns(&after)
	if err != nil {
		return nil, err
	}
	state, seq := rolloutStateSeq(&after)
	if _, err := t.exec(ctx, `UPDATE endpoints SET stage = ?, routes = ?, sticky_header = ?, guard = ?, status = ?, status_message = ?,
		updated_at = ?, revision = ?, timeout = ?, rollout = ?, rollout_status = ?, rollout_state = ?, rollout_seq = ? WHERE name = ?`,
		after.Stage, routes, after.StickyHeader, guard, after.Status, after.StatusMessage, now.UnixMicro(), after.Revision, after.Timeout,
		rollout, status, state, seq, after.Name); err != nil {
		return nil, fmt.Errorf("update endpoint: %w", err)
	}
	if routesChanged || rolloutStatusOf(before) != nil || rolloutStatusOf(&after) != nil {
		if err := writeRoutes(ctx, t, &after); err != nil {
			return nil, err
		}
	}
	if err := s.addEvent(ctx, t, actor, now, event{
		action: action, subjectType: "endpoint", subject: after.Name,
		model: after.Model, endpoint: after.Name, before: before, after: after,
	}); err != nil {
		return nil, err
	}
	return &after, nil
}

// DeleteEndpoint deletes an endpoint.
func (s *Store) DeleteEndpoint(ctx context.Context, actor registry.Actor, name string, pre registry.Precondition) error {
	return s.inTx(ctx, "delete endpoint", modeWrite, completing(ctx, modeWrite, nil, func(t *txn) error {
		e, _, err := s.lockEndpoint(ctx, t, name)
		if err != nil {
			return err
		}
		if err := checkRevision(pre, e.Revision, fmt.Sprintf("endpoint %q", name)); err != nil {
			return err
		}
		if _, err := t.exec(ctx, "DELETE FROM endpoints WHERE name = ?", name); err != nil { // routes cascade
			return fmt.Errorf("delete endpoint: %w", err)
		}
		if _, err := t.exec(ctx, "DELETE FROM rollout_observations WHERE endpoint = ?", name); err != nil {
			return fmt.Errorf("delete rollout observations: %w", err)
		}
		return s.addEvent(ctx, t, actor, s.clock(), event{
			action: registry.ActionEndpointDelete, subjectType: "endpoint", subject: name,
			model: e.Model, endpoint: name, before: e,
		})
	}))
}

// RecordGuardRollback stores the routes the gateway's guard left, marks
// the endpoint rolled_back and writes the event, unless the endpoint
// changed since the gateway read it at expectedRevision. The routes' versions
// must exist; a flagged one is accepted, the guard only moves weight.
//
// While a rollout is progressing or paused the guard judged the weights
// in force: the rollout ends rolled_back with the guard's message and the
// weights in force before it started are put back (not routes), with the
// endpoint.guard_rollback and endpoint.rollout_rolled_back events.
func (s *Store) RecordGuardRollback(ctx context.Context, actor registry.Actor, name string, expectedRevision int64, routes []registry.Route, message string) (*registry.Endpoint, error) {
	if len(message) > registry.MaxReasonLen {
		return nil, registry.FieldError("message", "max_length", "must be at most %d bytes", registry.MaxReasonLen)
	}
	var out *registry.Endpoint
	err := s.inTx(ctx, "record guard rollback", modeWrite, func(t *txn) error {
		before, m, err := s.lockEndpoint(ctx, t, name)
		if err != nil {
			return err
		}
		if before.Revision != expectedRevision {
			return registry.Errorf(registry.CodePreconditionFailed,
				"endpoint %q is at revision %d, not the expected revision %d; it changed while the guard acted", name, before.Revision, expectedRevision)
		}
		if activeRollout(before) != nil {
			ended, err := s.endRolloutFor(ctx, t, actor, m, before, registry.RolloutRolledBack, message, registry.ActionEndpointRolloutRolledBack)
			if err != nil {
				return err
			}
			out = ended
			return s.addEvent(ctx, t, actor, ended.UpdatedAt, event{
				action: registry.ActionEndpointGuardRollback, subjectType: "endpoint", subject: name,
				model: ended.Model, endpoint: name, before: before, after: ended,
			})
		}
		if err := registry.ValidateRoutes("routes", routes); err != nil {
			return err
		}
		// The guard only moves weight between routes already checked.
		if err := s.checkRoutes(ctx, t, m, "", routes, true); err != nil {
			return err
		}
		after := *before
		after.Routes = append([]registry.Route{}, routes...)
		after.Status = registry.EndpointStatusRolledBack
		after.StatusMessage = message
		out, err = s.saveEndpoint(ctx, t, actor, before, after, registry.ActionEndpointGuardRollback, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RecordGuardDegraded marks the endpoint degraded (every route failed the
// guard, which moved nothing) and writes the event, unless the endpoint
// changed since the gateway read it at expectedRevision.
func (s *Store) RecordGuardDegraded(ctx context.Context, actor registry.Actor, name string, expectedRevision int64, message string) (*registry.Endpoint, error) {
	if len(message) > registry.MaxReasonLen {
		return nil, registry.FieldError("message", "max_length", "must be at most %d bytes", registry.MaxReasonLen)
	}
	var out *registry.Endpoint
	err := s.inTx(ctx, "record guard degraded", modeWrite, func(t *txn) error {
		before, _, err := s.lockEndpoint(ctx, t, name)
		if err != nil {
			return err
		}
		if before.Revision != expectedRevision {
			return registry.Errorf(registry.CodePreconditionFailed,
				"endpoint %q is at revision %d, not the expected revision %d; it changed while the guard acted", name, before.Revision, expectedRevision)
		}
		after := *before
		after.Status = registry.EndpointStatusDegraded
		after.StatusMessage = message
		out, err = s.saveEndpoint(ctx, t, actor, before, after, registry.ActionEndpointGuardDegraded, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// VersionEndpoints names the endpoints with a route to the version,
// whatever its weight, sorted.
func (s *Store) VersionEndpoints(ctx context.Context, model string, version int64) ([]string, error) {
	var out []string
	err := s.inTx(ctx, "version endpoints", modeRead, func(t *txn) error {
		var err error
		out, err = versionEndpoints(ctx, t, model, version)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func versionEndpoints(ctx context.Context, t *txn, model string, version int64) ([]string, error) {
	rows, err := t.query(ctx, "SELECT DISTINCT endpoint FROM endpoint_routes WHERE model = ? AND version = ? ORDER BY endpoint", model, version)
	if err != nil {
		return nil, fmt.Errorf("list version endpoints: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list version endpoints: %w", err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list version endpoints: %w", err)
	}
	return out, nil
}

// drainFlagged takes all traffic off the flagged version v, inside the
// flag's transaction (the model is locked): registry.DrainFlagged decides
// where each endpoint's weight goes, from the model's flagged versions and
// the idle routes that may not serve the endpoint's stage, read here. Each
// endpoint changed is marked drained, with a new revision (so gateways
// reload it) and an endpoint.flag_drain event by the flagging actor.
func (s *Store) drainFlagged(ctx context.Context, t *txn, actor registry.Actor, v *registry.ModelVersion) error {
	names, err := versionEndpoints(ctx, t, v.Model, v.Version)
	if err != nil || len(names) == 0 {
		return err
	}
	m, err := loadModel(ctx, t, v.Model, false)
	if err != nil {
		return err
	}
	flagged := map[int64]bool{}
	rows, err := t.query(ctx, "SELECT version FROM model_versions WHERE model = ? AND flagged = ?", v.Model, true)
	if err != nil {
		return fmt.Errorf("load flagged versions: %w", err)
	}
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("load flagged versions: %w", err)
		}
		flagged[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load flagged versions: %w", err)
	}
	for _, name := range names {
		before, err := loadEndpoint(ctx, t, name, true)
		if err != nil {
			return err
		}
		if st := activeRollout(before); st != nil && rolloutServes(before, st, v.Version) {
			// The rollout's weights are no longer a plan anyone reviewed
			// with this version flagged: it ends, and the drain judges
			// the weights in force before it.
			msg := fmt.Sprintf("rollout %d aborted: version %d flagged", st.ID, v.Version)
			if v.FlagReason != "" {
				msg += " (" + v.FlagReason + ")"
			}
			if before, err = s.endRolloutFor(ctx, t, actor, m, before, registry.RolloutAborted, msg, registry.ActionEndpointRolloutAborted); err != nil {
				return err
			}
		}
		var blocked map[int64]bool
		if before.Stage != "" {
			if blocked, err = s.idleBlocked(ctx, t, m, before, flagged, v.Version); err != nil {
				return err
			}
		}
		res := registry.DrainFlagged(registry.FlagDrain{
			Routes: before.Routes, Version: v.Version, FlagReason: v.FlagReason, Flagged: flagged, IdleBlocked: blocked,
		})
		if !res.Changed {
			continue
		}
		after := *before
		after.Routes = res.Routes
		after.Status = registry.EndpointStatusDrained
		after.StatusMessage = res.Message
		if _, err := s.saveEndpoint(ctx, t, actor, before, after, registry.ActionEndpointFlagDrain, true); err != nil {
			return err
		}
	}
	return nil
}

// idleBlocked names the versions of e's idle routes (weight 0, not
// flagged) that may not take the traffic of e's stage: they neither hold
// it nor satisfy its policy.
func (s *Store) idleBlocked(ctx context.Context, t *txn, m *registry.Model, e *registry.Endpoint, flagged map[int64]bool, version int64) (map[int64]bool, error) {
	blocked := map[int64]bool{}
	for _, r := range e.Routes {
		if r.Weight > 0 || r.Version == version || flagged[r.Version] || blocked[r.Version] {
			continue
		}
		err := s.checkRoutes(ctx, t, m, e.Stage, []registry.Route{r}, false)
		switch registry.ErrorCode(err) {
		case "":
		case registry.CodePolicyViolation, registry.CodeInvalidArgument:
			blocked[r.Version] = true
		default:
			return nil, err
		}
	}
	return blocked, nil
}

// rolloutServes reports whether rollout st of e sends version traffic:
// a route in force or configured to it with weight or a header match, or
// a shadow route (it gets copies of real requests).
func rolloutServes(e *registry.Endpoint, st *registry.RolloutStatus, version int64) bool {
	for _, r := range slices.Concat(st.Routes, e.Routes) {
		if r.Version == version && (r.Shadow || r.Weight > 0 || r.Match != nil) {
			return true
		}
	}
	return false
}
