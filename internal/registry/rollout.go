package registry

import (
	"context"
	"time"
)

// This file is the contract of progressive delivery, shared by the store,
// the API, the rollout driver, the gateway and the provider. Field and
// JSON names are the public interface: keep them.

// RolloutSpec is an endpoint's rollout configuration: how a change of its
// routes' weights or versions is moved into force. Creating an endpoint
// applies its weights at once; every later change of weights or versions
// starts a rollout from the weights in force (a change while a rollout
// runs starts a new one from where the running one stands).
type RolloutSpec struct {
	// Steps are percents of the way from the weights in force to the
	// configured weights, strictly increasing, each 1..100, ending at 100.
	Steps []int `json:"steps"`
	// Bake is how long each step holds before the next (a Go duration).
	// The last step bakes too: the rollout completes when its bake passes.
	Bake string `json:"bake"`
	// Gates, checked over each step's bake for the routes gaining weight
	// (what the gateway observed on them since the step began, summed over
	// every replica and gateway process). A step advances once its bake
	// has passed and every gate passed with at least MinRequests requests
	// on each gaining route; it waits for the requests otherwise. Any gate
	// failing (with MinRequests met) rolls the rollout back at once.
	MaxErrorRate  *float64 `json:"max_error_rate,omitempty"`
	MaxLatencyP99 string   `json:"max_latency_p99,omitempty"`
	MinRequests   int64    `json:"min_requests"`
	// Prometheus gates are instant queries against the Prometheus the
	// registry was given (--prometheus-url), checked when a step's bake
	// ends, once per gaining route.
	Prometheus []PrometheusGate `json:"prometheus,omitempty"`
	// MinLiveMetrics is checked when a step's bake ends, for each gaining
	// route's version: its trusted feedback on this endpoint since the step
	// began must hold at least MinLiveCount values (0 means
	// DefaultMinLiveCount) of each metric with a mean >= the floor. Too
	// few values hold the step; a lower mean rolls the rollout back.
	MinLiveMetrics map[string]float64 `json:"min_live_metrics,omitempty"`
	MinLiveCount   int64              `json:"min_live_count,omitempty"`
}

// PrometheusGate passes when the query's value compares to Threshold as
// Comparison says ("<", "<=", ">", ">="): value < threshold for "<". In
// Query, $endpoint, $route and $version are replaced by the endpoint's
// name, the gaining route's name and its version before it is sent. A
// query that fails, or returns no sample or more than one, fails the gate.
type PrometheusGate struct {
	Query      string  `json:"query"`
	Threshold  float64 `json:"threshold"`
	Comparison string  `json:"comparison"`
}

// Rollout states.
const (
	RolloutProgressing = "progressing"
	RolloutPaused      = "paused"
	RolloutCompleted   = "completed"
	RolloutRolledBack  = "rolled_back"
	RolloutAborted     = "aborted"
)

// Rollout event actions; every state change and step is one event, in the
// transaction that stores it.
const (
	ActionEndpointRolloutStarted    = "endpoint.rollout_started"
	ActionEndpointRolloutStep       = "endpoint.rollout_step"
	ActionEndpointRolloutPaused     = "endpoint.rollout_paused"
	ActionEndpointRolloutResumed    = "endpoint.rollout_resumed"
	ActionEndpointRolloutAborted    = "endpoint.rollout_aborted"
	ActionEndpointRolloutRolledBack = "endpoint.rollout_rolled_back"
	ActionEndpointRolloutCompleted  = "endpoint.rollout_completed"
)

// RolloutStatus is where an endpoint's latest rollout stands.
//
// While a rollout is progressing or paused, Endpoint.Routes are the
// configured (target) routes and Routes here are the weights in force:
// what every gateway serves. A route whose version changes appears twice
// in force: under its own name with the new version and under
// "<name>@v<old version>" with the old version's share that has not moved
// yet (that name can never clash: '@' is not allowed in route names).
// When the rollout completes, the configured routes are in force. When it
// is rolled back or aborted, the weights in force before it started are
// written back as the endpoint's routes (a new revision, status
// rolled_back with Message), so the next plan shows the drift.
type RolloutStatus struct {
	ID    int64  `json:"id"`
	State string `json:"state"`
	// Step is the 1-based index into StepPercents of the step in force.
	// StepPercents are the steps the rollout started with (a later change
	// of the configuration's steps applies to the next rollout); the name
	// differs from RolloutSpec.Steps because both share one JSON object.
	Step         int   `json:"step"`
	StepPercents []int `json:"step_percents"`
	// From are the weights in force when the rollout started; Routes the
	// weights in force now.
	From        []Route     `json:"from"`
	Routes      []Route     `json:"routes"`
	StartedAt   time.Time   `json:"started_at"`
	StepStarted time.Time   `json:"step_started_at"`
	NextStepAt  *time.Time  `json:"next_step_at,omitempty"`
	EndedAt     *time.Time  `json:"ended_at,omitempty"`
	LastGate    *GateResult `json:"last_gate,omitempty"`
	Message     string      `json:"message,omitempty"`
	// Seq grows with every change of this status (step, pause, gate
	// result); the gateway's poll compares it (EndpointRevision).
	Seq int64 `json:"seq"`
}

// GateResult is the latest gate evaluation of a rollout.
type GateResult struct {
	// Gate is "max_error_rate", "max_latency_p99", "min_requests" or
	// "prometheus[i]".
	Gate      string    `json:"gate"`
	Route     string    `json:"route,omitempty"`
	Version   int64     `json:"version,omitempty"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Passed    bool      `json:"passed"`
	Requests  int64     `json:"requests"`
	Message   string    `json:"message"`
	At        time.Time `json:"at"`
}

// EndpointRollout is the `rollout` object of an endpoint in the API: the
// configuration, and where its latest rollout stands (absent before the
// first rollout). Requests carry only the RolloutSpec fields.
type EndpointRollout struct {
	RolloutSpec
	*RolloutStatus
}

// RolloutObservation is what one gateway process observed on one route
// during one step of a rollout, cumulative since the step began.
type RolloutObservation struct {
	Endpoint  string `json:"endpoint"`
	RolloutID int64  `json:"rollout_id"`
	Step      int    `json:"step"`
	Route     string `json:"route"`
	Version   int64  `json:"version"`
	// Requests and Errors (5xx answers and transport errors) as the
	// gateway's guard counts them; Latency is LatencyBins long.
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Latency  []int64 `json:"latency"`
}

// Rollout control operations (POST /api/v1/endpoints/{name}/rollout/{op}).
const (
	RolloutOpPause  = "pause"
	RolloutOpResume = "resume"
	RolloutOpAbort  = "abort"
)

// RolloutStore is the persistence of rollouts. Starting a rollout is part
// of CreateEndpoint/UpdateEndpoint (same transaction, with its
// endpoint.rollout_started event).
type RolloutStore interface {
	// ActiveRollouts returns the endpoints whose rollout is progressing or
	// paused, sorted by name.
	ActiveRollouts(ctx context.Context) ([]Endpoint, error)
	// RecordRollout stores next as the endpoint's rollout status with one
	// event of action (one of the Action* rollout constants) in one
	// transaction, when the stored status is still rollout id and seq
	// expectedSeq (else precondition_failed: someone else moved it).
	// Rolling back writes From back as the routes (see RolloutStatus).
	RecordRollout(ctx context.Context, actor Actor, name string, id, expectedSeq int64, next RolloutStatus, action string) (*Endpoint, error)
	// ControlRollout pauses, resumes or aborts the endpoint's rollout for
	// an operator; conflict when its state does not allow op.
	ControlRollout(ctx context.Context, actor Actor, name, op, reason string) (*Endpoint, error)
	// RecordRolloutObservations replaces process's cumulative
	// observations (one row per endpoint, rollout, step, route, process).
	RecordRolloutObservations(ctx context.Context, process string, obs []RolloutObservation) error
	// RolloutObservations sums every process's observations of one step,
	// one entry per route.
	RolloutObservations(ctx context.Context, endpoint string, id int64, step int) ([]RolloutObservation, error)
	// AcquireLease takes or renews the named lease for holder until
	// now+ttl, and reports whether holder holds it: a lease is free once
	// it expired or its holder released it.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}
