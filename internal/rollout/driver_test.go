package rollout_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/rollout"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// The driver's tests run on the real store (a SQLite file); the
// end-to-end tests in internal/app run it inside registries.

func openStore(t *testing.T, clock *storetest.Clock) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "r.db"), sqlstore.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func startDriver(t *testing.T, opts rollout.Options) (*rollout.Driver, context.CancelFunc) {
	t.Helper()
	d, err := rollout.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("driver Run: %v", err)
		}
	}
	var once bool
	t.Cleanup(func() {
		if !once {
			stop()
		}
	})
	return d, func() { once = true; stop() }
}

// eventually polls cond every few milliseconds for 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countingStore counts the driver's ticks: each one asks for the lease.
type countingStore struct {
	rollout.Store
	ticks atomic.Int64
}

func (c *countingStore) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	defer c.ticks.Add(1)
	return c.Store.AcquireLease(ctx, name, holder, now, ttl)
}

// waitTicks returns once the drivers on c made n more ticks.
func waitTicks(t *testing.T, c *countingStore, n int64) {
	t.Helper()
	from := c.ticks.Load()
	eventually(t, "the drivers tick", func() bool { return c.ticks.Load() >= from+n })
}

// TestDriverLease: of two drivers on one database exactly one leads, tick
// after tick; the leader stopping releases the lease and the other takes
// over at once, long before the lease would have expired.
func TestDriverLease(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := &countingStore{Store: openStore(t, clock)}
	opts := rollout.Options{Store: s, Now: clock.Now, Tick: 5 * time.Millisecond, LeaseTTL: time.Hour}
	opts.Holder = "a"
	a, stopA := startDriver(t, opts)
	opts.Holder = "b"
	b, stopB := startDriver(t, opts)
	eventually(t, "one driver leads", func() bool { return a.Leader() || b.Leader() })
	// Lease writes come a second apart (see renewEvery): a few rounds of
	// both drivers asking are enough.
	for range 4 {
		waitTicks(t, s, 2)
		if a.Leader() == b.Leader() {
			t.Fatalf("a leads: %v, b leads: %v; want exactly one", a.Leader(), b.Leader())
		}
	}
	lead, stop, other := a, stopA, b
	if b.Leader() {
		lead, stop, other = b, stopB, a
	}
	stop()
	if lead.Leader() {
		t.Error("a stopped driver still says it leads")
	}
	eventually(t, "the other driver takes the lease over", other.Leader)
}

// TestDriverWithoutPrometheusWaits: a leader that was given no Prometheus
// holds a baked step whose prometheus gates it cannot ask, says why, and
// records that once, however many ticks pass.
func TestDriverWithoutPrometheusWaits(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := openStore(t, clock)
	ctx := context.Background()
	actor := registry.Actor{Name: "test"}
	if _, err := s.CreateModel(ctx, actor, registry.ModelCreate{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.CreateVersion(ctx, actor, "m", registry.ModelVersionCreate{
			Source: "s3://b/m", Checksum: "sha256:" + strings.Repeat(string(rune('a'+i)), 64), Format: "onnx",
		}); err != nil {
			t.Fatal(err)
		}
	}
	spec := &registry.RolloutSpec{Steps: []int{50, 100}, Bake: "1m", Prometheus: []registry.PrometheusGate{{Query: "up", Comparison: ">=", Threshold: 1}}}
	if _, err := s.CreateEndpoint(ctx, actor, registry.EndpointCreate{
		Name: "ep", Model: "m", Rollout: spec,
		Routes: []registry.Route{{Name: "main", Version: 1, UpstreamURL: "http://127.0.0.1:9/", Weight: 100}},
	}); err != nil {
		t.Fatal(err)
	}
	routes := []registry.Route{{Name: "main", Version: 2, UpstreamURL: "http://127.0.0.1:9/", Weight: 100}}
	if _, err := s.UpdateEndpoint(ctx, actor, "ep", registry.EndpointPatch{Routes: &routes}, registry.Precondition{}); err != nil {
		t.Fatal(err)
	}
	changed := make(chan string, 10)
	cs := &countingStore{Store: s}
	startDriver(t, rollout.Options{Store: cs, Now: clock.Now, Tick: 5 * time.Millisecond, LeaseTTL: 30 * time.Millisecond, Holder: "no-prom", OnChange: func(ep string) { changed <- ep }})
	clock.Advance(time.Minute)
	if ep := <-changed; ep != "ep" {
		t.Fatalf("changed %q", ep)
	}
	e, err := s.GetEndpoint(ctx, "ep")
	if err != nil {
		t.Fatal(err)
	}
	st := e.Rollout.RolloutStatus
	if st.State != registry.RolloutProgressing || st.Step != 1 || st.LastGate == nil || !strings.Contains(st.LastGate.Message, "no-prom, which was started without --prometheus-url") {
		t.Fatalf("rollout %+v gate %+v", st, st.LastGate)
	}
	// Many ticks later, nothing more was recorded.
	seq := st.Seq
	waitTicks(t, cs, 20)
	if e, err = s.GetEndpoint(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	if e.Rollout.Seq != seq {
		t.Fatalf("waiting rollout rewritten: seq %d, was %d", e.Rollout.Seq, seq)
	}
}

func TestDriverOptions(t *testing.T) {
	clock := storetest.NewClock(time.Now())
	s := openStore(t, clock)
	if _, err := rollout.New(rollout.Options{}); err == nil {
		t.Error("a driver without a store was accepted")
	}
	if _, err := rollout.New(rollout.Options{Store: s, Tick: time.Second, LeaseTTL: time.Second}); err == nil || !strings.Contains(err.Error(), "must exceed the tick") {
		t.Errorf("lease TTL not above the tick: %v", err)
	}
}

// cutShort renews the lease in the database on every call, but once
// armed answers only when the caller gives up: a tick the shutdown cuts
// short after its renewal reached the database.
type cutShort struct {
	rollout.Store
	armed atomic.Bool
	hung  chan struct{}
}

func (c *cutShort) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	held, err := c.Store.AcquireLease(context.WithoutCancel(ctx), name, holder, now, ttl)
	if !c.armed.Load() {
		return held, err
	}
	select {
	case c.hung <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return false, ctx.Err()
}

// TestDriverReleasesAfterCutShortTick: a leader stopped in the middle of
// renewing the lease still releases it, so the next leader takes over at
// once rather than when the lease expires.
func TestDriverReleasesAfterCutShortTick(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := openStore(t, clock)
	cs := &cutShort{Store: s, hung: make(chan struct{}, 1)}
	a, stopA := startDriver(t, rollout.Options{Store: cs, Holder: "a", Now: clock.Now, Tick: 5 * time.Millisecond, LeaseTTL: time.Hour})
	eventually(t, "a leads", a.Leader)
	b, _ := startDriver(t, rollout.Options{Store: s, Holder: "b", Now: clock.Now, Tick: 5 * time.Millisecond, LeaseTTL: time.Hour})
	cs.armed.Store(true)
	<-cs.hung
	stopA()
	eventually(t, "b takes the lease over", b.Leader)
}

// refusing fails every lease call while refuse is set, as a database
// whose schema predates the leases does.
type refusing struct {
	countingStore
	refuse atomic.Bool
}

func (r *refusing) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if r.refuse.Load() {
		r.ticks.Add(1)
		return false, errors.New("no such table: leases")
	}
	return r.countingStore.AcquireLease(ctx, name, holder, now, ttl)
}

// TestDriverLogsAFailingDatabaseOnce: a database refusing the lease tick
// after tick is one warning, not one per tick; its recovery is logged.
func TestDriverLogsAFailingDatabaseOnce(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := &refusing{countingStore: countingStore{Store: openStore(t, clock)}}
	s.refuse.Store(true)
	var logs lockedBuffer
	d, _ := startDriver(t, rollout.Options{Store: s, Now: clock.Now, Tick: 2 * time.Millisecond, LeaseTTL: 30 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitTicks(t, &s.countingStore, 20)
	s.refuse.Store(false)
	eventually(t, "the driver leads once the database answers", d.Leader)
	out := logs.String()
	if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, "no such table: leases") || !strings.Contains(out, "the database answers again") {
		t.Fatalf("%d warnings:\n%s", n, out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDriverRenewsEveryThirdOfTheLease: the lease is a database write in
// every process, so a driver writes it a third of the TTL apart (at most a
// second), not every tick, and still evaluates every tick while it leads.
func TestDriverRenewsEveryThirdOfTheLease(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := &countingStore{Store: openStore(t, clock)}
	d, _ := startDriver(t, rollout.Options{Store: s, Now: clock.Now, Tick: 2 * time.Millisecond, LeaseTTL: 600 * time.Millisecond})
	eventually(t, "the driver leads", d.Leader)
	start := time.Now()
	waitTicks(t, s, 3)
	if took := time.Since(start); took < 350*time.Millisecond {
		t.Fatalf("3 lease writes in %s with a 600ms TTL: renewed more often than every 200ms", took)
	}
	if !d.Leader() {
		t.Fatal("the driver lost the lease between renewals")
	}
}
