package registry

import (
	"context"
	"slices"
	"time"
)

// Actor identifies who makes a change; it lands in the audit event and in
// created_by / assigned_by fields.
type Actor struct {
	// Name is the token name ("system" for the gateway's guard).
	Name string
	// RequestID ties the event to the HTTP request that caused it.
	RequestID string
	// Stages, when not empty, is the stage restriction of the actor's
	// token. The store enforces in the write's transaction what depends
	// on stored data: such an actor may not flag a version that holds a
	// stage outside Stages or serves traffic on an endpoint bound to one,
	// may not unflag, and may change only a flag reason it set itself.
	Stages []string
}

// ListOptions pages through a list. PageToken is opaque: whatever the store
// returned as NextPageToken.
type ListOptions struct {
	PageSize  int
	PageToken string
}

// VersionFilter narrows and orders a version list.
type VersionFilter struct {
	ListOptions
	// Stage keeps versions that hold this stage now.
	Stage string
	// Tag keeps versions with this tag, "key" (any value) or "key=value".
	Tag string
	// Flagged, when set, keeps versions whose flag equals it.
	Flagged *bool
	// OrderBy is "version", "version desc", "metrics.<name>" or
	// "metrics.<name> desc". Default "version". Versions without the metric
	// come last in both directions.
	OrderBy string
}

// EventFilter narrows the audit log. Events come oldest first.
type EventFilter struct {
	ListOptions
	Model    string
	Endpoint string
	// Since keeps events at or after this time (zero: all).
	Since time.Time
}

// Precondition is an optional optimistic concurrency check: when
// IfRevision is > 0 the write fails with precondition_failed unless the
// stored revision equals it or one of OrRevisions (an If-Match list of
// several entity-tags).
type Precondition struct {
	IfRevision  int64
	OrRevisions []int64
}

// Holds reports whether a resource at revision current passes the check.
func (p Precondition) Holds(current int64) bool {
	if p.IfRevision <= 0 || p.IfRevision == current {
		return true
	}
	return slices.Contains(p.OrRevisions, current)
}

// DeleteModelOptions controls DeleteModel.
type DeleteModelOptions struct {
	Precondition
	// Force deletes the model's versions and stage assignments too.
	// Without it, a model with versions cannot be deleted.
	Force bool
}

// AssignOptions controls AssignStage.
type AssignOptions struct {
	Precondition
	// DryRun runs every check and writes nothing.
	DryRun bool
}

// IdempotencyKey identifies an idempotent request. A key belongs to its
// token (another token's key of the same spelling is another key) and
// names one request: the same token using it again with another method,
// path or body is refused. Path is the route's pattern with its wildcards filled
// with the decoded path values, so two spellings of one URL
// (/models/idem%2Da/versions, /models/idem-a/versions) are one key.
// RequestHash is the SHA-256 of the body and decides whether a replay is
// the same request.
type IdempotencyKey struct {
	TokenID     int64
	Key         string
	Method      string
	Path        string
	RequestHash string
}

// IdempotencyRecord is the stored outcome of an idempotent request.
type IdempotencyRecord struct {
	// Completed is false while the first request is still in flight.
	Completed bool
	// Method, Path and RequestHash are those of the request that holds
	// the key: a key is one request of one token, so another request
	// under it is refused, not run.
	Method      string
	Path        string
	RequestHash string
	StatusCode  int
	// Headers holds the replayed response headers (Content-Type, ETag, Location).
	Headers   map[string]string
	Body      []byte
	CreatedAt time.Time
}

// EndpointRevision identifies one stored state of an endpoint: Revision
// grows with every change; CreatedAt tells an endpoint deleted and created
// again (back at revision 1) from the one it replaced.
type EndpointRevision struct {
	Revision  int64
	CreatedAt time.Time
	// RolloutSeq is the Seq of the endpoint's rollout status (0 without
	// one): a rollout step changes what the gateway serves without
	// changing the configuration's revision.
	RolloutSeq int64
}

// Store is the registry's persistence: one interface per aggregate,
// composed. Every write runs in one transaction together with its audit
// event; every rule that needs stored data (stage policies, checksum
// uniqueness, version numbering, revisions) is decided inside that
// transaction. Errors are *Error values with registry codes, except when
// ctx ends before the store is done: then the error wraps ctx.Err()
// (context.Canceled or context.DeadlineExceeded), because the caller
// stopped waiting and the database did not fail. These rules hold for
// every part below; a consumer takes the parts it uses.
type Store interface {
	ModelStore
	VersionStore
	StageStore
	EndpointStore
	EventStore
	TokenStore
	IdempotencyStore
	RolloutStore
	FeedbackStore
	Pinger
	Close() error
}

// ModelStore is the persistence of models.
type ModelStore interface {
	CreateModel(ctx context.Context, actor Actor, m ModelCreate) (*Model, error)
	GetModel(ctx context.Context, name string) (*Model, error)
	ListModels(ctx context.Context, opts ListOptions) (*Page[Model], error)
	UpdateModel(ctx context.Context, actor Actor, name string, p ModelPatch, pre Precondition) (*Model, error)
	// DeleteModel fails with conflict while versions exist (unless Force)
	// or while an endpoint refers to the model.
	DeleteModel(ctx context.Context, actor Actor, name string, opts DeleteModelOptions) error
}

// VersionStore is the persistence of model versions.
type VersionStore interface {
	// CreateVersion assigns the next number, never reused, and fails with
	// already_exists naming the live version with the same checksum.
	CreateVersion(ctx context.Context, actor Actor, model string, v ModelVersionCreate) (*ModelVersion, error)
	GetVersion(ctx context.Context, model string, version int64) (*ModelVersion, error)
	ListVersions(ctx context.Context, model string, f VersionFilter) (*Page[ModelVersion], error)
	// UpdateVersion changes a version's mutable fields and adds the
	// patch's AddMetrics the version does not have (AddMetrics: a recorded
	// value never changes), keeping every metric filter and order in step
	// in the same transaction. Flagging is the
	// emergency stop: in the same transaction every endpoint route to a
	// flagged version loses its weight, moved to the endpoint's largest
	// route to an unflagged version (none: every weight ends at 0), and
	// each endpoint it changed gets status drained, a new revision and an
	// endpoint.flag_drain event. VersionEndpoints names them afterwards.
	UpdateVersion(ctx context.Context, actor Actor, model string, version int64, p ModelVersionPatch, pre Precondition) (*ModelVersion, error)
	// VersionEndpoints names the endpoints with a route to the version,
	// whatever its weight, sorted (after a flag: the endpoints whose
	// routing the flag may have changed).
	VersionEndpoints(ctx context.Context, model string, version int64) ([]string, error)
	// DeleteVersion fails with conflict while the version holds a stage or
	// an endpoint routes to it.
	DeleteVersion(ctx context.Context, actor Actor, model string, version int64, pre Precondition) error
}

// StageStore is the persistence of stage assignments and their history.
type StageStore interface {
	// AssignStage enforces CheckAssignment inside the transaction.
	// With DryRun it returns the assignment that would be written.
	AssignStage(ctx context.Context, actor Actor, model, stage string, req StageAssign, opts AssignOptions) (*StageAssignment, error)
	GetStage(ctx context.Context, model, stage string) (*StageAssignment, error)
	ListStages(ctx context.Context, model string) ([]StageAssignment, error)
	// UnassignStage removes a stage's assignment; reason (may be empty) is
	// kept in the stage's history and the event.
	UnassignStage(ctx context.Context, actor Actor, model, stage, reason string, pre Precondition) error
	// StageHistory lists a stage's changes, newest first.
	StageHistory(ctx context.Context, model, stage string, opts ListOptions) (*Page[StageHistoryEntry], error)
	// VersionStageHistory lists every stage change that gave the version a
	// stage or took one from it, newest first.
	VersionStageHistory(ctx context.Context, model string, version int64) ([]StageHistoryEntry, error)
}

// EndpointStore is the persistence of endpoints. Create and update check
// that the model exists and every route's version exists and, unless the
// route's weight is 0, is not flagged; when the endpoint names the stage
// it serves, every route's version with weight or unflagged holds that
// stage or satisfies its stage policy (a flagged version at weight 0 gets
// no traffic, so it is not judged).
type EndpointStore interface {
	CreateEndpoint(ctx context.Context, actor Actor, e EndpointCreate) (*Endpoint, error)
	GetEndpoint(ctx context.Context, name string) (*Endpoint, error)
	ListEndpoints(ctx context.Context, opts ListOptions) (*Page[Endpoint], error)
	UpdateEndpoint(ctx context.Context, actor Actor, name string, p EndpointPatch, pre Precondition) (*Endpoint, error)
	// CheckEndpointCreate and CheckEndpointUpdate run every check of
	// CreateEndpoint and UpdateEndpoint (dry runs) and write nothing.
	CheckEndpointCreate(ctx context.Context, actor Actor, e EndpointCreate) (*Endpoint, error)
	CheckEndpointUpdate(ctx context.Context, actor Actor, name string, p EndpointPatch, pre Precondition) (*Endpoint, error)
	DeleteEndpoint(ctx context.Context, actor Actor, name string, pre Precondition) error
	// RecordGuardRollback stores routes observed after the guard moved
	// traffic, sets status rolled_back with message, and writes an
	// endpoint.guard_rollback event, all in one transaction. It fails with
	// precondition_failed when the endpoint's revision is no longer
	// expectedRevision (someone changed it meanwhile).
	RecordGuardRollback(ctx context.Context, actor Actor, name string, expectedRevision int64, routes []Route, message string) (*Endpoint, error)
	// RecordGuardDegraded records that every route failed the guard: the
	// routes stay as they are, status becomes degraded with message, and
	// an endpoint.guard_degraded event is written, in one transaction,
	// with the same precondition as RecordGuardRollback.
	RecordGuardDegraded(ctx context.Context, actor Actor, name string, expectedRevision int64, message string) (*Endpoint, error)
	// EndpointRevisions returns every endpoint's revision stamp, keyed by
	// name, read in one statement. Every change to what an endpoint routes
	// (create, update, guard rollback, delete) changes its stamp, so a
	// reader that compares stamps with what it loaded misses no change,
	// whatever order concurrent writes commit in.
	EndpointRevisions(ctx context.Context) (map[string]EndpointRevision, error)
}

// EventStore reads the audit log; events are written by the writes they
// record, in their transactions.
type EventStore interface {
	ListEvents(ctx context.Context, f EventFilter) (*Page[Event], error)
}

// TokenStore is the persistence of API tokens. The secret itself is never
// stored; t.Hash is.
type TokenStore interface {
	CreateToken(ctx context.Context, actor Actor, t Token) (*Token, error)
	// TokenByHash returns an unrevoked token, or not_found. An expired
	// token is returned (State expired): the caller refuses it.
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// TokenByID returns a token, revoked or not, or not_found.
	TokenByID(ctx context.Context, id int64) (*Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken revokes the unrevoked token of that name.
	RevokeToken(ctx context.Context, actor Actor, name string) error
	// RevokeTokenByID revokes a token by id (names repeat after a revoke
	// and re-create) and returns it; conflict when it is already revoked.
	RevokeTokenByID(ctx context.Context, actor Actor, id int64) (*Token, error)
	// TouchToken records the token's last use (best effort, may be coarse).
	TouchToken(ctx context.Context, id int64, at time.Time) error
}

// IdempotencyStore keeps the outcomes of idempotent requests.
//
// The writes a client may retry (CreateModel, UpdateModel, DeleteModel,
// CreateVersion, UpdateVersion, DeleteVersion, AssignStage but its dry
// run, UnassignStage, CreateEndpoint, UpdateEndpoint, DeleteEndpoint)
// complete the claim of an IdempotentWrite in their ctx
// (WithIdempotentWrite) in their own transaction: they store
// Response(written) as the completed record (written is nil after a
// delete) and call MarkCommitted after the commit. When the claim is no
// longer in flight (completed, or taken over by a retry after a minute)
// the write fails with conflict and changes nothing. A write that fails
// leaves the claim in flight for the caller to complete or abandon.
type IdempotencyStore interface {
	// BeginIdempotent claims the key: when the token has no live record
	// under it, it stores an in-flight record and returns (nil, nil); else
	// it returns the existing record (completed or in flight, of this
	// request or of another one the caller must refuse). Records older
	// than ttl are replaced. An in-flight record older than a minute is
	// considered abandoned and is claimed again.
	BeginIdempotent(ctx context.Context, k IdempotencyKey, ttl time.Duration) (*IdempotencyRecord, error)
	// CompleteIdempotent stores the outcome of a request that wrote nothing
	// (a 4xx answer), or of one whose write did not complete the claim.
	CompleteIdempotent(ctx context.Context, k IdempotencyKey, rec IdempotencyRecord) error
	// AbandonIdempotent drops an in-flight record (the request failed
	// before writing anything), so a retry can run again.
	AbandonIdempotent(ctx context.Context, k IdempotencyKey) error
	PurgeIdempotency(ctx context.Context, olderThan time.Time) (int64, error)
}

// Pinger checks the database (readiness).
type Pinger interface {
	Ping(ctx context.Context) error
}
