package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Healthz checks that the registry answers /healthz. It needs no token.
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/healthz"}, nil)
	return err
}

// Ping makes the cheapest authenticated call (one model of the model
// list), so it fails when the registry is unreachable or rejects the token.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.ListModels(ctx, registry.ListOptions{PageSize: 1})
	return err
}

// Models.

// ListModels returns one page of models.
func (c *Client) ListModels(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Model], error) {
	var page registry.Page[registry.Model]
	_, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("models"), query: listQuery(opts)}, &page)
	if err != nil {
		return nil, err
	}
	return &page, nil
}

// AllModels returns every model, walking the pages.
func (c *Client) AllModels(ctx context.Context) ([]registry.Model, error) {
	return collect(ctx, registry.MaxPageSize, c.ListModels)
}

// GetModel returns a model.
func (c *Client) GetModel(ctx context.Context, name string) (*registry.Model, error) {
	var m registry.Model
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("models", name)}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// CreateModel registers a model. The call carries one Idempotency-Key
// across its retries.
func (c *Client) CreateModel(ctx context.Context, m registry.ModelCreate) (*registry.Model, error) {
	defer c.forget(m.Name)
	var out registry.Model
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("models"), body: m, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateModel patches a model; ifRevision > 0 makes it conditional.
func (c *Client) UpdateModel(ctx context.Context, name string, p registry.ModelPatch, ifRevision int64) (*registry.Model, error) {
	defer c.forget(name)
	var out registry.Model
	if _, err := c.do(ctx, request{method: http.MethodPatch, path: apiPath("models", name), body: p, ifRevision: ifRevision}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteModel deletes a model. force deletes its versions and stage
// assignments too (admin token). ifRevision > 0 makes it conditional.
func (c *Client) DeleteModel(ctx context.Context, name string, force bool, ifRevision int64) error {
	defer c.forget(name)
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	_, err := c.do(ctx, request{method: http.MethodDelete, path: apiPath("models", name), query: q, ifRevision: ifRevision}, nil)
	return err
}

// Versions.

// ListVersions returns one page of a model's versions, filtered and
// ordered by f.
func (c *Client) ListVersions(ctx context.Context, model string, f registry.VersionFilter) (*registry.Page[registry.ModelVersion], error) {
	q := listQuery(f.ListOptions)
	if f.Stage != "" {
		q.Set("stage", f.Stage)
	}
	if f.Tag != "" {
		q.Set("tag", f.Tag)
	}
	if f.Flagged != nil {
		q.Set("flagged", strconv.FormatBool(*f.Flagged))
	}
	if f.OrderBy != "" {
		q.Set("order_by", f.OrderBy)
	}
	var page registry.Page[registry.ModelVersion]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("models", model, "versions"), query: q}, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// AllVersions returns every version matching f, walking the pages (f's
// page token is ignored).
func (c *Client) AllVersions(ctx context.Context, model string, f registry.VersionFilter) ([]registry.ModelVersion, error) {
	size := f.PageSize
	if size == 0 {
		size = registry.MaxPageSize
	}
	return collect(ctx, size, func(ctx context.Context, o registry.ListOptions) (*registry.Page[registry.ModelVersion], error) {
		f.ListOptions = o
		return c.ListVersions(ctx, model, f)
	})
}

// GetVersion returns one version.
func (c *Client) GetVersion(ctx context.Context, model string, version int64) (*registry.ModelVersion, error) {
	var v registry.ModelVersion
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("models", model, "versions", strconv.FormatInt(version, 10))}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// CreateVersion registers a new version of a model; the server assigns its
// number. The call carries one Idempotency-Key across its retries, so a
// retried create never registers the artifact twice.
func (c *Client) CreateVersion(ctx context.Context, model string, v registry.ModelVersionCreate) (*registry.ModelVersion, error) {
	defer c.forget(model)
	var out registry.ModelVersion
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("models", model, "versions"), body: v, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateVersion patches a version's mutable fields; ifRevision > 0 makes
// it conditional.
func (c *Client) UpdateVersion(ctx context.Context, model string, version int64, p registry.ModelVersionPatch, ifRevision int64) (*registry.ModelVersion, error) {
	defer c.forget(model)
	var out registry.ModelVersion
	path := apiPath("models", model, "versions", strconv.FormatInt(version, 10))
	if _, err := c.do(ctx, request{method: http.MethodPatch, path: path, body: p, ifRevision: ifRevision}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteVersion deletes a version; ifRevision > 0 makes it conditional.
func (c *Client) DeleteVersion(ctx context.Context, model string, version int64, ifRevision int64) error {
	defer c.forget(model)
	path := apiPath("models", model, "versions", strconv.FormatInt(version, 10))
	_, err := c.do(ctx, request{method: http.MethodDelete, path: path, ifRevision: ifRevision}, nil)
	return err
}

// Stages.

// GetStage returns the assignment of one stage (not_found when the stage
// is unassigned).
func (c *Client) GetStage(ctx context.Context, model, stage string) (*registry.StageAssignment, error) {
	var s registry.StageAssignment
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("models", model, "stages", stage)}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ListStages returns every assigned stage of a model.
func (c *Client) ListStages(ctx context.Context, model string) ([]registry.StageAssignment, error) {
	var page registry.Page[registry.StageAssignment]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("models", model, "stages")}, &page); err != nil {
		return nil, err
	}
	return page.Items, nil
}

// AssignStage points a stage at a version (a promotion or a rollback). The
// server enforces the model's stage policy. ifRevision > 0 makes it
// conditional on the assignment's current revision.
func (c *Client) AssignStage(ctx context.Context, model, stage string, a registry.StageAssign, ifRevision int64) (*registry.StageAssignment, error) {
	defer c.forget(model)
	var out registry.StageAssignment
	if _, err := c.do(ctx, request{method: http.MethodPut, path: apiPath("models", model, "stages", stage), body: a, ifRevision: ifRevision}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DryRunAssignStage runs every check of AssignStage and writes nothing. It
// returns the server's policy_violation (or other) error when the
// assignment would be refused. A read token may ask; the answer's
// Permitted says whether the caller's own token could make the change,
// and Permission why not.
func (c *Client) DryRunAssignStage(ctx context.Context, model, stage string, a registry.StageAssign) (*registry.StageDryRun, error) {
	var out registry.StageDryRun
	q := url.Values{"dry_run": {"true"}}
	if _, err := c.do(ctx, request{method: http.MethodPut, path: apiPath("models", model, "stages", stage), query: q, body: a}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UnassignStage removes a stage assignment; ifRevision > 0 makes it
// conditional.
func (c *Client) UnassignStage(ctx context.Context, model, stage string, ifRevision int64) error {
	return c.UnassignStageWithReason(ctx, model, stage, "", ifRevision)
}

// UnassignStageWithReason is UnassignStage with a reason, kept in the
// stage's history and the audit event.
func (c *Client) UnassignStageWithReason(ctx context.Context, model, stage, reason string, ifRevision int64) error {
	defer c.forget(model)
	var q url.Values
	if reason != "" {
		q = url.Values{"reason": {reason}}
	}
	_, err := c.do(ctx, request{method: http.MethodDelete, path: apiPath("models", model, "stages", stage), query: q, ifRevision: ifRevision}, nil)
	return err
}

// StageHistory returns one page of a stage's changes, newest first.
func (c *Client) StageHistory(ctx context.Context, model, stage string, opts registry.ListOptions) (*registry.Page[registry.StageHistoryEntry], error) {
	var page registry.Page[registry.StageHistoryEntry]
	path := apiPath("models", model, "stages", stage, "history")
	if _, err := c.do(ctx, request{method: http.MethodGet, path: path, query: listQuery(opts)}, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// AllStageHistory returns a stage's whole history, newest first.
func (c *Client) AllStageHistory(ctx context.Context, model, stage string) ([]registry.StageHistoryEntry, error) {
	return collect(ctx, registry.MaxPageSize, func(ctx context.Context, o registry.ListOptions) (*registry.Page[registry.StageHistoryEntry], error) {
		return c.StageHistory(ctx, model, stage, o)
	})
}

// Endpoints.

// ListEndpoints returns one page of endpoints.
func (c *Client) ListEndpoints(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Endpoint], error) {
	var page registry.Page[registry.Endpoint]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("endpoints"), query: listQuery(opts)}, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// AllEndpoints returns every endpoint, walking the pages.
func (c *Client) AllEndpoints(ctx context.Context) ([]registry.Endpoint, error) {
	return collect(ctx, registry.MaxPageSize, c.ListEndpoints)
}

// GetEndpoint returns an endpoint.
func (c *Client) GetEndpoint(ctx context.Context, name string) (*registry.Endpoint, error) {
	var e registry.Endpoint
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("endpoints", name)}, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// CreateEndpoint creates an endpoint. The call carries one Idempotency-Key
// across its retries.
func (c *Client) CreateEndpoint(ctx context.Context, e registry.EndpointCreate) (*registry.Endpoint, error) {
	var out registry.Endpoint
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("endpoints"), body: e, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateEndpoint patches an endpoint; ifRevision > 0 makes it conditional.
func (c *Client) UpdateEndpoint(ctx context.Context, name string, p registry.EndpointPatch, ifRevision int64) (*registry.Endpoint, error) {
	var out registry.Endpoint
	if _, err := c.do(ctx, request{method: http.MethodPatch, path: apiPath("endpoints", name), body: p, ifRevision: ifRevision}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DryRunCreateEndpoint runs every check of CreateEndpoint (the stage the
// endpoint serves and its policy included) and writes nothing: the
// endpoint as it would be, or the error the create would get. Any token
// may ask; when every check passes but the token could not make the
// change itself, the answer is a permission_denied error whose Rule and
// message say what token it needs.
func (c *Client) DryRunCreateEndpoint(ctx context.Context, e registry.EndpointCreate) (*registry.Endpoint, error) {
	var out registry.EndpointDryRun
	q := url.Values{"dry_run": {"true"}}
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("endpoints"), query: q, body: e}, &out); err != nil {
		return nil, err
	}
	return dryRunEndpoint(out)
}

// DryRunUpdateEndpoint is DryRunCreateEndpoint for UpdateEndpoint.
func (c *Client) DryRunUpdateEndpoint(ctx context.Context, name string, p registry.EndpointPatch) (*registry.Endpoint, error) {
	var out registry.EndpointDryRun
	q := url.Values{"dry_run": {"true"}}
	if _, err := c.do(ctx, request{method: http.MethodPatch, path: apiPath("endpoints", name), query: q, body: p}, &out); err != nil {
		return nil, err
	}
	return dryRunEndpoint(out)
}

// dryRunEndpoint turns a dry run that the token may not apply into the
// error the write would get.
func dryRunEndpoint(out registry.EndpointDryRun) (*registry.Endpoint, error) {
	if !out.Permitted {
		return &out.Endpoint, &registry.Error{Code: registry.CodePermissionDenied, Rule: out.PermissionRule, Message: out.Permission}
	}
	return &out.Endpoint, nil
}

// ControlRollout pauses, resumes or aborts the endpoint's running rollout
// (op is registry.RolloutOpPause, RolloutOpResume or RolloutOpAbort) and
// returns the endpoint as it stands after. reason is kept in the event
// (and, for an abort, in the rollout's message); "" sends none. The
// registry answers conflict when the rollout's state does not allow op.
func (c *Client) ControlRollout(ctx context.Context, name, op, reason string) (*registry.Endpoint, error) {
	var body struct {
		Reason string `json:"reason,omitempty"`
	}
	body.Reason = reason
	var out registry.Endpoint
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("endpoints", name, "rollout", op), body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteEndpoint deletes an endpoint; ifRevision > 0 makes it conditional.
func (c *Client) DeleteEndpoint(ctx context.Context, name string, ifRevision int64) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: apiPath("endpoints", name), ifRevision: ifRevision}, nil)
	return err
}

// Events.

// ListEvents returns one page of the audit log, oldest first.
func (c *Client) ListEvents(ctx context.Context, f registry.EventFilter) (*registry.Page[registry.Event], error) {
	q := listQuery(f.ListOptions)
	if f.Model != "" {
		q.Set("model", f.Model)
	}
	if f.Endpoint != "" {
		q.Set("endpoint", f.Endpoint)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	var page registry.Page[registry.Event]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("events"), query: q}, &page); err != nil {
		return nil, err
	}
	return &page, nil
}
