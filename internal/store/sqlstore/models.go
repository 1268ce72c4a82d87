package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const modelCols = "name, description, owner, tags, stage_policies, created_at, updated_at, revision"

func scanModel(sc scanner) (registry.Model, error) {
	var (
		m                registry.Model
		tags, policies   string
		created, updated int64
	)
	if err := sc.Scan(&m.Name, &m.Description, &m.Owner, &tags, &policies, &created, &updated, &m.Revision); err != nil {
		return m, err
	}
	var err error
	if m.Tags, err = stringMap(tags); err != nil {
		return m, err
	}
	m.StagePolicies = map[string]registry.StagePolicy{}
	if err := fromJSON(policies, &m.StagePolicies); err != nil {
		return m, err
	}
	if m.StagePolicies == nil {
		m.StagePolicies = map[string]registry.StagePolicy{}
	}
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return m, nil
}

func modelNotFound(name string) error {
	return registry.Errorf(registry.CodeNotFound, "model %q not found", name)
}

// loadModel reads a model; lock takes its row lock on PostgreSQL, which
// every write under the model does first so that writes to one model run
// one at a time.
func loadModel(ctx context.Context, t *txn, name string, lock bool) (*registry.Model, error) {
	q := "SELECT " + modelCols + " FROM models WHERE name = ?"
	if lock {
		q += t.forUpdate()
	}
	m, err := scanModel(t.queryRow(ctx, q, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, modelNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	return &m, nil
}

// CreateModel stores a new model at revision 1.
func (s *Store) CreateModel(ctx context.Context, actor registry.Actor, mc registry.ModelCreate) (*registry.Model, error) {
	if err := mc.Validate(); err != nil {
		return nil, err
	}
	var out *registry.Model
	err := s.inTx(ctx, "create model", modeWrite, func(t *txn) error {
		var n int
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM models WHERE name = ?", mc.Name).Scan(&n); err != nil {
			return fmt.Errorf("check model: %w", err)
		}
		if n > 0 {
			return registry.Errorf(registry.CodeAlreadyExists, "model %q already exists", mc.Name)
		}
		now := s.clock()
		m := registry.Model{
			Name:          mc.Name,
			Description:   mc.Description,
			Owner:         mc.Owner,
			Tags:          nonNilStrings(mc.Tags),
			StagePolicies: mc.StagePolicies,
			CreatedAt:     now,
			UpdatedAt:     now,
			Revision:      1,
		}
		if m.StagePolicies == nil {
			m.StagePolicies = map[string]registry.StagePolicy{}
		}
		if err := insertModel(ctx, t, &m); err != nil {
			return err
		}
		out = &m
		if err := s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionModelCreate, subjectType: "model", subject: m.Name, model: m.Name, after: m,
		}); err != nil {
			return err
		}
		return completeWrite(ctx, t, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func insertModel(ctx context.Context, t *txn, m *registry.Model) error {
	tags, err := toJSON(m.Tags)
	if err != nil {
		return err
	}
	policies, err := toJSON(m.StagePolicies)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, "INSERT INTO models ("+modelCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		m.Name, m.Description, m.Owner, tags, policies, m.CreatedAt.UnixMicro(), m.UpdatedAt.UnixMicro(), m.Revision)
	if err != nil {
		return fmt.Errorf("insert model: %w", err)
	}
	return nil
}

// GetModel reads a model.
func (s *Store) GetModel(ctx context.Context, name string) (*registry.Model, error) {
	var out *registry.Model
	err := s.inTx(ctx, "get model", modeRead, func(t *txn) error {
		var err error
		out, err = loadModel(ctx, t, name, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListModels lists models by name.
func (s *Store) ListModels(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Model], error) {
	size, err := pageSize(opts)
	if err != nil {
		return nil, err
	}
	const list = "models"
	cur, err := decodeCursor(opts.PageToken, list)
	if err != nil {
		return nil, err
	}
	var page *registry.Page[registry.Model]
	err = s.inTx(ctx, "list models", modeRead, func(t *txn) error {
		q, args := "SELECT "+modelCols+" FROM models", []any{}
		if cur != nil {
			q += " WHERE name > ?"
			args = append(args, cur.Name)
		}
		q += " ORDER BY name LIMIT ?"
		args = append(args, size+1)
		rows, err := t.query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list models: %w", err)
		}
		page, err = collect(rows, size, scanModel, func(m registry.Model) cursor {
			return cursor{List: list, Name: m.Name}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// UpdateModel applies a patch. A patch that changes nothing returns the
// model as it is, without a new revision or event.
func (s *Store) UpdateModel(ctx context.Context, actor registry.Actor, name string, p registry.ModelPatch, pre registry.Precondition) (*registry.Model, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var out *registry.Model
	err := s.inTx(ctx, "update model", modeWrite, completing(ctx, modeWrite, func() any { return out }, func(t *txn) error {
		before, err := loadModel(ctx, t, name, true)
		if err != nil {
			return err
		}
		if err := checkRevision(pre, before.Revision, fmt.Sprintf("model %q", name)); err != nil {
			return err
		}
		after := *before
		if p.Description != nil {
			after.Description = *p.Description
		}
		if p.Owner != nil {
			after.Owner = *p.Owner
		}
		if p.Tags != nil {
			after.Tags = nonNilStrings(*p.Tags)
		}
		if p.StagePolicies != nil {
			after.StagePolicies = *p.StagePolicies
			if after.StagePolicies == nil {
				after.StagePolicies = map[string]registry.StagePolicy{}
			}
		}
		if sameJSON(before, &after) {
			out = before
			return nil
		}
		now := s.clock()
		after.UpdatedAt = now
		after.Revision = before.Revision + 1
		tags, err := toJSON(after.Tags)
		if err != nil {
			return err
		}
		policies, err := toJSON(after.StagePolicies)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE models SET description = ?, owner = ?, tags = ?, stage_policies = ?,
			updated_at = ?, revision = ? WHERE name = ?`,
			after.Description, after.Owner, tags, policies, now.UnixMicro(), after.Revision, name); err != nil {
			return fmt.Errorf("update model: %w", err)
		}
		out = &after
		return s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionModelUpdate, subjectType: "model", subject: name, model: name, before: before, after: after,
		})
	}))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteModel deletes a model. Stage assignments and history go with it;
// versions only with Force. An endpoint referring to the model blocks the
// delete either way. The version counter stays, so a re-created model
// continues numbering.
func (s *Store) DeleteModel(ctx context.Context, actor registry.Actor, name string, opts registry.DeleteModelOptions) error {
	return s.inTx(ctx, "delete model", modeWrite, completing(ctx, modeWrite, nil, func(t *txn) error {
		m, err := loadModel(ctx, t, name, true)
		if err != nil {
			return err
		}
		if err := checkRevision(opts.Precondition, m.Revision, fmt.Sprintf("model %q", name)); err != nil {
			return err
		}
		var endpoint string
		err = t.queryRow(ctx, "SELECT name FROM endpoints WHERE model = ? ORDER BY name LIMIT 1", name).Scan(&endpoint)
		switch {
		case err == nil:
			return registry.Errorf(registry.CodeConflict, "endpoint %q serves model %q; delete the endpoint first", endpoint, name)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("check endpoints: %w", err)
		}
		var versions int64
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM model_versions WHERE model = ?", name).Scan(&versions); err != nil {
			return fmt.Errorf("count versions: %w", err)
		}
		if versions > 0 && !opts.Force {
			return registry.Errorf(registry.CodeConflict,
				"model %q has %d version(s); delete them first or delete the model with force (force=true, force_destroy in Terraform) to remove them too", name, versions)
		}
		for _, q := range []string{
			"DELETE FROM stage_history WHERE model = ?",
			"DELETE FROM stage_assignments WHERE model = ?",
			"DELETE FROM model_versions WHERE model = ?", // metrics and tags cascade
			"DELETE FROM models WHERE name = ?",
		} {
			if _, err := t.exec(ctx, q, name); err != nil {
				return fmt.Errorf("delete model: %w", err)
			}
		}
		return s.addEvent(ctx, t, actor, s.clock(), event{
			action: registry.ActionModelDelete, subjectType: "model", subject: name, model: name, before: m,
		})
	}))
}
