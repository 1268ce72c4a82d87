package registry

import (
	"context"
	"sync/atomic"
)

// IdempotentCreate lets a create complete its request's idempotency claim
// in the transaction that writes the created object, so the change and
// the answer a retry will replay commit together: a crash between the two
// cannot leave the claim in flight (retries would get 409 for a minute,
// then run the create a second time).
//
// The server, having claimed Key with BeginIdempotent, puts one in the
// request's context with WithIdempotentCreate; Store.CreateModel,
// CreateVersion and CreateEndpoint find it there (see Store).
type IdempotentCreate struct {
	// Key is the claim, as passed to BeginIdempotent.
	Key IdempotencyKey
	// Response renders the answer to store for the created object (a
	// *Model, *ModelVersion or *Endpoint). The store calls it inside its
	// transaction, again if the transaction is retried, so it must do
	// nothing but render.
	Response func(created any) (IdempotencyRecord, error)

	committed atomic.Bool
}

// MarkCommitted is called by a Store once the transaction that completed
// the claim has committed.
func (c *IdempotentCreate) MarkCommitted() { c.committed.Store(true) }

// Committed reports whether a create stored the response and committed:
// the claim is complete and the caller must not complete or abandon it.
func (c *IdempotentCreate) Committed() bool { return c.committed.Load() }

type idempotentCreateKey struct{}

// WithIdempotentCreate returns ctx carrying c for the create made with it.
func WithIdempotentCreate(ctx context.Context, c *IdempotentCreate) context.Context {
	return context.WithValue(ctx, idempotentCreateKey{}, c)
}

// IdempotentCreateFrom returns the IdempotentCreate ctx carries, or nil.
func IdempotentCreateFrom(ctx context.Context) *IdempotentCreate {
	c, _ := ctx.Value(idempotentCreateKey{}).(*IdempotentCreate)
	return c
}
