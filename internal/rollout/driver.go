package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// LeaseName is the database lease the drivers of one registry compete for.
const LeaseName = "rollouts"

// Defaults for Options.
const (
	DefaultTick     = 200 * time.Millisecond
	DefaultLeaseTTL = 3 * time.Second
)

// Actor is who the driver's events name.
var Actor = registry.Actor{Name: "system"}

// Store is what the driver needs of the registry's store: the part of
// registry.RolloutStore it uses.
type Store interface {
	ActiveRollouts(ctx context.Context) ([]registry.Endpoint, error)
	RecordRollout(ctx context.Context, actor registry.Actor, name string, id, expectedSeq int64, next registry.RolloutStatus, action string) (*registry.Endpoint, error)
	RolloutObservations(ctx context.Context, endpoint string, id int64, step int) ([]registry.RolloutObservation, error)
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

var _ Store = registry.RolloutStore(nil)

// Options configure a Driver.
type Options struct {
	Store Store
	// Now is the clock rollouts are timed by (bakes, step times); tests
	// inject one they move. Default time.Now.
	Now func() time.Time
	// LeaseNow is the clock of the lease. A lease says whether its holder
	// is alive, which only the wall clock tells: moving Now past a bake in
	// a test must not hand the lease around. Default time.Now.
	LeaseNow func() time.Time
	// Tick is how often the leader evaluates. Every driver renews or
	// tries the lease a third of LeaseTTL apart (at most a second, at
	// least a tick). Default DefaultTick.
	Tick time.Duration
	// LeaseTTL is how long the lease outlives its last renewal: the
	// longest rollouts stand still after a leader dies. Default
	// DefaultLeaseTTL; it must exceed Tick.
	LeaseTTL time.Duration
	// Holder names this driver in the lease; default host, pid and a
	// random suffix (two drivers in one process are two holders).
	Holder string
	// Prometheus answers the rollouts' prometheus gates; nil when the
	// registry was given no Prometheus: a step with such gates then waits
	// (and says why) rather than roll back on a configuration gap.
	Prometheus Querier
	Logger     *slog.Logger
	// Registerer, when set, gets the driver's metrics.
	Registerer prometheus.Registerer
	// OnChange is called with an endpoint's name after the driver changed
	// its rollout, so this process's gateway applies it at once.
	OnChange func(endpoint string)
	// LiveGuard, when set, lets the leader judge the endpoints' live-metric
	// guards too; nil leaves them unjudged.
	LiveGuard LiveGuardStore
	// LiveGuardEvery is how often (on Now's clock) the leader judges them.
	// Default DefaultLiveGuardEvery.
	LiveGuardEvery time.Duration
}

// Driver moves active rollouts forward on the replica that holds the lease.
type Driver struct {
	opts    Options
	leader  atomic.Bool
	metrics driverMetrics
	// failing is set while the database refuses the lease or the list of
	// rollouts, so the log says so once, not every tick (Run's goroutine
	// only).
	failing bool
	// lastLiveGuard is when (on Now) the live guards were last judged
	// (Run's goroutine only).
	lastLiveGuard time.Time
	// asked is when this driver last took, renewed or tried the lease
	// (LeaseNow's clock; Run's goroutine only).
	asked time.Time
}

// renewEvery is how often a driver writes the lease: a third of its TTL
// (so two renewals may fail before it lapses), at most a second and at
// least a tick. Every process writes it, so writing it every tick would
// put a database write per tick per process beside the registry's own
// writes; between renewals the leader relies on the lease it holds.
func (d *Driver) renewEvery() time.Duration {
	return max(min(d.opts.LeaseTTL/3, time.Second), d.opts.Tick)
}

type driverMetrics struct {
	leader  prometheus.Gauge
	actions *prometheus.CounterVec
	queries *prometheus.CounterVec
}

// New checks opts and returns a Driver; Run starts it.
func New(opts Options) (*Driver, error) {
	if opts.Store == nil {
		return nil, errors.New("rollout driver: no store")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LeaseNow == nil {
		opts.LeaseNow = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LiveGuardEvery <= 0 {
		opts.LiveGuardEvery = DefaultLiveGuardEvery
	}
	if opts.LeaseTTL <= opts.Tick {
		return nil, fmt.Errorf("rollout driver: lease TTL %s must exceed the tick %s, or the leader loses the lease between renewals", opts.LeaseTTL, opts.Tick)
	}
	if opts.Holder == "" {
		opts.Holder = defaultHolder()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d := &Driver{opts: opts}
	if err := d.register(opts.Registerer); err != nil {
		return nil, err
	}
	return d, nil
}

func defaultHolder() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (d *Driver) register(reg prometheus.Registerer) error {
	m := driverMetrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mlregistry_rollout_leader",
			Help: "1 while this process holds the rollouts lease and drives rollouts, else 0.",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_rollout_actions_total",
			Help: "Rollout changes this process recorded as leader, by event action.",
		}, []string{"action"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlregistry_rollout_prometheus_queries_total",
			Help: "Prometheus gate queries this process sent, by outcome: ok or error.",
		}, []string{"outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.leader, m.actions, m.queries} {
			if err := reg.Register(c); err != nil {
				return fmt.Errorf("rollout driver metrics: %w", err)
			}
		}
	}
	d.metrics = m
	return nil
}

// Holder is the name this driver holds the lease under.
func (d *Driver) Holder() string { return d.opts.Holder }

// Leader reports whether this driver held the lease at its last tick.
func (d *Driver) Leader() bool { return d.leader.Load() }

// Run renews or tries the lease every Tick and, while it holds it,
// evaluates every active rollout, until ctx ends; then it releases the
// lease so another replica takes over without waiting for it to expire.
func (d *Driver) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.Tick)
	defer t.Stop()
	defer d.release()
	for {
		d.tick(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// release gives the lease up whether or not the last tick saw it held: a
// tick cut short by the shutdown leaves the lease renewed in the database
// but not known here, and only a release spares the next leader its
// expiry. Releasing a lease held by another holder changes nothing.
func (d *Driver) release() {
	d.setLeader(false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := d.opts.Store.ReleaseLease(ctx, LeaseName, d.opts.Holder); err != nil {
		d.opts.Logger.Warn("rollout lease release failed; another replica takes over when it expires", "err", err)
	}
}

func (d *Driver) setLeader(v bool) {
	if d.leader.Swap(v) != v {
		if v {
			d.opts.Logger.Info("rollout driver leads", "holder", d.opts.Holder)
			d.metrics.leader.Set(1)
		} else {
			d.opts.Logger.Info("rollout driver no longer leads", "holder", d.opts.Holder)
			d.metrics.leader.Set(0)
		}
	}
}

// tick is one round: the lease (when it is due), then, while this driver
// leads, every active rollout.
func (d *Driver) tick(ctx context.Context) {
	now := d.opts.LeaseNow()
	if !d.asked.IsZero() && now.Sub(d.asked) < d.renewEvery() && now.After(d.asked) {
		if !d.leader.Load() {
			return
		}
	} else if !d.lease(ctx, now) {
		return
	}
	d.evaluate(ctx)
}

// lease takes, renews or tries the lease and reports whether this driver
// holds it.
func (d *Driver) lease(ctx context.Context, now time.Time) bool {
	d.asked = now
	held, err := d.opts.Store.AcquireLease(ctx, LeaseName, d.opts.Holder, now, d.opts.LeaseTTL)
	if err != nil {
		d.logFailure(ctx, "rollout driver: cannot take or renew the rollouts lease", err)
		// Unsure whether the lease is still ours: act as if not, so two
		// replicas never both act; RecordRollout's sequence check would
		// refuse a stale leader's write anyway.
		d.setLeader(false)
		return false
	}
	d.setLeader(held)
	if !held {
		d.recovered()
		return false
	}
	return true
}

// evaluate is the leader's part of a tick: every active rollout.
func (d *Driver) evaluate(ctx context.Context) {
	log := d.opts.Logger
	eps, err := d.opts.Store.ActiveRollouts(ctx)
	if err != nil {
		d.logFailure(ctx, "rollout driver: cannot list the active rollouts", err)
		return
	}
	d.recovered()
	for _, ep := range eps {
		if ctx.Err() != nil {
			return
		}
		if err := d.step(ctx, ep); err != nil && ctx.Err() == nil {
			log.Warn("rollout driver", "endpoint", ep.Name, "err", err)
		}
	}
	d.liveGuards(ctx)
}

// logFailure warns of the first of a run of database failures and logs
// the rest at debug level: a gateway on a schema its registry has not
// upgraded yet would otherwise warn five times a second.
func (d *Driver) logFailure(ctx context.Context, msg string, err error) {
	if ctx.Err() != nil {
		return
	}
	if d.failing {
		d.opts.Logger.Debug(msg, "err", err)
		return
	}
	d.failing = true
	d.opts.Logger.Warn(msg+"; rollouts stand still until it answers", "err", err)
}

func (d *Driver) recovered() {
	if d.failing {
		d.failing = false
		d.opts.Logger.Info("rollout driver: the database answers again")
	}
}

// step evaluates one endpoint's rollout and records the decision.
func (d *Driver) step(ctx context.Context, ep registry.Endpoint) error {
	if ep.Rollout == nil || ep.Rollout.RolloutStatus == nil || ep.Rollout.State != registry.RolloutProgressing {
		return nil
	}
	st := ep.Rollout.RolloutStatus
	obs, err := d.opts.Store.RolloutObservations(ctx, ep.Name, st.ID, st.Step)
	if err != nil {
		return fmt.Errorf("observations: %w", err)
	}
	now := d.opts.Now()
	dec, err := Evaluate(ep, obs, now, nil)
	if err != nil {
		return err
	}
	if len(dec.Queries) > 0 {
		if d.opts.Prometheus == nil {
			dec = d.noPrometheus(ep, now)
		} else if dec, err = Evaluate(ep, obs, now, d.ask(ctx, dec.Queries)); err != nil {
			return err
		}
	}
	if advances(dec, st) && len(ep.Rollout.MinLiveMetrics) > 0 {
		if dec, err = d.liveGate(ctx, ep, dec, now); err != nil {
			return err
		}
	}
	if dec.Action == "" {
		return nil
	}
	if _, err := d.opts.Store.RecordRollout(ctx, Actor, ep.Name, st.ID, st.Seq, dec.Next, dec.Action); err != nil {
		if errors.Is(err, registry.ErrPreconditionFailed) || errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrConflict) {
			// An operator paused it, a new apply replaced it, the endpoint
			// went away, or another leader got there first: the next tick
			// sees what is stored now.
			d.opts.Logger.Debug("rollout moved under the driver", "endpoint", ep.Name, "rollout", st.ID, "err", err)
			return nil
		}
		return fmt.Errorf("record %s: %w", dec.Action, err)
	}
	d.metrics.actions.WithLabelValues(dec.Action).Inc()
	d.opts.Logger.Info("rollout", "endpoint", ep.Name, "rollout", st.ID, "action", dec.Action, "state", dec.Next.State, "step", dec.Next.Step, "message", dec.Next.Message)
	if d.opts.OnChange != nil {
		d.opts.OnChange(ep.Name)
	}
	return nil
}

// ask runs the Prometheus gate queries one after another: a step asks a
// handful, once per bake.
func (d *Driver) ask(ctx context.Context, qs []Query) []QueryResult {
	out := make([]QueryResult, 0, len(qs))
	for _, q := range qs {
		v, err := d.opts.Prometheus.Query(ctx, q.PromQL)
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		d.metrics.queries.WithLabelValues(outcome).Inc()
		out = append(out, QueryResult{Query: q, Value: v, Err: err})
	}
	return out
}

// noPrometheus holds a step whose prometheus gates this process cannot
// ask: a leader started without --prometheus-url (a gateway process
// configured apart from the registry) must not roll back what it cannot
// judge. The step waits, saying so, until a leader that can ask takes
// over or the operator acts.
func (d *Driver) noPrometheus(ep registry.Endpoint, now time.Time) Decision {
	st := *ep.Rollout.RolloutStatus
	msg := fmt.Sprintf("waiting: the rollout's prometheus gates cannot be asked by the leading process %s, which was started without --prometheus-url", d.opts.Holder)
	if g := st.LastGate; g != nil && !g.Passed && g.Message == msg && !g.At.Before(st.StepStarted) {
		return Decision{}
	}
	d.opts.Logger.Warn("rollout step waits: prometheus gates but no --prometheus-url on this process", "endpoint", ep.Name, "holder", d.opts.Holder)
	next := st
	next.Seq = st.Seq + 1
	next.LastGate = &registry.GateResult{Gate: "prometheus[0]", Message: msg, At: now}
	next.Message = stepName(st) + " baked; " + msg
	return Decision{Action: registry.ActionEndpointRolloutStep, Next: next}
}
