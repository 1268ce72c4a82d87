package h1

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// screenHead looks at the complete lines of the request head at the
// start of buf for framing that two HTTP implementations can read
// differently, which a front proxy and this server (or this server and
// an upstream) would then disagree on: a line that ends in a bare LF, an
// obs-folded line, both Transfer-Encoding and Content-Length (RFC 9112
// sections 2.2, 5.2 and 6.1). net/http accepts all three; the Server
// refuses them for every request it reads, not only the ones it serves.
// It returns why the head is refused, or "".
func screenHead(buf []byte) string {
	te, cl := false, false
	for first := true; ; first = false {
		nl := bytes.IndexByte(buf, '\n')
		if nl < 0 {
			return "" // the rest has not arrived; net/http reads it
		}
		if nl == 0 || buf[nl-1] != '\r' {
			return "a line of the request head ends in a bare LF instead of CRLF"
		}
		line := buf[:nl-1]
		buf = buf[nl+1:]
		if len(line) == 0 {
			if first {
				continue
			}
			return ""
		}
		if !first && (line[0] == ' ' || line[0] == '\t') {
			return "the request head holds an obs-folded line (a line that starts with white space)"
		}
		name, _, found := bytes.Cut(line, []byte(":"))
		if !found || first {
			continue
		}
		name = bytes.TrimRight(name, " \t")
		te = te || equalFoldASCII(string(name), "Transfer-Encoding")
		cl = cl || equalFoldASCII(string(name), "Content-Length")
		if te && cl {
			return "the request has both Transfer-Encoding and Content-Length"
		}
	}
}

// parse reads the request head from what is buffered, without consuming
// it. ok is false when the request is not the Server's to serve.
func (l *Server) parse(lc *serverConn) (req *http.Request, headLen int, ok bool) {
	buf, _ := lc.br.Peek(lc.br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, 0, false // partial head: net/http reads the rest
	}
	headLen = end + 4
	head := append(lc.scratch[:0], buf[:end+2]...)
	lc.scratch = head

	// Request line: METHOD SP origin-form SP HTTP/1.1
	nl := bytes.Index(head, []byte("\r\n"))
	line := head[:nl]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, 0, false
	}
	var method string
	switch string(line[:sp]) { // no allocation: the compiler compares in place
	case http.MethodGet:
		method = http.MethodGet
	case http.MethodHead:
		method = http.MethodHead
	case http.MethodPost:
		method = http.MethodPost
	case http.MethodPut:
		method = http.MethodPut
	case http.MethodPatch:
		method = http.MethodPatch
	case http.MethodDelete:
		method = http.MethodDelete
	default:
		return nil, 0, false // other methods: net/http
	}
	line = line[sp+1:]
	if !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return nil, 0, false
	}
	target := line[:len(line)-len(" HTTP/1.1")]
	if !bytes.HasPrefix(target, []byte(l.opts.PathPrefix)) || !cleanTarget(target) {
		return nil, 0, false
	}

	// Header lines, canonicalised in place, then one string for all.
	type span struct{ k0, k1, v0, v1 int }
	var spans [maxHeaders]span
	n := 0
	for i := nl + 2; i < len(head); {
		j := bytes.Index(head[i:], []byte("\r\n"))
		if j <= 0 || n == maxHeaders {
			return nil, 0, false
		}
		ln := head[i : i+j]
		colon := bytes.IndexByte(ln, ':')
		if colon <= 0 || !canonicalize(ln[:colon]) {
			return nil, 0, false // also obs-fold and "Name :"
		}
		v0, v1 := colon+1, len(ln)
		for v0 < v1 && (ln[v0] == ' ' || ln[v0] == '\t') {
			v0++
		}
		for v1 > v0 && (ln[v1-1] == ' ' || ln[v1-1] == '\t') {
			v1--
		}
		for _, c := range ln[v0:v1] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return nil, 0, false
			}
		}
		spans[n] = span{i, i + colon, i + v0, i + v1}
		n++
		i += j + 2
	}
	block := string(head)
	hdr := make(http.Header, n)
	vals := make([]string, n)
	host, hosts := "", 0
	length, lengths := int64(0), 0
	for x, s := range spans[:n] {
		k, v := block[s.k0:s.k1], block[s.v0:s.v1]
		switch k {
		case "Host":
			host, hosts = v, hosts+1
			continue // net/http keeps Host out of the header map too
		case "Content-Length":
			// One value, digits only (no sign, no list): anything else,
			// even what net/http would accept (repeated equal values),
			// is net/http's to judge.
			n, ok := parseLength(v)
			if !ok || lengths > 0 {
				return nil, 0, false
			}
			length, lengths = n, 1
		case "Transfer-Encoding", "Expect", "Upgrade":
			return nil, 0, false
		case "Connection":
			if !onlyKeepAlive(v) {
				return nil, 0, false
			}
		}
		vals[x] = v
		if old, ok := hdr[k]; ok {
			hdr[k] = append(old, v)
		} else {
			hdr[k] = vals[x : x+1 : x+1]
		}
	}
	if hosts != 1 || !validHost(host) {
		return nil, 0, false
	}
	uri := block[len(method)+1 : len(method)+1+len(target)]
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, 0, false
	}
	req = &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          http.NoBody,
		ContentLength: length,
		Host:          host,
		RemoteAddr:    lc.remote,
		RequestURI:    uri,
	}
	if length > 0 {
		// A new one each time: a reader still holding the last one
		// must not read this request's body.
		lc.body = &requestBody{lc: lc, left: length}
		req.Body = lc.body
	}
	return req.WithContext(lc.ctx), headLen, true
}

// maxLengthDigits bounds a Content-Length value: 15 digits is more than
// any body a model server will see, and cannot overflow an int64.
const maxLengthDigits = 15

// parseLength parses a Content-Length value: 1 to maxLengthDigits ASCII
// digits and nothing else (net/http takes the same digits, no sign).
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > maxLengthDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// requestBody is the body of a request the Server serves: exactly Content-Length bytes
// read from the connection's buffered reader. The handler reads it on its
// own goroutine (Pool.Do) or on http.Transport's write loop,
// which may still hold it when the handler returns; finishBody then takes
// it back (see Server.finishBody). mu is held for the whole of a Read.
type requestBody struct {
	lc     *serverConn
	mu     sync.Mutex
	left   int64 // bytes of the body not yet read
	closed bool
	err    error // a read error: the connection cannot carry another request
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.left == 0:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.lc.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the client closed inside the body
		}
		b.err = err
		return n, err
	}
	if b.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// Close ends the body for its reader; the Server discards what is unread.
func (b *requestBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// maxDiscard is how much of a body nobody read the Server reads and drops
// to keep the connection, as net/http's server does (256 KB); past it the
// connection closes.
const maxDiscard = 256 << 10

// finishBody takes the body of the request just answered back from
// whoever read it and skips what is left of it. false: the connection
// cannot carry another request.
func (l *Server) finishBody(lc *serverConn) bool {
	b := lc.body
	lc.body = nil
	if !b.mu.TryLock() {
		// http.Transport's write loop is still inside a Read, waiting
		// for the client: wake it (the connection is lost then) and wait.
		_ = lc.c.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		return false
	}
	b.closed = true
	left, err := b.left, b.err
	b.mu.Unlock()
	if err != nil {
		return false
	}
	if left == 0 {
		return true
	}
	if left > maxDiscard {
		return false
	}
	l.bodyDeadline(lc, left)
	_, err = lc.br.Discard(int(left))
	return err == nil
}

// bodyDeadline bounds the reading of n more body bytes by ReadTimeout
// when they have not all arrived yet.
func (l *Server) bodyDeadline(lc *serverConn, n int64) {
	if int64(lc.br.Buffered()) >= n {
		return
	}
	lc.deadline = time.Now().Add(l.opts.ReadTimeout)
	_ = lc.c.SetReadDeadline(lc.deadline)
}

// validHost reports whether a Host value holds only the bytes net/http's
// server allows in one (httpguts.ValidHostHeader); it answers 400 to
// anything else, so the Server hands such requests over.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cleanTarget reports whether a request target needs none of the path
// cleaning net/http's ServeMux would do (dot segments, empty segments)
// and holds no fragment or control byte.
func cleanTarget(t []byte) bool {
	path := t
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		path = t[:q]
	}
	if bytes.Contains(path, []byte("//")) || bytes.Contains(path, []byte("/./")) || bytes.Contains(path, []byte("/../")) ||
		bytes.HasSuffix(path, []byte("/.")) || bytes.HasSuffix(path, []byte("/..")) {
		return false
	}
	for _, c := range t {
		if c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// onlyKeepAlive reports whether a Connection header lists nothing but
// keep-alive (what HTTP/1.1 means anyway).
func onlyKeepAlive(v string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if !strings.EqualFold(strings.TrimSpace(t), "keep-alive") {
			return false
		}
	}
	return true
}
