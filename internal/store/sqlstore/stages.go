package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// stageRow is a stage_assignments row. Version is 0 while the stage is
// unassigned; the row stays so the stage's revision keeps counting, and
// PreviousVersion with lastSignature remember the last version it held.
type stageRow struct {
	registry.StageAssignment
	// lastSignature is the JSON signature of PreviousVersion while the
	// stage is unassigned; invalid when unknown.
	lastSignature sql.NullString
}

func (r *stageRow) assigned() bool { return r.Version != 0 }

const stageCols = "model, stage, version, previous_version, assigned_at, assigned_by, reason, revision, last_signature"

func scanStage(sc scanner) (stageRow, error) {
	var (
		r       stageRow
		version sql.NullInt64
		at      int64
	)
	if err := sc.Scan(&r.Model, &r.Stage, &version, &r.PreviousVersion, &at, &r.AssignedBy, &r.Reason, &r.Revision, &r.lastSignature); err != nil {
		return r, err
	}
	r.Version = version.Int64
	r.AssignedAt = fromMicros(at)
	return r, nil
}

// loadStage reads a stage's row, assigned or not; nil when the stage was
// never assigned.
func loadStage(ctx context.Context, t *txn, model, stage string, lock bool) (*stageRow, error) {
	q := "SELECT " + stageCols + " FROM stage_assignments WHERE model = ? AND stage = ?"
	if lock {
		q += t.forUpdate()
	}
	r, err := scanStage(t.queryRow(ctx, q, model, stage))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load stage: %w", err)
	}
	return &r, nil
}

// stageCheck gathers, inside t, what registry.CheckAssignment needs to
// judge version v for stage of model m; cur is the stage's row (nil when
// the stage was never assigned).
func (s *Store) stageCheck(ctx context.Context, t *txn, m *registry.Model, stage string, cur *stageRow, v *registry.ModelVersion) (registry.AssignmentCheck, error) {
	check := registry.AssignmentCheck{Stage: stage, Version: v, Now: s.clock()}
	var err error
	switch {
	case cur == nil:
	case cur.assigned():
		check.Current, err = mustLoadVersion(ctx, t, m.Name, cur.Version)
	case cur.PreviousVersion != 0:
		// Unassigned: judge against the last version the stage held, so
		// an unassign followed by an assign is judged like a move.
		check.Current, err = lastHolder(ctx, t, m.Name, cur)
	}
	if err != nil {
		return check, err
	}
	if p, ok := m.StagePolicies[stage]; ok {
		check.Policy = &p
		if p.RequireStage != "" {
			if check.RequiredHistory, err = stageHistoryOldestFirst(ctx, t, m.Name, p.RequireStage); err != nil {
				return check, err
			}
		}
		if len(p.MinLiveMetrics) > 0 {
			from, to := registry.LiveWindow(check.Now, registry.PolicyLiveWindow)
			series, err := liveSeries(ctx, t, "live_metrics_trusted", "bucket >= ? AND bucket < ? AND model = ? AND version = ?",
				[]any{from.Unix(), to.Unix(), m.Name, v.Version})
			if err != nil {
				return check, err
			}
			check.Live = registry.LiveSumsByMetric(series)
		}
	}
	return check, nil
}

// lastHolder is the version an unassigned stage held last, with its
// signature: from the row when it was recorded at unassign (the version
// may have been deleted since), else from the version itself; nil when
// neither is known.
func lastHolder(ctx context.Context, t *txn, model string, cur *stageRow) (*registry.ModelVersion, error) {
	if cur.lastSignature.Valid {
		v := &registry.ModelVersion{Model: model, Version: cur.PreviousVersion}
		if err := fromJSON(cur.lastSignature.String, &v.Signature); err != nil {
			return nil, err
		}
		return v, nil
	}
	return loadVersion(ctx, t, model, cur.PreviousVersion)
}

func stageNotFound(model, stage string) error {
	return registry.Errorf(registry.CodeNotFound, "stage %q of model %q is not assigned", stage, model)
}

func stageSubject(model, stage string) string { return model + "/" + stage }

const historyCols = "id, model, stage, action, version, previous_version, assigned_at, assigned_by, reason"

func scanHistory(sc scanner) (registry.StageHistoryEntry, error) {
	var (
		h  registry.StageHistoryEntry
		at int64
	)
	err := sc.Scan(&h.ID, &h.Model, &h.Stage, &h.Action, &h.Version, &h.PreviousVersion, &at, &h.AssignedBy, &h.Reason)
	h.AssignedAt = fromMicros(at)
	return h, err
}

// stageHistoryOldestFirst is the whole history of a stage, for the
// require_stage and min_soak rules.
func stageHistoryOldestFirst(ctx context.Context, t *txn, model, stage string) ([]registry.StageHistoryEntry, error) {
	rows, err := t.query(ctx, "SELECT "+historyCols+" FROM stage_history WHERE model = ? AND stage = ? ORDER BY id", model, stage)
	if err != nil {
		return nil, fmt.Errorf("load stage history: %w", err)
	}
	defer rows.Close()
	var out []registry.StageHistoryEntry
	for rows.Next() {
		h, err := scanHistory(rows)
		if err != nil {
			return nil, fmt.Errorf("load stage history: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load stage history: %w", err)
	}
	return out, nil
}

func insertHistory(ctx context.Context, t *txn, h registry.StageHistoryEntry) error {
	_, err := t.exec(ctx, `INSERT INTO stage_history (model, stage, action, version, previous_version, assigned_at, assigned_by, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		h.Model, h.Stage, h.Action, h.Version, h.PreviousVersion, h.AssignedAt.UnixMicro(), h.AssignedBy, h.Reason)
	if err != nil {
		return fmt.Errorf("insert stage history: %w", err)
	}
	return nil
}

// AssignStage points a stage at a version after registry.CheckAssignment
// passed on the data read in the same transaction. Assigning the version
// the stage holds already is a no-op answering the current assignment.
// With DryRun every check runs under the same locks and nothing is written.
func (s *Store) AssignStage(ctx context.Context, actor registry.Actor, model, stage string, req registry.StageAssign, opts registry.AssignOptions) (*registry.StageAssignment, error) {
	if err := registry.ValidateStage("stage", stage); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	mode := modeWrite
	if opts.DryRun {
		mode = modeDryRun
	}
	var out *registry.StageAssignment
	err := s.inTx(ctx, "assign stage", mode, completing(ctx, mode, func() any { return out }, func(t *txn) error {
		m, err := loadModel(ctx, t, model, true)
		if err != nil {
			return err
		}
		cur, err := loadStage(ctx, t, model, stage, true)
		if err != nil {
			return err
		}
		var curRevision int64
		if cur != nil {
			curRevision = cur.Revision
		}
		if err := checkRevision(opts.Precondition, curRevision, fmt.Sprintf("stage %q of model %q", stage, model)); err != nil {
			return err
		}
		v, err := mustLoadVersion(ctx, t, model, req.Version)
		if err != nil {
			return err
		}
		if cur != nil && cur.Version == req.Version {
			a := cur.StageAssignment
			out = &a
			return nil
		}
		check, err := s.stageCheck(ctx, t, m, stage, cur, v)
		if err != nil {
			return err
		}
		if err := registry.CheckAssignment(check); err != nil {
			return err
		}
		now := check.Now
		a := registry.StageAssignment{
			Model:      model,
			Stage:      stage,
			Version:    req.Version,
			AssignedAt: now,
			AssignedBy: actor.Name,
			Reason:     req.Reason,
			Revision:   curRevision + 1,
		}
		switch {
		case cur == nil:
		case cur.assigned():
			a.PreviousVersion = cur.Version
		default:
			a.PreviousVersion = cur.PreviousVersion // the last version it held
		}
		out = &a
		if opts.DryRun {
			return nil
		}
		if err := writeStage(ctx, t, cur != nil, a, a.Version, sql.NullString{}); err != nil {
			return err
		}
		if err := insertHistory(ctx, t, registry.StageHistoryEntry{
			Model: model, Stage: stage, Action: registry.StageActionAssign, Version: a.Version,
			PreviousVersion: a.PreviousVersion, AssignedAt: now, AssignedBy: actor.Name, Reason: req.Reason,
		}); err != nil {
			return err
		}
		var before any
		if cur != nil && cur.assigned() {
			before = cur.StageAssignment
		}
		return s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionStageAssign, subjectType: "stage", subject: stageSubject(model, stage),
			model: model, before: before, after: a,
		})
	}))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeStage inserts or updates a stage row; version 0 stores NULL.
// lastSig is the signature of a.PreviousVersion for an unassigned stage.
func writeStage(ctx context.Context, t *txn, exists bool, a registry.StageAssignment, version int64, lastSig sql.NullString) error {
	v := sql.NullInt64{Int64: version, Valid: version != 0}
	var err error
	if exists {
		_, err = t.exec(ctx, `UPDATE stage_assignments SET version = ?, previous_version = ?, assigned_at = ?,
			assigned_by = ?, reason = ?, revision = ?, last_signature = ? WHERE model = ? AND stage = ?`,
			v, a.PreviousVersion, a.AssignedAt.UnixMicro(), a.AssignedBy, a.Reason, a.Revision, lastSig, a.Model, a.Stage)
	} else {
		_, err = t.exec(ctx, "INSERT INTO stage_assignments ("+stageCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			a.Model, a.Stage, v, a.PreviousVersion, a.AssignedAt.UnixMicro(), a.AssignedBy, a.Reason, a.Revision, lastSig)
	}
	if err != nil {
		return fmt.Errorf("write stage: %w", err)
	}
	return nil
}

// GetStage reads a stage's current assignment.
func (s *Store) GetStage(ctx context.Context, model, stage string) (*registry.StageAssignment, error) {
	var out *registry.StageAssignment
	err := s.inTx(ctx, "get stage", modeRead, func(t *txn) error {
		r, err := loadStage(ctx, t, model, stage, false)
		if err != nil {
			return err
		}
		if r == nil || !r.assigned() {
			if _, err := loadModel(ctx, t, model, false); err != nil {
				return err
			}
			return stageNotFound(model, stage)
		}
		out = &r.StageAssignment
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListStages lists a model's assigned stages by name.
func (s *Store) ListStages(ctx context.Context, model string) ([]registry.StageAssignment, error) {
	out := []registry.StageAssignment{}
	err := s.inTx(ctx, "list stages", modeRead, func(t *txn) error {
		if _, err := loadModel(ctx, t, model, false); err != nil {
			return err
		}
		rows, err := t.query(ctx, "SELECT "+stageCols+" FROM stage_assignments WHERE model = ? AND version IS NOT NULL ORDER BY stage", model)
		if err != nil {
			return fmt.Errorf("list stages: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanStage(rows)
			if err != nil {
				return fmt.Errorf("list stages: %w", err)
			}
			out = append(out, r.StageAssignment)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UnassignStage removes a stage's assignment and records it in history.
func (s *Store) UnassignStage(ctx context.Context, actor registry.Actor, model, stage, reason string, pre registry.Precondition) error {
	if err := registry.ValidateStage("stage", stage); err != nil {
		return err
	}
	if err := registry.ValidateUnassignReason(reason); err != nil {
		return err
	}
	return s.inTx(ctx, "unassign stage", modeWrite, completing(ctx, modeWrite, nil, func(t *txn) error {
		if _, err := loadModel(ctx, t, model, true); err != nil {
			return err
		}
		cur, err := loadStage(ctx, t, model, stage, true)
		if err != nil {
			return err
		}
		if cur == nil || !cur.assigned() {
			return stageNotFound(model, stage)
		}
		if err := checkRevision(pre, cur.Revision, fmt.Sprintf("stage %q of model %q", stage, model)); err != nil {
			return err
		}
		holder, err := mustLoadVersion(ctx, t, model, cur.Version)
		if err != nil {
			return err
		}
		sig, err := toJSON(holder.Signature)
		if err != nil {
			return err
		}
		now := s.clock()
		next := registry.StageAssignment{
			Model: model, Stage: stage, PreviousVersion: cur.Version,
			AssignedAt: now, AssignedBy: actor.Name, Revision: cur.Revision + 1,
		}
		if err := writeStage(ctx, t, true, next, 0, sql.NullString{String: sig, Valid: true}); err != nil {
			return err
		}
		entry := registry.StageHistoryEntry{
			Model: model, Stage: stage, Action: registry.StageActionUnassign, Version: 0,
			PreviousVersion: cur.Version, AssignedAt: now, AssignedBy: actor.Name, Reason: reason,
		}
		if err := insertHistory(ctx, t, entry); err != nil {
			return err
		}
		ev := event{
			action: registry.ActionStageUnassign, subjectType: "stage", subject: stageSubject(model, stage),
			model: model, before: cur.StageAssignment,
		}
		// An unassign leaves no assignment; its reason is the audit
		// log's only trace of why.
		if reason != "" {
			ev.after = struct {
				Reason string `json:"reason"`
			}{reason}
		}
		return s.addEvent(ctx, t, actor, now, ev)
	}))
}

// StageHistory lists a stage's changes, newest first.
func (s *Store) StageHistory(ctx context.Context, model, stage string, opts registry.ListOptions) (*registry.Page[registry.StageHistoryEntry], error) {
	if err := registry.ValidateStage("stage", stage); err != nil {
		return nil, err
	}
	size, err := pageSize(opts)
	if err != nil {
		return nil, err
	}
	const list = "stage_history"
	cur, err := decodeCursor(opts.PageToken, list)
	if err != nil {
		return nil, err
	}
	var page *registry.Page[registry.StageHistoryEntry]
	err = s.inTx(ctx, "stage history", modeRead, func(t *txn) error {
		if _, err := loadModel(ctx, t, model, false); err != nil {
			return err
		}
		q, args := "SELECT "+historyCols+" FROM stage_history WHERE model = ? AND stage = ?", []any{model, stage}
		if cur != nil {
			q += " AND id < ?"
			args = append(args, cur.ID)
		}
		q += " ORDER BY id DESC LIMIT ?"
		args = append(args, size+1)
		rows, err := t.query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("stage history: %w", err)
		}
		page, err = collect(rows, size, scanHistory, func(h registry.StageHistoryEntry) cursor {
			return cursor{List: list, ID: h.ID}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}
