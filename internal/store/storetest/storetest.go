// Package storetest is the conformance suite every registry.Store passes:
// Run exercises every Store operation and every rule the registry package
// documents against a fresh store per subtest.
//
// It imports registry, the standard library and (for PostgresDSN) the pgx
// stdlib driver; never a Store implementation.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Clock is a settable clock for the store under test. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads t0 until moved.
func NewClock(t0 time.Time) *Clock { return &Clock{now: t0} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Epoch is where every subtest's clock starts. It has nanoseconds and a
// zone other than UTC on purpose: stores answer in UTC, truncated to
// microseconds.
var Epoch = time.Date(2025, 3, 14, 10, 26, 53, 589793238, time.FixedZone("CET", 3600))

// at is how a store answers the time the clock reads.
func at(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// env is what every case gets: a fresh store, its clock and helpers.
type env struct {
	t     *testing.T
	ctx   context.Context
	s     registry.Store
	clock *Clock
	actor registry.Actor
	seq   *atomic.Int64
}

// with returns the env for a nested subtest.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	c.ctx = t.Context()
	return &c
}

type testCase struct {
	name string
	run  func(e *env)
}

// suite lists every case Run runs, grouped by file.
func suite() []testCase {
	var all []testCase
	for _, group := range [][]testCase{
		modelCases, versionCases, stageCases, endpointCases, flagDrainCases, endpointRevisionCases, rolloutCases, eventCases, tokenCases, idempotencyCases, concurrencyCases, feedbackCases,
	} {
		all = append(all, group...)
	}
	return all
}

// Run runs the conformance suite. newStore returns a fresh, empty store
// that takes its time from clock and is closed in t.Cleanup. Subtests run
// in parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T, clock *Clock) registry.Store) {
	t.Helper()
	for _, tc := range suite() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := NewClock(Epoch)
			s := newStore(t, clock)
			tc.run(&env{
				t:     t,
				ctx:   t.Context(),
				s:     s,
				clock: clock,
				actor: registry.Actor{Name: "alice", RequestID: "req-1"},
				seq:   new(atomic.Int64),
			})
		})
	}
}

// --- assertions ---

// wantCode fails unless err is a *registry.Error with code and a message
// containing each of contains.
func wantCode(t *testing.T, err error, code registry.Code, contains ...string) *registry.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var re *registry.Error
	if !errors.As(err, &re) {
		t.Fatalf("got %T %v, want a *registry.Error with code %s", err, err, code)
	}
	if re.Code != code {
		t.Fatalf("got code %s (%q), want %s", re.Code, re.Message, code)
	}
	for _, c := range contains {
		if !strings.Contains(re.Message, c) {
			t.Errorf("message %q does not contain %q", re.Message, c)
		}
	}
	return re
}

// wantField is wantCode(invalid_argument) that also checks the field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	re := wantCode(t, err, registry.CodeInvalidArgument)
	if re.Field != field {
		t.Errorf("got field %q (%q), want %q", re.Field, re.Message, field)
	}
}

// wantRule is wantCode(policy_violation) that also checks the rule.
func wantRule(t *testing.T, err error, rule string) {
	t.Helper()
	re := wantCode(t, err, registry.CodePolicyViolation)
	if re.Rule != rule {
		t.Errorf("got rule %q (%q), want %q", re.Rule, re.Message, rule)
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// --- fixtures ---

// checksum is a valid, distinct checksum per seed.
func checksum(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return "sha256:" + hex.EncodeToString(h[:])
}

func (e *env) model(name string, mutate ...func(*registry.ModelCreate)) *registry.Model {
	e.t.Helper()
	mc := registry.ModelCreate{Name: name, Owner: "ds-team"}
	for _, f := range mutate {
		f(&mc)
	}
	m, err := e.s.CreateModel(e.ctx, e.actor, mc)
	if err != nil {
		e.t.Fatalf("create model %q: %v", name, err)
	}
	return m
}

// versionCreate is a valid create body with a fresh checksum.
func (e *env) versionCreate() registry.ModelVersionCreate {
	n := e.seq.Add(1)
	return registry.ModelVersionCreate{
		Source:   fmt.Sprintf("s3://models/artifact-%d.onnx", n),
		Checksum: checksum(fmt.Sprintf("%s-%d", e.t.Name(), n)),
		Format:   "onnx",
	}
}

func (e *env) version(model string, mutate ...func(*registry.ModelVersionCreate)) *registry.ModelVersion {
	e.t.Helper()
	vc := e.versionCreate()
	for _, f := range mutate {
		f(&vc)
	}
	v, err := e.s.CreateVersion(e.ctx, e.actor, model, vc)
	if err != nil {
		e.t.Fatalf("create version of %q: %v", model, err)
	}
	return v
}

func (e *env) assign(model, stage string, version int64) *registry.StageAssignment {
	e.t.Helper()
	a, err := e.s.AssignStage(e.ctx, e.actor, model, stage, registry.StageAssign{Version: version}, registry.AssignOptions{})
	if err != nil {
		e.t.Fatalf("assign %s/%s to %d: %v", model, stage, version, err)
	}
	return a
}

// latestEvent is the id of the newest event (0 when there are none), for
// checks that a write added no event.
func (e *env) latestEvent() int64 {
	e.t.Helper()
	evs := e.events(registry.EventFilter{})
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].ID
}

func (e *env) history(model, stage string) []registry.StageHistoryEntry {
	e.t.Helper()
	return all(e.t, func(token string) (*registry.Page[registry.StageHistoryEntry], error) {
		return e.s.StageHistory(e.ctx, model, stage, registry.ListOptions{PageToken: token})
	})
}

func (e *env) events(f registry.EventFilter) []registry.Event {
	e.t.Helper()
	return all(e.t, func(token string) (*registry.Page[registry.Event], error) {
		f.PageToken = token
		return e.s.ListEvents(e.ctx, f)
	})
}

func (e *env) versionNumbers(model string, f registry.VersionFilter) []int64 {
	e.t.Helper()
	vs := all(e.t, func(token string) (*registry.Page[registry.ModelVersion], error) {
		f.PageToken = token
		return e.s.ListVersions(e.ctx, model, f)
	})
	out := []int64{}
	for _, v := range vs {
		out = append(out, v.Version)
	}
	return out
}

// all follows next_page_token to the end and returns every item. It fails
// on a page that is nil, has nil items, or is empty but says there is more.
func all[T any](t *testing.T, fetch func(token string) (*registry.Page[T], error)) []T {
	t.Helper()
	var out []T
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
		p, err := fetch(token)
		if err != nil {
			t.Fatalf("list page %d: %v", pages, err)
		}
		if p == nil || p.Items == nil {
			t.Fatalf("page %d: nil page or nil items", pages)
		}
		if len(p.Items) == 0 && p.NextPageToken != "" {
			t.Fatalf("page %d: empty page with a next_page_token", pages)
		}
		out = append(out, p.Items...)
		if p.NextPageToken == "" {
			return out
		}
		token = p.NextPageToken
	}
}

func actions(evs []registry.Event) []string {
	out := []string{}
	for _, ev := range evs {
		out = append(out, ev.Action)
	}
	return out
}

func sortedInts(xs []int64) []int64 {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

func seq(from, to int64) []int64 {
	out := []int64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func ptr[T any](v T) *T { return &v }
