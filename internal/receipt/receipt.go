// Package receipt signs and verifies prediction receipts: the
// X-Prediction-Receipt an answer through /serve/ carries, which the
// application hands back with feedback. A receipt is HMAC-SHA256 over the
// request ID, endpoint, route, model, version and issue time, under a key
// the database holds, so every replica and gateway process signs receipts
// the others accept. The key's ID travels in the receipt, so keys rotate:
// the newest key signs, older ones verify until the receipts they signed
// expire.
//
// It imports registry only (the store comes in as registry.ReceiptKeyStore).
package receipt

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// A receipt is base64url(payload) "." base64url(mac), where payload is
// "1|kid|issued unix seconds|endpoint|route|model|version|request id" and
// mac the first macLen bytes of HMAC-SHA256(key, payload). No field can
// hold '|': names, route names and request IDs are checked for it.
const (
	formatVersion = "1"
	macLen        = 16
	// MaxLen bounds a receipt a verifier looks at.
	MaxLen = 1024
	// clockSkew is how far in the future an issue time may lie (replicas'
	// clocks differ a little).
	clockSkew = 5 * time.Minute
	// SecretLen is the length of a fresh key.
	SecretLen = 32
)

var b64 = base64.RawURLEncoding

// Errors Verify returns; each is a reason an item of feedback is refused.
var (
	ErrMalformed = errors.New("receipt is malformed")
	ErrForged    = errors.New("receipt signature does not verify (forged, altered, or signed by a key that no longer verifies)")
	ErrExpired   = errors.New("receipt expired")
)

// key is a receipt key ready to sign: its HMAC states are reused from a
// pool (Reset keeps the key's precomputed pads).
type key struct {
	id    int64
	idStr string
	pool  sync.Pool
}

func newKey(k registry.ReceiptKey) *key {
	secret := append([]byte(nil), k.Secret...)
	kk := &key{id: k.ID, idStr: strconv.FormatInt(k.ID, 10)}
	kk.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return kk
}

func (k *key) mac(dst, payload []byte) []byte {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(payload)
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	k.pool.Put(h)
	return append(dst, out[:macLen]...)
}

// ring is one immutable set of keys, newest first.
type ring struct {
	keys []*key
	byID map[int64]*key
}

// Options configures a Keyring.
type Options struct {
	// Now is the clock of issue times and expiry; nil means time.Now.
	Now func() time.Time
	// Validity is how long a receipt verifies; 0 means
	// registry.ReceiptValidity.
	Validity time.Duration
}

// Keyring signs and verifies receipts with the keys the store holds.
type Keyring struct {
	store    registry.ReceiptKeyStore
	now      func() time.Time
	validity time.Duration
	ring     atomic.Pointer[ring]
	// reloadMu serialises reloads; lastMiss rate-limits the reloads an
	// unknown key ID causes, so forged IDs cannot hammer the database.
	reloadMu sync.Mutex
	lastMiss time.Time
}

// Open loads the store's keys, storing a fresh first key when there is
// none.
func Open(ctx context.Context, st registry.ReceiptKeyStore, opts Options) (*Keyring, error) {
	kr := &Keyring{store: st, now: opts.Now, validity: opts.Validity}
	if kr.now == nil {
		kr.now = time.Now
	}
	if kr.validity <= 0 {
		kr.validity = registry.ReceiptValidity
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	keys, err := st.EnsureReceiptKey(ctx, secret)
	if err != nil {
		return nil, fmt.Errorf("receipt keys: %w", err)
	}
	if err := kr.set(keys); err != nil {
		return nil, err
	}
	return kr, nil
}

// NewSecret returns a fresh random key secret.
func NewSecret() ([]byte, error) {
	b := make([]byte, SecretLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	return b, nil
}

func (kr *Keyring) set(keys []registry.ReceiptKey) error {
	if len(keys) == 0 {
		return errors.New("receipt keys: the database holds none")
	}
	r := &ring{byID: make(map[int64]*key, len(keys))}
	old := kr.ring.Load()
	for _, k := range keys {
		var kk *key
		if old != nil {
			kk = old.byID[k.ID] // keep its pooled states
		}
		if kk == nil {
			kk = newKey(k)
		}
		r.keys = append(r.keys, kk)
		r.byID[k.ID] = kk
	}
	kr.ring.Store(r)
	return nil
}

// Reload reads the keys again (another process may have rotated them).
func (kr *Keyring) Reload(ctx context.Context) error {
	kr.reloadMu.Lock()
	defer kr.reloadMu.Unlock()
	keys, err := kr.store.ReceiptKeys(ctx)
	if err != nil {
		return fmt.Errorf("receipt keys: %w", err)
	}
	return kr.set(keys)
}

// Run reloads the keys every interval until ctx ends, so a rotation made
// by another process takes over signing here too.
func (kr *Keyring) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			_ = kr.Reload(ctx) // kept keys still sign; the next tick retries
		}
	}
}

// Rotate stores a fresh signing key and starts signing with it; the
// previous keys keep verifying for the receipt validity.
func (kr *Keyring) Rotate(ctx context.Context, actor registry.Actor) (*registry.ReceiptKey, error) {
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	k, err := kr.store.RotateReceiptKey(ctx, actor, secret)
	if err != nil {
		return nil, err
	}
	if err := kr.Reload(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// Validity is how long a receipt verifies after it was issued.
func (kr *Keyring) Validity() time.Duration { return kr.validity }

// Sign returns the receipt for r, signed with the newest key; r.KeyID and
// r.IssuedAt are ignored (the key and the keyring's clock decide them).
func (kr *Keyring) Sign(r registry.Receipt) string {
	k := kr.ring.Load().keys[0]
	var buf [256]byte
	p := append(buf[:0], formatVersion...)
	p = append(p, '|')
	p = append(p, k.idStr...)
	p = append(p, '|')
	p = strconv.AppendInt(p, kr.now().Unix(), 10)
	p = append(p, '|')
	p = append(p, r.Endpoint...)
	p = append(p, '|')
	p = append(p, r.Route...)
	p = append(p, '|')
	p = append(p, r.Model...)
	p = append(p, '|')
	p = strconv.AppendInt(p, r.Version, 10)
	p = append(p, '|')
	p = append(p, r.RequestID...)
	var macBuf [macLen]byte
	mac := k.mac(macBuf[:0], p)
	out := make([]byte, b64.EncodedLen(len(p))+1+b64.EncodedLen(macLen))
	b64.Encode(out, p)
	n := b64.EncodedLen(len(p))
	out[n] = '.'
	b64.Encode(out[n+1:], mac)
	return string(out)
}

// Verify checks a receipt's signature and age and returns what it
// certifies. An unknown key ID makes it read the keys again (at most once
// a second), in case another process rotated them a moment ago.
func (kr *Keyring) Verify(ctx context.Context, s string) (registry.Receipt, error) {
	var r registry.Receipt
	if s == "" || len(s) > MaxLen {
		return r, ErrMalformed
	}
	enc, encMAC, ok := strings.Cut(s, ".")
	if !ok {
		return r, ErrMalformed
	}
	payload, err := b64.DecodeString(enc)
	if err != nil {
		return r, ErrMalformed
	}
	mac, err := b64.DecodeString(encMAC)
	if err != nil || len(mac) != macLen {
		return r, ErrMalformed
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 8 || f[0] != formatVersion {
		return r, ErrMalformed
	}
	if r.KeyID, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return r, ErrMalformed
	}
	issued, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return r, ErrMalformed
	}
	r.IssuedAt = time.Unix(issued, 0).UTC()
	r.Endpoint, r.Route, r.Model = f[3], f[4], f[5]
	if r.Version, err = strconv.ParseInt(f[6], 10, 64); err != nil || r.Version <= 0 {
		return r, ErrMalformed
	}
	r.RequestID = f[7]
	if r.Endpoint == "" || r.Route == "" || r.Model == "" || !registry.ValidRequestID(r.RequestID) {
		return r, ErrMalformed
	}

	k := kr.ring.Load().byID[r.KeyID]
	if k == nil {
		k = kr.missed(ctx, r.KeyID)
	}
	if k == nil {
		return r, ErrForged
	}
	var want [macLen]byte
	if !hmac.Equal(k.mac(want[:0], payload), mac) {
		return r, ErrForged
	}
	now := kr.now()
	if r.IssuedAt.After(now.Add(clockSkew)) {
		return r, ErrMalformed
	}
	if !now.Before(r.IssuedAt.Add(kr.validity)) {
		return r, fmt.Errorf("%w: issued %s, valid for %s", ErrExpired, r.IssuedAt.Format(time.RFC3339), kr.validity)
	}
	return r, nil
}

// missed reloads the keys for an unknown key ID, at most once a second.
func (kr *Keyring) missed(ctx context.Context, id int64) *key {
	kr.reloadMu.Lock()
	now := kr.now()
	due := now.Sub(kr.lastMiss) >= time.Second || now.Before(kr.lastMiss)
	if due {
		kr.lastMiss = now
	}
	kr.reloadMu.Unlock()
	if due {
		_ = kr.Reload(ctx) // a failed reload leaves the receipt unverified
	}
	return kr.ring.Load().byID[id]
}
