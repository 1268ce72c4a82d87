package server

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/server/answercache"
)

// DefaultAnswerCacheBytes is Options.AnswerCacheBytes when it is 0.
const DefaultAnswerCacheBytes = 32 << 20

// answerCache holds the encoded answers of model and version reads; see
// package answercache for the rule that keeps them exact.
type answerCache struct {
	cache   *answercache.Cache
	changes answercache.Counter
}

// register exports the cache's counters. With a registry shared by
// several servers (tests), the first server's cache is the one reported.
func (c *answerCache) register(reg *prometheus.Registry) error {
	for _, m := range []struct {
		name, help string
		counter    bool
		value      func(answercache.Stats) float64
	}{
		{"mlregistry_answer_cache_hits_total", "Model and version reads answered from the answer cache.", true,
			func(st answercache.Stats) float64 { return float64(st.Hits) }},
		{"mlregistry_answer_cache_misses_total", "Model and version reads the answer cache could not answer (absent, or stale: something changed since).", true,
			func(st answercache.Stats) float64 { return float64(st.Misses) }},
		{"mlregistry_answer_cache_evictions_total", "Answers dropped to stay within the answer cache's memory bound.", true,
			func(st answercache.Stats) float64 { return float64(st.Evictions) }},
		{"mlregistry_answer_cache_bytes", "Memory the answer cache's answers take, as it counts them.", false,
			func(st answercache.Stats) float64 { return float64(st.Bytes) }},
	} {
		opts := prometheus.Opts{Name: m.name, Help: m.help}
		f := func() float64 { return m.value(c.cache.Stats()) }
		var col prometheus.Collector
		if m.counter {
			col = prometheus.NewCounterFunc(prometheus.CounterOpts(opts), f)
		} else {
			col = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), f)
		}
		if _, err := register(reg, col); err != nil {
			return err
		}
	}
	return nil
}

func newAnswerCache(changes answercache.Counter, maxBytes int64) *answerCache {
	if changes == nil || maxBytes < 0 {
		return nil
	}
	if maxBytes == 0 {
		maxBytes = DefaultAnswerCacheBytes
	}
	return &answerCache{cache: answercache.New(maxBytes), changes: changes}
}

// readAnswer answers a GET of a model or version resource or list from the
// cache when nothing changed since it was encoded, and otherwise calls
// load and keeps what it answers. load returns the resource's revision
// (0 for a list, which has no ETag) and the value to encode. The key is
// the request's path and query: these answers depend on nothing else (not
// on the token, not on the Host the request came to).
func (s *Server) readAnswer(w http.ResponseWriter, r *http.Request, load func() (int64, any, error)) error {
	if s.answers == nil {
		rev, v, err := load()
		if err != nil {
			return err
		}
		if rev > 0 {
			return writeResource(w, http.StatusOK, rev, v)
		}
		return writeJSON(w, http.StatusOK, v)
	}
	key := r.URL.RequestURI()
	// The generation is read before the store is: a commit that lands
	// while load runs moves it, and the answer is then never served.
	gen := s.answers.changes.Generation()
	if a, ok := s.answers.cache.Get(key, gen); ok {
		writeAnswer(w, a)
		return nil
	}
	rev, v, err := load()
	if err != nil {
		return err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// Exactly sized: the cache counts len, and a slice grown by append
	// could hold twice that.
	exact := make([]byte, len(body)+1)
	copy(exact, body)
	exact[len(body)] = '\n'
	a := answercache.Answer{Body: exact}
	if rev > 0 {
		a.ETag = etag(rev)
	}
	s.answers.cache.Put(key, gen, a)
	writeAnswer(w, a)
	return nil
}

func writeAnswer(w http.ResponseWriter, a answercache.Answer) {
	h := w.Header()
	if a.ETag != "" {
		h["Etag"] = []string{a.ETag}
	}
	h["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.Body)
}

var jsonContentType = []string{"application/json"}
