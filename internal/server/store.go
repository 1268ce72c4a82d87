package server

import (
	"context"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Store is what the API serves from, named from the registry's parts: it
// reads and writes models, versions, stages, endpoints and tokens, lists
// events, keeps idempotent outcomes and answers readiness. Of rollouts it
// only takes an operator's control (the driver moves them); of feedback
// it records items, reads series and lists receipt keys (rotating them is
// the Keyring's).
type Store interface {
	registry.ModelStore
	registry.VersionStore
	registry.StageStore
	registry.EndpointStore
	registry.EventStore
	registry.TokenStore
	registry.IdempotencyStore
	RolloutController
	FeedbackRecorder
	registry.Pinger
}

// RolloutController is the part of registry.RolloutStore the API uses.
type RolloutController interface {
	ControlRollout(ctx context.Context, actor registry.Actor, name, op, reason string) (*registry.Endpoint, error)
}

// FeedbackRecorder is the part of registry.FeedbackStore the API uses.
type FeedbackRecorder interface {
	ReceiptKeys(ctx context.Context) ([]registry.ReceiptKey, error)
	RecordFeedback(ctx context.Context, actor registry.Actor, endpoint string, items []registry.FeedbackRecord) (*registry.FeedbackResult, error)
	LiveSeries(ctx context.Context, q registry.LiveQuery) ([]registry.LiveSeries, error)
}

// Every registry.Store serves the API.
var _ Store = registry.Store(nil)
