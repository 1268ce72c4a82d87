package registry

import (
	"context"
	"sync/atomic"
)

// IdempotentWrite lets a write complete its request's idempotency claim
// in the transaction that makes the change, so the change and the answer
// a retry will replay commit together: a crash between the two cannot
// leave the claim in flight (retries would get 409 for a minute, then run
// the write a second time, and a conditional one would fail its If-Match
// against the revision it made itself).
//
// The server, having claimed Key with BeginIdempotent, puts one in the
// request's context with WithIdempotentWrite; the Store's creates,
// updates, deletes and stage changes find it there (see Store).
type IdempotentWrite struct {
	// Key is the claim, as passed to BeginIdempotent.
	Key IdempotencyKey
	// Response renders the answer to store for the object as the write
	// left it (a *Model, *ModelVersion, *StageAssignment or *Endpoint; nil
	// after a delete). The store calls it inside its transaction, again if
	// the transaction is retried, so it must do nothing but render.
	Response func(written any) (IdempotencyRecord, error)

	committed atomic.Bool
}

// MarkCommitted is called by a Store once the transaction that completed
// the claim has committed.
func (c *IdempotentWrite) MarkCommitted() { c.committed.Store(true) }

// Committed reports whether a write stored the response and committed:
// the claim is complete and the caller must not complete or abandon it.
func (c *IdempotentWrite) Committed() bool { return c.committed.Load() }

type idempotentWriteKey struct{}

// WithIdempotentWrite returns ctx carrying c for the write made with it.
func WithIdempotentWrite(ctx context.Context, c *IdempotentWrite) context.Context {
	return context.WithValue(ctx, idempotentWriteKey{}, c)
}

// IdempotentWriteFrom returns the IdempotentWrite ctx carries, or nil.
func IdempotentWriteFrom(ctx context.Context) *IdempotentWrite {
	c, _ := ctx.Value(idempotentWriteKey{}).(*IdempotentWrite)
	return c
}
