package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The gateway's side of rollouts: it serves the weights in force of a
// progressing or paused rollout (compile), and counts what each route in
// force does during the current step, for the driver's gates. Counting
// lives on the compiled route (stepObs), so an endpoint without a rollout
// pays one nil check per request.

// ObservationSink stores a process's cumulative rollout observations: the
// part of registry.RolloutStore the gateway uses.
type ObservationSink interface {
	RecordRolloutObservations(ctx context.Context, process string, obs []registry.RolloutObservation) error
}

var _ ObservationSink = registry.RolloutStore(nil)

// stepObs counts one in-force route's requests during one rollout step,
// since this process compiled the step. It is shared by every compile of
// the same rollout, step, route name and version, so reloads that do not
// move the step (a gate result, a pause) keep counting.
type stepObs struct {
	rolloutID int64
	step      int
	// The requests are the sum of the latency bins: one atomic add per
	// request, two for an error.
	errors  atomic.Int64
	latency [registry.LatencyBins]atomic.Int64
}

// record counts one request the guard would count: transport errors and
// 5xx answers are errors; what the client broke is not counted at all.
// The request is counted before its error, and read loads the errors
// first, so no snapshot has more errors than requests (the store refuses
// that).
func (o *stepObs) record(failed bool, took time.Duration) {
	o.latency[registry.LatencyBin(took)].Add(1)
	if failed {
		o.errors.Add(1)
	}
}

// read is a snapshot of the counts.
func (o *stepObs) read() (requests, errors int64, latency []int64) {
	errors = o.errors.Load()
	latency = make([]int64, registry.LatencyBins)
	for i := range latency {
		latency[i] = o.latency[i].Load()
		requests += latency[i]
	}
	return requests, errors, latency
}

// observations is the flusher's state.
type observations struct {
	sink     ObservationSink
	interval time.Duration
	process  string
	// mu serialises flushes; last is what the last successful one wrote,
	// so an idle process does not rewrite the same rows every interval.
	mu     sync.Mutex
	last   []registry.RolloutObservation
	failed bool
}

func (o *observations) init(opts Options) {
	o.sink = opts.Observations
	o.interval = opts.FlushInterval
	if o.interval <= 0 {
		o.interval = 500 * time.Millisecond
	}
	o.process = opts.Process
	if o.process == "" {
		o.process = defaultProcess()
	}
}

// defaultProcess names this process for the observation rows: host, pid
// and a random part, so two gateways on one host, or a restarted one
// whose pid was reused, never overwrite each other's counts.
func defaultProcess() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gateway"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// flushLoop flushes every interval until ctx ends, then once more, so a
// step's last requests are not lost on a clean shutdown.
func (g *Gateway) flushLoop(ctx context.Context) {
	t := time.NewTicker(g.obs.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			g.flushObservations(fctx)
			cancel()
			return
		case <-t.C:
			g.flushObservations(ctx)
		}
	}
}

// flushObservations writes the cumulative counts of every route in force
// of every rollout in force, when they changed since the last write.
func (g *Gateway) flushObservations(ctx context.Context) {
	o := &g.obs
	if o.sink == nil {
		return
	}
	obs := g.Observations()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(obs) == 0 && len(o.last) == 0 || slices.EqualFunc(obs, o.last, sameObservation) {
		return
	}
	if err := o.sink.RecordRolloutObservations(ctx, o.process, obs); err != nil {
		if !o.failed && ctx.Err() == nil {
			g.log.Warn("gateway: cannot record rollout observations", "err", err)
		}
		o.failed = true
		return
	}
	o.failed = false
	o.last = obs
}

func sameObservation(a, b registry.RolloutObservation) bool {
	return a.Endpoint == b.Endpoint && a.RolloutID == b.RolloutID && a.Step == b.Step &&
		a.Route == b.Route && a.Version == b.Version && a.Requests == b.Requests &&
		a.Errors == b.Errors && slices.Equal(a.Latency, b.Latency)
}

// Observations is what this process counted on the routes in force of
// every rollout in force, for their current step, sorted by endpoint and
// route (cumulative since the step was first served here).
func (g *Gateway) Observations() []registry.RolloutObservation {
	t := g.table.Load()
	if t == nil {
		return nil
	}
	var out []registry.RolloutObservation
	for _, ep := range t.endpoints {
		if ep.rollout == nil {
			continue
		}
		for _, r := range ep.routes {
			if r.obs == nil {
				continue
			}
			ob := registry.RolloutObservation{
				Endpoint:  ep.name,
				RolloutID: r.obs.rolloutID,
				Step:      r.obs.step,
				Route:     r.name,
				Version:   r.version,
			}
			ob.Requests, ob.Errors, ob.Latency = r.obs.read()
			out = append(out, ob)
		}
	}
	slices.SortFunc(out, func(a, b registry.RolloutObservation) int {
		if c := strings.Compare(a.Endpoint, b.Endpoint); c != 0 {
			return c
		}
		return strings.Compare(a.Route, b.Route)
	})
	return out
}
