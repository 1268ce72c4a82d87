// Command fasthttpgw is the fasthttp alternative of bench/gatewayserver:
// a fasthttp server and one fasthttp.HostClient per upstream, doing the
// gateway's job for the benchmark (see ../README.md). It takes
// bench/gatewayserver's flags, so bench/gateway.sh runs it through
// BENCH_GATEWAY_BIN.
//
// fasthttp.LBClient balances by least load, not by weight, so the 90/10
// pick is common.Pick over two HostClients.
package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/mlregistry/terraform-provider-mlregistry/bench/alternatives/internal/common"
)

func main() {
	f, stopProfile := common.Parse("fasthttpgw")
	defer stopProfile()
	routes, err := common.Routes(f.Upstreams)
	if err != nil {
		log.Fatalf("fasthttpgw: %v", err)
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := NewServer(routes)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
}

// upstream is a route with its client.
type upstream struct {
	*common.Route
	client *fasthttp.HostClient
	host   []byte
	base   []byte
}

// NewServer returns the fasthttp server of the gateway for routes:
// /serve/bench/{rest} goes to {upstream}{base path}/{rest} of a route
// picked by weight.
func NewServer(routes []*common.Route) *fasthttp.Server {
	ups := make([]*upstream, len(routes))
	for i, rt := range routes {
		ups[i] = &upstream{
			Route: rt,
			client: &fasthttp.HostClient{
				Addr:                          rt.Host,
				MaxConns:                      1024,
				MaxIdleConnDuration:           90 * time.Second,
				ReadTimeout:                   30 * time.Second,
				WriteTimeout:                  30 * time.Second,
				NoDefaultUserAgentHeader:      true,
				DisableHeaderNamesNormalizing: true, // names are already canonical from the server
				DisablePathNormalizing:        true, // forward the path as the client sent it
				StreamResponseBody:            true, // SSE answers stream through
			},
			host: []byte(rt.Host),
			base: []byte(rt.BasePath),
		}
	}
	g := &gateway{routes: routes, ups: ups}
	return &fasthttp.Server{
		Handler:               g.handle,
		Name:                  "",
		NoDefaultServerHeader: true,
		NoDefaultDate:         true, // the upstream's Date passes through
		NoDefaultContentType:  true,
		ReadTimeout:           60 * time.Second,
		IdleTimeout:           90 * time.Second,
		ReadBufferSize:        8 << 10,
		MaxRequestBodySize:    16 << 20,
	}
}

type gateway struct {
	routes []*common.Route
	ups    []*upstream
}

var (
	prefix     = []byte(common.Prefix)
	hopOne     = []byte("1")
	xffKey     = []byte("X-Forwarded-For")
	authKey    = []byte("Authorization")
	textPlain  = []byte("text/plain; charset=utf-8")
	badGateway = []byte("upstream unavailable\n")
)

func (g *gateway) handle(ctx *fasthttp.RequestCtx) {
	uri := ctx.Request.Header.RequestURI()
	if !bytes.HasPrefix(uri, prefix) {
		ctx.Error("404 page not found", fasthttp.StatusNotFound)
		return
	}
	rt := common.Pick(g.routes)
	var up *upstream
	for _, u := range g.ups {
		if u.Route == rt {
			up = u
		}
	}

	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	in := &ctx.Request.Header
	out := &req.Header
	out.DisableNormalizing()
	out.SetMethodBytes(in.Method())
	// {base}/{rest}?{query}: the client's request-target after the prefix.
	target := append(append(out.RequestURI()[:0], up.base...), uri[len(prefix)-1:]...)
	out.SetRequestURIBytes(target)
	out.SetHostBytes(up.host)

	conn := in.Peek("Connection")
	id := in.Peek("X-Request-Id")
	var idStr string
	if common.ValidRequestID(b2s(id)) {
		idStr = string(id)
	} else {
		idStr = common.NewRequestID()
	}
	var priorXFF []byte
	for k, v := range in.All() {
		ks := b2s(k)
		switch {
		case ks == "Host", common.IsHopHeader(ks), common.IsGatewayHeader(ks):
			if bytes.Equal(k, xffKey) {
				priorXFF = append(append(priorXFF, v...), ", "...)
			}
			continue
		case bytes.Equal(k, authKey) && common.IsRegistryToken(b2s(v)):
			continue
		case len(conn) > 0 && connectionListed(conn, k):
			continue
		}
		out.AddBytesKV(k, v)
	}
	out.SetBytesKV(xffKey, appendIP(priorXFF, ctx.RemoteIP()))
	out.Set("X-Forwarded-Proto", "http")
	out.SetBytesV("X-Forwarded-Host", in.Host())
	out.SetBytesV(common.HopHeader, hopOne)
	out.Set("X-Request-Id", idStr)
	out.Set("X-Model-Version", rt.Version)
	out.Set("X-Route", rt.Name)
	if !ctx.IsGet() && !ctx.IsHead() {
		req.SetBodyRaw(ctx.Request.Body())
	}

	resp := fasthttp.AcquireResponse()
	if ctx.IsHead() {
		resp.SkipBody = true
	}
	res := &ctx.Response.Header
	res.Set("X-Request-Id", idStr)
	res.Set("X-Model-Version", rt.Version)
	res.Set("X-Route", rt.Name)
	if err := up.client.Do(req, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		rt.Record(0)
		ctx.SetStatusCode(fasthttp.StatusBadGateway)
		ctx.SetContentTypeBytes(textPlain)
		ctx.SetBody(badGateway)
		return
	}
	rt.Record(resp.StatusCode())
	res.SetStatusCode(resp.StatusCode())
	rconn := resp.Header.Peek("Connection")
	for k, v := range resp.Header.All() {
		ks := b2s(k)
		if ks == "Content-Length" || common.IsHopHeader(ks) || ks == "X-Request-Id" ||
			(len(rconn) > 0 && connectionListed(rconn, k)) {
			continue
		}
		res.AddBytesKV(k, v)
	}
	if ctx.IsHead() {
		res.SetContentLength(resp.Header.ContentLength())
		fasthttp.ReleaseResponse(resp)
		return
	}
	// Stream the answer: fasthttp writes a known length as it is and
	// anything else chunked, flushing after every read (so each SSE event
	// reaches the client as the upstream flushes it), then calls Close.
	n := resp.Header.ContentLength()
	if n < 0 {
		n = -1
	}
	ctx.Response.SetBodyStream(&upstreamBody{resp: resp}, n)
}

// upstreamBody is an upstream answer's body stream; Close returns the
// upstream connection to its pool (or closes it when unread).
type upstreamBody struct{ resp *fasthttp.Response }

func (b *upstreamBody) Read(p []byte) (int, error) {
	s := b.resp.BodyStream()
	if s == nil {
		return 0, io.EOF
	}
	return s.Read(p)
}

func (b *upstreamBody) Close() error {
	err := b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	return err
}

// connectionListed reports whether header name k is a token of the
// Connection value conn.
func connectionListed(conn, k []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		if i := bytes.IndexByte(conn, ','); i >= 0 {
			tok, conn = conn[:i], conn[i+1:]
		} else {
			tok, conn = conn, nil
		}
		if bytes.EqualFold(bytes.TrimSpace(tok), k) {
			return true
		}
	}
	return false
}

func appendIP(dst []byte, ip net.IP) []byte {
	b, _ := ip.AppendText(dst)
	return b
}

// b2s views b as a string without copying; the string must not outlive
// the iteration that yields b.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
