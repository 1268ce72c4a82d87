// Command revproxy is the net/http alternative of bench/gatewayserver:
// net/http's server and httputil.ReverseProxy with a tuned Transport,
// doing the gateway's job for the benchmark (see ../README.md). It takes
// bench/gatewayserver's flags, so bench/gateway.sh runs it through
// BENCH_GATEWAY_BIN.
package main

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/bench/alternatives/internal/common"
)

func main() {
	f, stopProfile := common.Parse("revproxy")
	defer stopProfile()
	routes, err := common.Routes(f.Upstreams)
	if err != nil {
		log.Fatalf("revproxy: %v", err)
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: New(routes), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// Transport is the tuned upstream client: many idle connections per
// upstream (32 benchmark connections must not redial), no gzip
// negotiation, HTTP/1.1 only, larger buffers than the 4 KB defaults.
func Transport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no overall limit
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 30 * time.Second,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(p []byte) { b.p.Put(&p) }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

// New returns the gateway handler for routes: /serve/bench/{rest} goes to
// {upstream}{base path}/{rest} of a route picked by weight.
func New(routes []*common.Route) http.Handler {
	byHost := func(host string) *common.Route {
		for _, rt := range routes {
			if rt.Host == host {
				return rt
			}
		}
		return nil
	}
	rp := &httputil.ReverseProxy{
		// ReverseProxy has already dropped hop-by-hop headers (and those
		// Connection lists), X-Forwarded-* and Forwarded from pr.Out.
		Rewrite: func(pr *httputil.ProxyRequest) {
			rt := common.Pick(routes)
			rest := strings.TrimPrefix(pr.In.URL.Path, common.Prefix[:len(common.Prefix)-1])
			out := pr.Out
			out.URL.Scheme = "http"
			out.URL.Host = rt.Host
			out.URL.Path = rt.BasePath + rest
			if raw := pr.In.URL.RawPath; raw != "" {
				out.URL.RawPath = rt.BasePath + strings.TrimPrefix(raw, common.Prefix[:len(common.Prefix)-1])
			} else {
				out.URL.RawPath = ""
			}
			out.Host = ""
			h := out.Header
			id := h["X-Request-Id"] // set by the handler below
			for k := range h {
				if common.IsGatewayHeader(k) {
					delete(h, k)
				}
			}
			if vv := h["Authorization"]; len(vv) > 0 {
				kept := vv[:0:0]
				for _, v := range vv {
					if !common.IsRegistryToken(v) {
						kept = append(kept, v)
					}
				}
				if len(kept) == 0 {
					delete(h, "Authorization")
				} else {
					h["Authorization"] = kept
				}
			}
			// SetXForwarded appends to what Out carries; Rewrite starts
			// without the client's value.
			if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
				h["X-Forwarded-For"] = prior
			}
			pr.SetXForwarded()
			h[common.HopHeader] = hopOne
			h["X-Request-Id"] = id
			h["X-Model-Version"] = []string{rt.Version}
			h["X-Route"] = []string{rt.Name}
		},
		Transport:     Transport(),
		FlushInterval: -1,
		BufferPool:    newBufferPool(),
		ModifyResponse: func(res *http.Response) error {
			rt := byHost(res.Request.URL.Host)
			rt.Record(res.StatusCode)
			res.Header["X-Model-Version"] = []string{rt.Version}
			res.Header["X-Route"] = []string{rt.Name}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if rt := byHost(r.URL.Host); rt != nil {
				rt.Record(0)
				w.Header()["X-Model-Version"] = []string{rt.Version}
				w.Header()["X-Route"] = []string{rt.Name}
			}
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, common.Prefix) {
			http.NotFound(w, r)
			return
		}
		id := r.Header.Get("X-Request-Id")
		if !common.ValidRequestID(id) {
			id = common.NewRequestID()
		}
		r.Header["X-Request-Id"] = []string{id}
		w.Header()["X-Request-Id"] = []string{id}
		rp.ServeHTTP(w, r)
	})
}

var hopOne = []string{"1"}
