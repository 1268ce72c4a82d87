package registry

import (
	"encoding/json"
	"time"
)

// Model is a registered model. Name is its identity.
type Model struct {
	Name          string                 `json:"name"`
	Description   string                 `json:"description"`
	Owner         string                 `json:"owner"`
	Tags          map[string]string      `json:"tags"`
	StagePolicies map[string]StagePolicy `json:"stage_policies"`
	CreatedAt     time.Time              `json:"created_at"`
	UpdatedAt     time.Time              `json:"updated_at"`
	Revision      int64                  `json:"revision"`
}

// StagePolicy is what a version must satisfy before it may be assigned to a
// stage. The zero value allows everything.
type StagePolicy struct {
	// RequireStage is a stage the version must hold now or have held.
	RequireStage string `json:"require_stage,omitempty"`
	// MinSoak is how long (Go duration, e.g. "24h") the version must have
	// held RequireStage, counting its longest uninterrupted hold.
	MinSoak string `json:"min_soak,omitempty"`
	// MinMetrics: each named metric must be present and >= the value.
	MinMetrics map[string]float64 `json:"min_metrics,omitempty"`
	// MaxMetrics: each named metric must be present and <= the value.
	MaxMetrics map[string]float64 `json:"max_metrics,omitempty"`
	// RequireSignatureMatch: the version's signature must equal that of the
	// version holding the stage now (if any).
	RequireSignatureMatch bool `json:"require_signature_match,omitempty"`
	// MinLiveMetrics: the mean of each named live metric, over the trusted
	// feedback of PolicyLiveWindow from every endpoint, must be >= the
	// value, over at least MinLiveCount values.
	MinLiveMetrics map[string]float64 `json:"min_live_metrics,omitempty"`
	// MinLiveCount is the fewest feedback values per metric that
	// MinLiveMetrics judges; 0 means DefaultMinLiveCount.
	MinLiveCount int64 `json:"min_live_count,omitempty"`
}

// ModelCreate is the body of POST /api/v1/models.
type ModelCreate struct {
	Name          string                 `json:"name"`
	Description   string                 `json:"description,omitempty"`
	Owner         string                 `json:"owner,omitempty"`
	Tags          map[string]string      `json:"tags,omitempty"`
	StagePolicies map[string]StagePolicy `json:"stage_policies,omitempty"`
}

// ModelPatch is the body of PATCH /api/v1/models/{model}. A nil field is
// left unchanged; a non-nil field replaces the stored value whole.
type ModelPatch struct {
	Description   *string                 `json:"description,omitempty"`
	Owner         *string                 `json:"owner,omitempty"`
	Tags          *map[string]string      `json:"tags,omitempty"`
	StagePolicies *map[string]StagePolicy `json:"stage_policies,omitempty"`
}

// Artifact formats a version may declare.
var Formats = []string{"onnx", "safetensors", "pytorch", "tensorflow", "sklearn", "xgboost", "pickle", "custom"}

// Lineage records where a version came from.
type Lineage struct {
	RunID     string `json:"run_id,omitempty"`
	GitCommit string `json:"git_commit,omitempty"`
	Dataset   string `json:"dataset,omitempty"`
	CodeURI   string `json:"code_uri,omitempty"`
}

// TensorSpec describes one input or output of a model signature.
// A shape dimension of -1 means "any size".
type TensorSpec struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
}

// Signature is a version's input/output contract.
type Signature struct {
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
}

// ModelVersion is one immutable artifact of a model. The artifact identity
// (source, checksum, format, parameters, metrics, lineage, signature) never
// changes after creation; description, tags and the flag may.
type ModelVersion struct {
	Model      string             `json:"model"`
	Version    int64              `json:"version"`
	Source     string             `json:"source"`
	Checksum   string             `json:"checksum"`
	Format     string             `json:"format"`
	Parameters map[string]string  `json:"parameters"`
	Metrics    map[string]float64 `json:"metrics"`
	Lineage    *Lineage           `json:"lineage,omitempty"`
	Signature  *Signature         `json:"signature,omitempty"`

	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	Flagged     bool              `json:"flagged"`
	FlagReason  string            `json:"flag_reason"`

	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	UpdatedAt time.Time `json:"updated_at"`
	// Stages lists the stages pointing at this version, sorted.
	Stages   []string `json:"stages"`
	Revision int64    `json:"revision"`
}

// ModelVersionCreate is the body of POST /api/v1/models/{model}/versions.
type ModelVersionCreate struct {
	Source      string             `json:"source"`
	Checksum    string             `json:"checksum"`
	Format      string             `json:"format"`
	Parameters  map[string]string  `json:"parameters,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Lineage     *Lineage           `json:"lineage,omitempty"`
	Signature   *Signature         `json:"signature,omitempty"`
	Description string             `json:"description,omitempty"`
	Tags        map[string]string  `json:"tags,omitempty"`
	Flagged     bool               `json:"flagged,omitempty"`
	FlagReason  string             `json:"flag_reason,omitempty"`
}

// ModelVersionPatch is the body of PATCH .../versions/{version}. Only the
// mutable fields exist here; the server rejects artifact fields by name.
type ModelVersionPatch struct {
	Description *string            `json:"description,omitempty"`
	Tags        *map[string]string `json:"tags,omitempty"`
	Flagged     *bool              `json:"flagged,omitempty"`
	FlagReason  *string            `json:"flag_reason,omitempty"`
	// AddMetrics records metrics the version does not have yet (an
	// evaluation that finished after registration). A recorded metric
	// never changes: a key the version has with another value is refused
	// (rule "immutable"), the same value again is no change.
	AddMetrics map[string]float64 `json:"add_metrics,omitempty"`
}

// StageAssignment says which version a model's stage points at.
type StageAssignment struct {
	Model   string `json:"model"`
	Stage   string `json:"stage"`
	Version int64  `json:"version"`
	// PreviousVersion is the version the stage pointed at before this
	// assignment, 0 when it was unassigned.
	PreviousVersion int64     `json:"previous_version"`
	AssignedAt      time.Time `json:"assigned_at"`
	AssignedBy      string    `json:"assigned_by"`
	Reason          string    `json:"reason"`
	Revision        int64     `json:"revision"`
}

// StageAssign is the body of PUT .../stages/{stage}.
type StageAssign struct {
	Version int64  `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// Stage history actions.
const (
	StageActionAssign   = "assign"
	StageActionUnassign = "unassign"
)

// StageHistoryEntry is one change of a stage. For an unassign, Version is 0
// and PreviousVersion is the version that lost the stage.
type StageHistoryEntry struct {
	ID              int64     `json:"id"`
	Model           string    `json:"model"`
	Stage           string    `json:"stage"`
	Action          string    `json:"action"`
	Version         int64     `json:"version"`
	PreviousVersion int64     `json:"previous_version"`
	AssignedAt      time.Time `json:"assigned_at"`
	AssignedBy      string    `json:"assigned_by"`
	Reason          string    `json:"reason"`
}

// StageDryRun is the answer of PUT .../stages/{stage}?dry_run=true when the
// assignment would be allowed.
type StageDryRun struct {
	// Allowed is true: the stage policy allows the assignment (a policy
	// violation is answered as a 422 policy_violation problem instead).
	Allowed         bool   `json:"allowed"`
	Model           string `json:"model"`
	Stage           string `json:"stage"`
	Version         int64  `json:"version"`
	PreviousVersion int64  `json:"previous_version"`
	// Permitted says whether the calling token may make this change itself
	// (write scope, and the stage among its stages when it is restricted).
	// A read token may ask; the answer is then false with Permission
	// saying what token the change needs.
	Permitted  bool   `json:"permitted"`
	Permission string `json:"permission,omitempty"`
	// PermissionRule says why not, for programs: "scope" (the token has
	// no write scope: a read token) or "token_stages" (a write token
	// restricted to other stages).
	PermissionRule string `json:"permission_rule,omitempty"`
}

// EndpointDryRun answers POST /endpoints?dry_run=true and PATCH
// /endpoints/{name}?dry_run=true when every check passed: the endpoint as
// the write would store it, and, as for a stage dry run, whether the
// calling token may make the change itself. Any token may ask (a read
// token's drift plan does); a failed check is answered as the write's
// error instead.
type EndpointDryRun struct {
	Endpoint
	Permitted      bool   `json:"permitted"`
	Permission     string `json:"permission,omitempty"`
	PermissionRule string `json:"permission_rule,omitempty"`
}

// Endpoint statuses.
const (
	EndpointStatusHealthy    = "healthy"
	EndpointStatusRolledBack = "rolled_back"
	// EndpointStatusDrained: a version the routes served was flagged, and
	// the routes serving it lost their weight (moved to the largest
	// unflagged route; none left: every weight is 0 and the gateway
	// answers 503). StatusMessage names the version and the flag reason.
	EndpointStatusDrained = "drained"
	// EndpointStatusDegraded: every route failed the guard at once, so it
	// moved no weight (there was nowhere healthy to move it).
	EndpointStatusDegraded = "degraded"
)

// Route is one weighted target of an endpoint.
type Route struct {
	Name        string `json:"name"`
	Version     int64  `json:"version"`
	UpstreamURL string `json:"upstream_url"`
	Weight      int    `json:"weight"`
	// Match, when set, sends every request carrying the header value to
	// this route whatever the weights; the others are split by weight.
	Match *RouteMatch `json:"match,omitempty"`
	// Shadow routes get no weight and no match: they receive a copy of
	// Share (0 < Share <= 1) of the endpoint's requests, bodies included
	// up to a documented size; their answers are discarded and their
	// status codes and latency recorded per version.
	Shadow bool    `json:"shadow,omitempty"`
	Share  float64 `json:"share,omitempty"`
}

// RouteMatch selects requests by one header: its value equals Value, or
// starts with it when Prefix is set.
type RouteMatch struct {
	Header string `json:"header"`
	Value  string `json:"value"`
	Prefix bool   `json:"prefix"`
}

// Guard configures automatic rollback of a failing route.
type Guard struct {
	MaxErrorRate float64 `json:"max_error_rate"`
	MinRequests  int64   `json:"min_requests"`
	Window       string  `json:"window"`
	// LiveMetric, when set, also rolls back a route whose live metric
	// falls below a floor.
	LiveMetric *GuardLiveMetric `json:"live_metric,omitempty"`
}

// Endpoint serves a model's versions under /serve/{name}/.
type Endpoint struct {
	Name  string `json:"name"`
	Model string `json:"model"`
	// Stage, when set, is the stage the endpoint serves: every route's
	// version must hold that stage or satisfy its stage policy.
	Stage        string  `json:"stage"`
	Routes       []Route `json:"routes"`
	StickyHeader string  `json:"sticky_header"`
	Guard        *Guard  `json:"guard,omitempty"`
	// Rollout is the rollout configuration and where the latest rollout
	// stands (see RolloutStatus).
	Rollout *EndpointRollout `json:"rollout,omitempty"`
	// Timeout bounds how long the gateway waits for an upstream's answer
	// to start (a Go duration, 100ms to 10m); "" is the default, 30s.
	Timeout string `json:"timeout"`
	// Status is healthy; rolled_back after the guard moved traffic;
	// drained after a flagged version lost its weight; degraded when every
	// route failed the guard. Setting routes resets it to healthy.
	Status        string    `json:"status"`
	StatusMessage string    `json:"status_message"`
	URL           string    `json:"url"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	Revision      int64     `json:"revision"`
}

// EndpointCreate is the body of POST /api/v1/endpoints.
type EndpointCreate struct {
	Name         string  `json:"name"`
	Model        string  `json:"model"`
	Stage        string  `json:"stage,omitempty"`
	Routes       []Route `json:"routes"`
	StickyHeader string  `json:"sticky_header,omitempty"`
	Guard        *Guard  `json:"guard,omitempty"`
	Timeout      string  `json:"timeout,omitempty"`
	// Rollout configures how later changes of the routes are rolled out;
	// the created endpoint's weights apply at once.
	Rollout *RolloutSpec `json:"rollout,omitempty"`
}

// EndpointPatch is the body of PATCH /api/v1/endpoints/{endpoint}. Setting
// routes resets a rolled_back status to healthy. Guard: a JSON null is not
// distinguishable from absent, so ClearGuard removes it.
type EndpointPatch struct {
	// Stage: "" clears it.
	Stage        *string  `json:"stage,omitempty"`
	Routes       *[]Route `json:"routes,omitempty"`
	StickyHeader *string  `json:"sticky_header,omitempty"`
	Guard        *Guard   `json:"guard,omitempty"`
	ClearGuard   bool     `json:"clear_guard,omitempty"`
	// Rollout replaces the rollout configuration; ClearRollout removes it
	// (a running rollout then completes at once).
	Rollout      *RolloutSpec `json:"rollout,omitempty"`
	ClearRollout bool         `json:"clear_rollout,omitempty"`
	// Timeout: "" restores the default.
	Timeout *string `json:"timeout,omitempty"`
}

// Event is one audit log entry. Events are append-only and written in the
// same transaction as the change they describe.
type Event struct {
	ID          int64           `json:"id"`
	Time        time.Time       `json:"time"`
	Actor       string          `json:"actor"`
	Action      string          `json:"action"`
	SubjectType string          `json:"subject_type"`
	Subject     string          `json:"subject"`
	Model       string          `json:"model,omitempty"`
	Endpoint    string          `json:"endpoint,omitempty"`
	Before      json.RawMessage `json:"before,omitempty"`
	After       json.RawMessage `json:"after,omitempty"`
	RequestID   string          `json:"request_id,omitempty"`
}

// Event actions.
const (
	ActionModelCreate           = "model.create"
	ActionModelUpdate           = "model.update"
	ActionModelDelete           = "model.delete"
	ActionVersionCreate         = "version.create"
	ActionVersionUpdate         = "version.update"
	ActionVersionDelete         = "version.delete"
	ActionStageAssign           = "stage.assign"
	ActionStageUnassign         = "stage.unassign"
	ActionEndpointCreate        = "endpoint.create"
	ActionEndpointUpdate        = "endpoint.update"
	ActionEndpointDelete        = "endpoint.delete"
	ActionEndpointGuardRollback = "endpoint.guard_rollback"
	ActionEndpointGuardDegraded = "endpoint.guard_degraded"
	ActionEndpointFlagDrain     = "endpoint.flag_drain"
	ActionTokenCreate           = "token.create"
	ActionTokenRevoke           = "token.revoke"
)

// Scope is what a token may do. Scopes are ordered: admin > write > read.
type Scope string

// Token scopes.
const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write"
	ScopeAdmin Scope = "admin"
	// ScopeServe may call the gateway (/serve/) and nothing else: an
	// inference client needs no access to the audit log or to the
	// endpoints' upstream URLs. It is not a rank below read but a
	// separate capability, which every other scope holds too.
	ScopeServe Scope = "serve"
)

// Allows reports whether a token of scope s may do what needs scope need.
// Every valid scope allows ScopeServe; a serve token allows nothing else.
func (s Scope) Allows(need Scope) bool {
	if need == ScopeServe {
		return s == ScopeServe || s.rank() > 0
	}
	return s.rank() >= need.rank() && s.rank() > 0
}

// valid reports whether s is one of the token scopes.
func (s Scope) valid() bool { return s == ScopeServe || s.rank() > 0 }

func (s Scope) rank() int {
	switch s {
	case ScopeRead:
		return 1
	case ScopeWrite:
		return 2
	case ScopeAdmin:
		return 3
	}
	return 0
}

// Token is an API credential. Only the SHA-256 of its secret is stored.
type Token struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
	// Stages, when not empty, are the only stages this token may assign or
	// unassign.
	Stages []string `json:"stages"`
	// Endpoints, when not empty, are the only endpoints a serve token may
	// call through the gateway (other scopes take none).
	Endpoints  []string   `json:"endpoints,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// ExpiresAt, when set, is when the token stops working: an expired
	// token is refused like a revoked one.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// State is active, revoked or expired, as the store saw it when it
	// read the token (see Token.StateAt).
	State string `json:"state"`
	// Hash is the SHA-256 of the secret; never serialised.
	Hash []byte `json:"-"`
}

// MayAssignStage reports whether the token may change the given stage.
func (t *Token) MayAssignStage(stage string) bool {
	if !t.Scope.Allows(ScopeWrite) {
		return false
	}
	if len(t.Stages) == 0 {
		return true
	}
	for _, s := range t.Stages {
		if s == stage {
			return true
		}
	}
	return false
}

// MayServe reports whether the token may call endpoint through the
// gateway: every scope may, a serve token limited to endpoints only those.
// The server's /serve/ auth and the gateway's fast lane both ask this.
func (t *Token) MayServe(endpoint string) bool {
	if !t.Scope.Allows(ScopeServe) {
		return false
	}
	if len(t.Endpoints) == 0 {
		return true
	}
	for _, e := range t.Endpoints {
		if e == endpoint {
			return true
		}
	}
	return false
}

// Page is one page of a list answer.
type Page[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"next_page_token"`
}
