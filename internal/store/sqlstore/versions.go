package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var versionColumns = []string{
	"model", "version", "source", "checksum", "format", "parameters", "metrics", "lineage", "signature",
	"description", "tags", "flagged", "flag_reason", "created_at", "created_by", "updated_at", "revision",
}

// versionCols lists the version columns, each prefixed (e.g. "v.").
func versionCols(prefix string) string {
	cols := make([]string, len(versionColumns))
	for i, c := range versionColumns {
		cols[i] = prefix + c
	}
	return strings.Join(cols, ", ")
}

// scanVersion reads a version row; Stages is left empty for the caller to
// fill from stage_assignments.
func scanVersion(sc scanner) (registry.ModelVersion, error) {
	var (
		v                     registry.ModelVersion
		params, metrics, tags string
		lineage, signature    sql.NullString
		created, updated      int64
	)
	if err := sc.Scan(&v.Model, &v.Version, &v.Source, &v.Checksum, &v.Format, &params, &metrics, &lineage, &signature,
		&v.Description, &tags, &v.Flagged, &v.FlagReason, &created, &v.CreatedBy, &updated, &v.Revision); err != nil {
		return v, err
	}
	var err error
	if v.Parameters, err = decodeStringMap(params); err != nil {
		return v, err
	}
	if v.Tags, err = decodeStringMap(tags); err != nil {
		return v, err
	}
	if v.Metrics, err = decodeFloatMap(metrics); err != nil {
		return v, err
	}
	if lineage.Valid {
		if v.Lineage, err = decodeLineage(lineage.String); err != nil {
			return v, err
		}
	}
	if signature.Valid {
		if v.Signature, err = decodeSignature(signature.String); err != nil {
			return v, err
		}
	}
	v.CreatedAt, v.UpdatedAt = fromMicros(created), fromMicros(updated)
	v.Stages = []string{}
	return v, nil
}

// stagesColumn is a version query's last column: the stages the version
// (table alias v) holds, comma-separated (stage names have no commas), or
// NULL. It saves a read of a version a second statement.
func (t *txn) stagesColumn() string {
	agg := "group_concat(sa.stage, ',')"
	if t.pg {
		agg = "string_agg(sa.stage, ',')"
	}
	return "(SELECT " + agg + " FROM stage_assignments sa WHERE sa.model = v.model AND sa.version = v.version)"
}

// scanVersionStages reads a version row followed by its stagesColumn.
func scanVersionStages(sc scanner) (registry.ModelVersion, error) {
	var stages sql.NullString
	v, err := scanVersion(scannerFunc(func(dest ...any) error {
		return sc.Scan(append(dest, &stages)...)
	}))
	if err != nil {
		return v, err
	}
	if stages.Valid && stages.String != "" {
		v.Stages = strings.Split(stages.String, ",")
		slices.Sort(v.Stages)
	}
	return v, nil
}

// scannerFunc adapts a function to scanner.
type scannerFunc func(dest ...any) error

func (f scannerFunc) Scan(dest ...any) error { return f(dest...) }

func versionNotFound(model string, version int64) error {
	return registry.Errorf(registry.CodeNotFound, "version %d of model %q not found", version, model)
}

// loadVersion reads one version with its stages; (nil, nil) when it does
// not exist.
func loadVersion(ctx context.Context, t *txn, model string, version int64) (*registry.ModelVersion, error) {
	v, err := scanVersion(t.queryRow(ctx, "SELECT "+versionCols("")+" FROM model_versions WHERE model = ? AND version = ?", model, version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load version: %w", err)
	}
	stages, err := stagesByVersion(ctx, t, model)
	if err != nil {
		return nil, err
	}
	if st := stages[version]; st != nil {
		v.Stages = st
	}
	return &v, nil
}

// mustLoadVersion is loadVersion with not_found for a missing version.
func mustLoadVersion(ctx context.Context, t *txn, model string, version int64) (*registry.ModelVersion, error) {
	v, err := loadVersion(ctx, t, model, version)
	if err == nil && v == nil {
		err = versionNotFound(model, version)
	}
	return v, err
}

// stagesByVersion maps each version of model that holds stages to them,
// sorted.
func stagesByVersion(ctx context.Context, t *txn, model string) (map[int64][]string, error) {
	rows, err := t.query(ctx, "SELECT version, stage FROM stage_assignments WHERE model = ? AND version IS NOT NULL ORDER BY stage", model)
	if err != nil {
		return nil, fmt.Errorf("load stages: %w", err)
	}
	defer rows.Close()
	out := map[int64][]string{}
	for rows.Next() {
		var v int64
		var stage string
		if err := rows.Scan(&v, &stage); err != nil {
			return nil, fmt.Errorf("load stages: %w", err)
		}
		out[v] = append(out[v], stage)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load stages: %w", err)
	}
	return out, nil
}

// CreateVersion stores the model's next version. The number comes from
// version_counters, which outlives deleted versions and models. A failed
// create consumes no number: the counter moves in the same transaction.
func (s *Store) CreateVersion(ctx context.Context, actor registry.Actor, model string, vc registry.ModelVersionCreate) (*registry.ModelVersion, error) {
	if err := registry.ValidateName("model", model); err != nil {
		return nil, err
	}
	if err := vc.Validate(); err != nil {
		return nil, err
	}
	var out *registry.ModelVersion
	err := s.inTx(ctx, "create version", modeWrite, func(t *txn) error {
		if _, err := loadModel(ctx, t, model, true); err != nil {
			return err
		}
		var existing int64
		err := t.queryRow(ctx, "SELECT version FROM model_versions WHERE model = ? AND checksum = ?", model, vc.Checksum).Scan(&existing)
		switch {
		case err == nil:
			return registry.Errorf(registry.CodeAlreadyExists,
				"version %d of model %q already has checksum %s; a model holds each artifact once", existing, model, vc.Checksum)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("check checksum: %w", err)
		}
		var number int64
		if err := t.queryRow(ctx, `INSERT INTO version_counters (model, last_version) VALUES (?, 1)
			ON CONFLICT (model) DO UPDATE SET last_version = version_counters.last_version + 1
			RETURNING last_version`, model).Scan(&number); err != nil {
			return fmt.Errorf("next version number: %w", err)
		}
		now := s.clock()
		v := registry.ModelVersion{
			Model:       model,
			Version:     number,
			Source:      vc.Source,
			Checksum:    vc.Checksum,
			Format:      vc.Format,
			Parameters:  nonNilStrings(vc.Parameters),
			Metrics:     nonNilFloats(vc.Metrics),
			Lineage:     vc.Lineage,
			Signature:   vc.Signature,
			Description: vc.Description,
			Tags:        nonNilStrings(vc.Tags),
			Flagged:     vc.Flagged,
			FlagReason:  vc.FlagReason,
			CreatedAt:   now,
			CreatedBy:   actor.Name,
			UpdatedAt:   now,
			Stages:      []string{},
			Revision:    1,
		}
		if err := insertVersion(ctx, t, &v); err != nil {
			return err
		}
		if v.Flagged {
			if _, err := t.exec(ctx, "UPDATE model_versions SET flagged_by = ? WHERE model = ? AND version = ?", actor.Name, model, number); err != nil {
				return fmt.Errorf("record flagged_by: %w", err)
			}
		}
		out = &v
		if err := s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionVersionCreate, subjectType: "model_version", subject: versionSubject(model, number),
			model: model, after: v,
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

func versionSubject(model string, version int64) string { return fmt.Sprintf("%s/%d", model, version) }

func insertVersion(ctx context.Context, t *txn, v *registry.ModelVersion) error {
	params, err := toJSON(v.Parameters)
	if err != nil {
		return err
	}
	metrics, err := toJSON(v.Metrics)
	if err != nil {
		return err
	}
	lineage, err := nullJSON(v.Lineage, v.Lineage == nil)
	if err != nil {
		return err
	}
	signature, err := nullJSON(v.Signature, v.Signature == nil)
	if err != nil {
		return err
	}
	tags, err := toJSON(v.Tags)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, "INSERT INTO model_versions ("+versionCols("")+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.Model, v.Version, v.Source, v.Checksum, v.Format, params, metrics, lineage, signature,
		v.Description, tags, v.Flagged, v.FlagReason, v.CreatedAt.UnixMicro(), v.CreatedBy, v.UpdatedAt.UnixMicro(), v.Revision); err != nil {
		return fmt.Errorf("insert version: %w", err)
	}
	for name, value := range v.Metrics {
		if _, err := t.exec(ctx, "INSERT INTO version_metrics (model, version, name, value) VALUES (?, ?, ?, ?)",
			v.Model, v.Version, name, value); err != nil {
			return fmt.Errorf("insert metric: %w", err)
		}
	}
	return insertVersionTags(ctx, t, v)
}

func insertVersionTags(ctx context.Context, t *txn, v *registry.ModelVersion) error {
	for k, val := range v.Tags {
		if _, err := t.exec(ctx, "INSERT INTO version_tags (model, version, tag_key, tag_value) VALUES (?, ?, ?, ?)",
			v.Model, v.Version, k, val); err != nil {
			return fmt.Errorf("insert version tag: %w", err)
		}
	}
	return nil
}

// GetVersion reads a version.
func (s *Store) GetVersion(ctx context.Context, model string, version int64) (*registry.ModelVersion, error) {
	var out *registry.ModelVersion
	// One statement: no transaction needed for a consistent answer.
	err := s.inTx(ctx, "get version", modeReadOne, func(t *txn) error {
		v, err := scanVersionStages(t.queryRow(ctx, "SELECT "+versionCols("v.")+", "+t.stagesColumn()+
			" FROM model_versions v WHERE v.model = ? AND v.version = ?", model, version))
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := loadModel(ctx, t, model, false); err != nil {
				return err
			}
			return versionNotFound(model, version)
		}
		if err != nil {
			return fmt.Errorf("load version: %w", err)
		}
		out = &v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// versionOrder is a parsed VersionFilter.OrderBy.
type versionOrder struct {
	metric string // "" orders by version
	desc   bool
}

func parseVersionOrder(s string) (versionOrder, error) {
	bad := registry.FieldError("order_by", "enum", "%q must be version, version desc, metrics.<name> or metrics.<name> desc", s)
	fields := strings.Fields(s)
	var o versionOrder
	switch len(fields) {
	case 0:
		return o, nil
	case 1:
	case 2:
		switch strings.ToLower(fields[1]) {
		case "asc":
		case "desc":
			o.desc = true
		default:
			return o, bad
		}
	default:
		return o, bad
	}
	switch key := fields[0]; {
	case key == "version":
	case strings.HasPrefix(key, "metrics.") && len(key) > len("metrics."):
		o.metric = strings.TrimPrefix(key, "metrics.")
	default:
		return o, bad
	}
	return o, nil
}

func (o versionOrder) String() string {
	s := "version"
	if o.metric != "" {
		s = "metrics." + o.metric
	}
	if o.desc {
		s += " desc"
	}
	return s
}

// ListVersions lists a model's versions, filtered and ordered in SQL and
// paged by keyset. Ordered by a metric, versions without it come last in
// both directions; ties (and the versions without it) are ordered by
// version in the same direction.
func (s *Store) ListVersions(ctx context.Context, model string, f registry.VersionFilter) (*registry.Page[registry.ModelVersion], error) {
	size, err := pageSize(f.ListOptions)
	if err != nil {
		return nil, err
	}
	order, err := parseVersionOrder(f.OrderBy)
	if err != nil {
		return nil, err
	}
	if f.Stage != "" {
		if err := registry.ValidateStage("stage", f.Stage); err != nil {
			return nil, err
		}
	}
	tagKey, _, _ := strings.Cut(f.Tag, "=")
	if f.Tag != "" && tagKey == "" {
		return nil, registry.FieldError("tag", "format", "%q must be key or key=value", f.Tag)
	}
	list := "versions:" + order.String()
	cur, err := decodeCursor(f.PageToken, list)
	if err != nil {
		return nil, err
	}

	cmp, dir := ">", ""
	if order.desc {
		cmp, dir = "<", " DESC"
	}
	if order.metric != "" {
		return s.listVersionsByMetric(ctx, model, f, order, list, cur, size)
	}
	// Ordered by version: one statement on the primary key.
	where, args := versionFilters("v", f)
	where = append([]string{"v.model = ?"}, where...)
	args = append([]any{model}, args...)
	if cur != nil {
		where = append(where, "v.version "+cmp+" ?")
		args = append(args, cur.ID)
	}
	q := "SELECT " + versionCols("v.") + ", " + (&txn{pg: s.dialect == DialectPostgres}).stagesColumn() +
		" FROM model_versions v WHERE " + strings.Join(where, " AND ") + " ORDER BY v.version" + dir + " LIMIT ?"
	args = append(args, size+1)

	var page *registry.Page[registry.ModelVersion]
	// One statement (the versions carry their stages); only an empty page
	// asks whether the model exists.
	err = s.inTx(ctx, "list versions", modeReadOne, func(t *txn) error {
		rows, err := t.query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list versions: %w", err)
		}
		page, err = collect(rows, size, scanVersionStages, func(v registry.ModelVersion) cursor {
			return cursor{List: list, ID: v.Version}
		})
		if err != nil {
			return err
		}
		if len(page.Items) == 0 {
			if _, err := loadModel(ctx, t, model, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// versionFilters are the WHERE terms of a VersionFilter's stage, tag and
// flagged on the version named by alias.model and alias.version.
func versionFilters(alias string, f registry.VersionFilter) ([]string, []any) {
	var where []string
	var args []any
	if f.Stage != "" {
		where = append(where, "EXISTS (SELECT 1 FROM stage_assignments s WHERE s.model = "+alias+".model AND s.version = "+alias+".version AND s.stage = ?)")
		args = append(args, f.Stage)
	}
	if f.Tag != "" {
		tagKey, tagValue, tagHasValue := strings.Cut(f.Tag, "=")
		cond := "EXISTS (SELECT 1 FROM version_tags tg WHERE tg.model = " + alias + ".model AND tg.version = " + alias + ".version AND tg.tag_key = ?"
		args = append(args, tagKey)
		if tagHasValue {
			cond += " AND tg.tag_value = ?"
			args = append(args, tagValue)
		}
		where = append(where, cond+")")
	}
	if f.Flagged != nil {
		if alias == "v" {
			where = append(where, "v.flagged = ?")
		} else {
			where = append(where, "EXISTS (SELECT 1 FROM model_versions fv WHERE fv.model = "+alias+".model AND fv.version = "+alias+".version AND fv.flagged = ?)")
		}
		args = append(args, *f.Flagged)
	}
	return where, args
}

// listVersionsByMetric is ListVersions ordered by a metric, in up to two
// statements of one read transaction: the versions with the metric walk
// the index version_metrics_order (model, name, value, version) in order
// and stop once the page is full, reading whole rows only for the page
// (sorting every version of the model, whole rows and all, cost a list of
// a model with 100 versions more than a millisecond of CPU); only a page
// that is not full then looks at the versions without the metric, by
// version.
func (s *Store) listVersionsByMetric(ctx context.Context, model string, f registry.VersionFilter, order versionOrder,
	list string, cur *cursor, size int) (*registry.Page[registry.ModelVersion], error) {
	cmp, dir := ">", ""
	if order.desc {
		cmp, dir = "<", " DESC"
	}
	pg := s.dialect == DialectPostgres
	stages := (&txn{pg: pg}).stagesColumn()

	// With the metric, unless the cursor is already past them.
	var withQ string
	var withArgs []any
	if cur == nil || cur.Value != nil {
		where := []string{"m.model = ?", "m.name = ?"}
		withArgs = []any{model, order.metric}
		fw, fa := versionFilters("m", f)
		where = append(where, fw...)
		withArgs = append(withArgs, fa...)
		if cur != nil {
			where = append(where, "(m.value "+cmp+" ? OR (m.value = ? AND m.version "+cmp+" ?))")
			withArgs = append(withArgs, *cur.Value, *cur.Value, cur.ID)
		}
		withQ = "SELECT " + versionCols("v.") + ", " + stages +
			" FROM version_metrics m JOIN model_versions v ON v.model = m.model AND v.version = m.version" +
			" WHERE " + strings.Join(where, " AND ") + " ORDER BY m.value" + dir + ", m.version" + dir + " LIMIT ?"
	}
	// Without the metric.
	where := []string{"v.model = ?", "NOT EXISTS (SELECT 1 FROM version_metrics m WHERE m.model = v.model AND m.version = v.version AND m.name = ?)"}
	withoutArgs := []any{model, order.metric}
	fw, fa := versionFilters("v", f)
	where = append(where, fw...)
	withoutArgs = append(withoutArgs, fa...)
	if cur != nil && cur.Value == nil {
		where = append(where, "v.version "+cmp+" ?")
		withoutArgs = append(withoutArgs, cur.ID)
	}
	withoutQ := "SELECT " + versionCols("v.") + ", " + stages + " FROM model_versions v WHERE " + strings.Join(where, " AND ") +
		" ORDER BY v.version" + dir + " LIMIT ?"

	page := &registry.Page[registry.ModelVersion]{Items: []registry.ModelVersion{}}
	err := s.inTx(ctx, "list versions", modeRead, func(t *txn) error {
		page.Items = page.Items[:0]
		read := func(q string, args []any) error {
			rows, err := t.query(ctx, q, append(args, size+1-len(page.Items))...)
			if err != nil {
				return fmt.Errorf("list versions: %w", err)
			}
			defer rows.Close()
			for rows.Next() {
				v, err := scanVersionStages(rows)
				if err != nil {
					return err
				}
				page.Items = append(page.Items, v)
			}
			return rows.Err()
		}
		if withQ != "" {
			if err := read(withQ, withArgs); err != nil {
				return err
			}
		}
		if len(page.Items) <= size {
			if err := read(withoutQ, withoutArgs); err != nil {
				return err
			}
		}
		if len(page.Items) == 0 {
			if _, err := loadModel(ctx, t, model, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(page.Items) > size {
		page.Items = page.Items[:size]
		last := page.Items[size-1]
		c := cursor{List: list, ID: last.Version}
		if val, ok := last.Metrics[order.metric]; ok {
			c.Value = &val
		}
		page.NextPageToken = c.encode()
	}
	return page, nil
}

// UpdateVersion changes a version's mutable fields and adds metrics it
// does not have (registry.AddMetrics: recorded values never change).
// Unflagging clears the flag reason unless the patch sets one, which is
// only allowed on a flagged version. A patch that changes nothing returns
// the version as it is. A write that leaves the version flagged drains its
// routes (drainFlagged).
func (s *Store) UpdateVersion(ctx context.Context, actor registry.Actor, model string, version int64, p registry.ModelVersionPatch, pre registry.Precondition) (*registry.ModelVersion, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var out *registry.ModelVersion
	err := s.inTx(ctx, "update version", modeWrite, completing(ctx, modeWrite, func() any { return out }, func(t *txn) error {
		if _, err := loadModel(ctx, t, model, true); err != nil {
			return err
		}
		before, err := mustLoadVersion(ctx, t, model, version)
		if err != nil {
			return err
		}
		if err := checkRevision(pre, before.Revision, fmt.Sprintf("version %d of model %q", version, model)); err != nil {
			return err
		}
		after := *before
		if p.Description != nil {
			after.Description = *p.Description
		}
		if p.Tags != nil {
			after.Tags = nonNilStrings(*p.Tags)
		}
		if p.Flagged != nil {
			after.Flagged = *p.Flagged
			if !after.Flagged {
				after.FlagReason = ""
			}
		}
		if p.FlagReason != nil {
			after.FlagReason = *p.FlagReason
		}
		if !after.Flagged && after.FlagReason != "" {
			return registry.FieldError("flag_reason", "requires", "may only be set when flagged is true")
		}
		var flaggedBy string
		if before.Flagged {
			if err := t.queryRow(ctx, "SELECT flagged_by FROM model_versions WHERE model = ? AND version = ?", model, version).Scan(&flaggedBy); err != nil {
				return fmt.Errorf("load flagged_by: %w", err)
			}
		}
		if len(actor.Stages) > 0 {
			if err := checkRestrictedFlag(ctx, t, actor, before, &after, flaggedBy); err != nil {
				return err
			}
		}
		switch {
		case !after.Flagged:
			flaggedBy = ""
		case !before.Flagged || after.FlagReason != before.FlagReason:
			flaggedBy = actor.Name
		}
		var addedMetrics []string
		if len(p.AddMetrics) > 0 {
			if after.Metrics, addedMetrics, err = registry.AddMetrics(before.Metrics, p.AddMetrics); err != nil {
				return err
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
		metrics, err := toJSON(after.Metrics)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE model_versions SET description = ?, tags = ?, flagged = ?, flag_reason = ?, flagged_by = ?, metrics = ?,
			updated_at = ?, revision = ? WHERE model = ? AND version = ?`,
			after.Description, tags, after.Flagged, after.FlagReason, flaggedBy, metrics, now.UnixMicro(), after.Revision, model, version); err != nil {
			return fmt.Errorf("update version: %w", err)
		}
		// version_metrics orders and filters lists; it holds every metric
		// of the JSON column.
		for _, name := range addedMetrics {
			if _, err := t.exec(ctx, "INSERT INTO version_metrics (model, version, name, value) VALUES (?, ?, ?, ?)",
				model, version, name, after.Metrics[name]); err != nil {
				return fmt.Errorf("insert metric: %w", err)
			}
		}
		if p.Tags != nil {
			if _, err := t.exec(ctx, "DELETE FROM version_tags WHERE model = ? AND version = ?", model, version); err != nil {
				return fmt.Errorf("replace version tags: %w", err)
			}
			if err := insertVersionTags(ctx, t, &after); err != nil {
				return err
			}
		}
		out = &after
		if err := s.addEvent(ctx, t, actor, now, event{
			action: registry.ActionVersionUpdate, subjectType: "model_version", subject: versionSubject(model, version),
			model: model, before: before, after: after,
		}); err != nil {
			return err
		}
		if after.Flagged {
			// The flag is the emergency stop: its traffic goes in this
			// transaction. (A version created flagged has no routes yet.)
			return s.drainFlagged(ctx, t, actor, &after)
		}
		return nil
	}))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkRestrictedFlag refuses what a stage-restricted actor may not do
// to a version's flag, decided on the data of the write's transaction
// (the model row is locked, so no stage assignment or endpoint change of
// the model runs meanwhile): unflag; flag a version that holds a stage
// outside its stages or gives weight to a route on an endpoint bound to
// one (the drain would stop what that stage serves); change a flag reason
// another actor set.
func checkRestrictedFlag(ctx context.Context, t *txn, actor registry.Actor, before, after *registry.ModelVersion, flaggedBy string) error {
	outside := func(stage string) bool { return stage != "" && !slices.Contains(actor.Stages, stage) }
	deny := func(field, format string, args ...any) error {
		return &registry.Error{
			Code: registry.CodePermissionDenied, Field: field, Rule: "token_stages",
			Message: fmt.Sprintf("token %q may only change stages [%s]; ", actor.Name, strings.Join(actor.Stages, ", ")) +
				fmt.Sprintf(format, args...) + " needs a write token without a stage restriction",
		}
	}
	v := before
	switch {
	case before.Flagged && !after.Flagged:
		return deny("flagged", "unflagging version %d of %q", v.Version, v.Model)
	case !before.Flagged && after.Flagged:
		for _, stage := range before.Stages {
			if outside(stage) {
				return deny("flagged", "version %d of %q holds stage %q, so flagging it (which takes it out of that stage's traffic)", v.Version, v.Model, stage)
			}
		}
		names, err := versionEndpoints(ctx, t, v.Model, v.Version)
		if err != nil {
			return err
		}
		for _, name := range names {
			ep, err := loadEndpoint(ctx, t, name, false)
			if err != nil {
				return err
			}
			if !outside(ep.Stage) {
				continue
			}
			for _, r := range ep.Routes {
				if r.Version == v.Version && r.Weight > 0 {
					return deny("flagged", "version %d of %q serves stage %q on endpoint %q (route %q, weight %d), so flagging it (which drains that traffic)",
						v.Version, v.Model, ep.Stage, ep.Name, r.Name, r.Weight)
				}
			}
		}
	case before.Flagged && after.FlagReason != before.FlagReason && flaggedBy != actor.Name:
		by := "another token"
		if flaggedBy != "" {
			by = fmt.Sprintf("token %q", flaggedBy)
		}
		return deny("flag_reason", "the flag_reason of version %d of %q was set by %s; changing it", v.Version, v.Model, by)
	}
	return nil
}

// DeleteVersion deletes a version that holds no stage and receives no
// endpoint traffic. Its number is never given out again.
func (s *Store) DeleteVersion(ctx context.Context, actor registry.Actor, model string, version int64, pre registry.Precondition) error {
	return s.inTx(ctx, "delete version", modeWrite, completing(ctx, modeWrite, nil, func(t *txn) error {
		if _, err := loadModel(ctx, t, model, true); err != nil {
			return err
		}
		v, err := mustLoadVersion(ctx, t, model, version)
		if err != nil {
			return err
		}
		if err := checkRevision(pre, v.Revision, fmt.Sprintf("version %d of model %q", version, model)); err != nil {
			return err
		}
		if len(v.Stages) > 0 {
			return registry.Errorf(registry.CodeConflict,
				"version %d holds stage %s; assign another version or unassign the stage first", version, v.Stages[0])
		}
		var endpoint, route string
		err = t.queryRow(ctx, "SELECT endpoint, route FROM endpoint_routes WHERE model = ? AND version = ? ORDER BY endpoint, route LIMIT 1",
			model, version).Scan(&endpoint, &route)
		switch {
		case err == nil:
			return registry.Errorf(registry.CodeConflict,
				"endpoint %q routes traffic to version %d (route %q); change the endpoint's routes first", endpoint, version, route)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("check endpoint routes: %w", err)
		}
		if _, err := t.exec(ctx, "DELETE FROM model_versions WHERE model = ? AND version = ?", model, version); err != nil {
			return fmt.Errorf("delete version: %w", err)
		}
		return s.addEvent(ctx, t, actor, s.clock(), event{
			action: registry.ActionVersionDelete, subjectType: "model_version", subject: versionSubject(model, version),
			model: model, before: v,
		})
	}))
}
