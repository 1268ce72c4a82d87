package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// errBadResponse is an upstream answer the gateway cannot parse.
type errBadResponse string

func (e errBadResponse) Error() string { return "malformed response: " + string(e) }

// respHead is a parsed response head.
type respHead struct {
	status int
	// length is the body length, -1 for read-until-close, -2 for chunked.
	length int64
	// close: the connection cannot be reused after this response.
	close bool
	// trailers: the names the response announced in its Trailer header.
	trailers string
	// stream: flush each write (no length, or an event stream).
	stream bool
}

const (
	lengthUntilClose = -1
	lengthChunked    = -2
)

// readHead reads a response head for a request of method and writes its
// end-to-end headers into dst. 1xx answers other than 101 are skipped.
func (c *upConn) readHead(method string, dst http.Header) (respHead, error) {
	for {
		h, err := c.readOneHead(method, dst)
		if err != nil || h.status >= 200 || h.status == http.StatusSwitchingProtocols {
			return h, err
		}
	}
}

func (c *upConn) readOneHead(method string, dst http.Header) (respHead, error) {
	var h respHead
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return h, errBadResponse("status line too long")
		}
		return h, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 14 || string(line[:7]) != "HTTP/1." || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) || (line[12] != ' ' && line[12] != '\r') {
		return h, errBadResponse("bad status line")
	}
	http10 := line[7] == '0'
	h.status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if h.status < 100 {
		return h, errBadResponse("bad status code")
	}

	// Collect the header lines into the connection's scratch buffer; one
	// string conversion at the end gives every key and value without
	// further allocation.
	hb := c.head[:0]
	kvs := c.kvs[:0]
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return h, errBadResponse("header line too long")
			}
			return h, err
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, errBadResponse("obsolete line folding")
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 {
			return h, errBadResponse("header line without a name")
		}
		if len(hb)+len(line) > maxHeadBytes {
			return h, errBadResponse("head too large")
		}
		k0 := len(hb)
		hb = append(hb, line[:colon]...)
		if !canonicalize(hb[k0:]) {
			return h, errBadResponse("invalid header name")
		}
		k1 := len(hb)
		v := trimSpace(line[colon+1:])
		hb = append(hb, v...)
		kvs = append(kvs, kv{k0, k1, k1, len(hb)})
	}
	c.head, c.kvs = hb, kvs

	block := string(hb)
	h.length = lengthUntilClose
	if http10 {
		h.close = true
	}
	var conn []string
	lengthSeen := false
	chunked := false
	for _, e := range kvs {
		k, v := block[e.k0:e.k1], block[e.v0:e.v1]
		switch k {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (lengthSeen && n != h.length) {
				return h, errBadResponse("bad Content-Length")
			}
			h.length, lengthSeen = n, true
		case "Transfer-Encoding":
			if !equalFoldASCII(v, "chunked") {
				return h, errBadResponse("unsupported Transfer-Encoding " + v)
			}
			chunked = true
		case "Connection":
			conn = append(conn, v)
			if containsToken(v, "close") {
				h.close = true
			} else if http10 && containsToken(v, "keep-alive") {
				h.close = false
			}
		case "Trailer":
			if h.trailers != "" {
				h.trailers += ", "
			}
			h.trailers += v
		case "Content-Type":
			if len(v) >= 17 && equalFoldASCII(v[:17], "text/event-stream") {
				h.stream = true
			}
		}
	}
	if chunked {
		h.length = lengthChunked
	}
	noBody := method == http.MethodHead || h.status < 200 || h.status == http.StatusNoContent || h.status == http.StatusNotModified
	if noBody {
		h.length = 0
	}
	if h.length == lengthUntilClose {
		h.close = true
	}
	if h.length < 0 {
		h.stream = true
	}
	if h.status < 200 {
		return h, nil // informational: nothing to forward
	}

	vals := make([]string, len(kvs))
	for i, e := range kvs {
		k := block[e.k0:e.k1]
		if isHopHeader(k) || (len(conn) > 0 && connectionListed(conn, k)) {
			continue
		}
		if chunked && k == "Content-Length" {
			continue // Transfer-Encoding wins (RFC 9112 6.3)
		}
		vals[i] = block[e.v0:e.v1]
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vals[i])
		} else {
			dst[k] = vals[i : i+1 : i+1]
		}
	}
	return h, nil
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// canonicalize rewrites a header name in place into net/http's canonical
// form ("content-type" -> "Content-Type") and reports whether it is a
// valid token.
func canonicalize(b []byte) bool {
	upper := true
	for i, c := range b {
		if !isTokenChar(c) {
			return false
		}
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// errChunk is a malformed chunked body.
var errChunk = errors.New("malformed chunked body")

// copyBodyTo copies the response body described by h from the connection
// to w, straight out of the read buffer. It returns whether the body was
// read completely (so the connection may be reused) and which side
// failed. trailer receives trailer fields of a chunked body.
func (c *upConn) copyBodyTo(w io.Writer, h respHead, flush *bodyFlusher, trailer http.Header) (complete bool, readErr, writeErr error) {
	br := c.br
	switch h.length {
	case 0:
		return true, nil, nil
	case lengthChunked:
		for {
			size, err := c.chunkSize()
			if err != nil {
				return false, err, nil
			}
			if size == 0 {
				if err := c.readTrailer(trailer); err != nil {
					return false, err, nil
				}
				return true, nil, nil
			}
			if _, rerr, werr := c.copyN(w, size, flush); rerr != nil || werr != nil {
				return false, rerr, werr
			}
			line, err := br.ReadSlice('\n')
			if err != nil {
				return false, err, nil
			}
			if len(trimCRLF(line)) != 0 {
				return false, errChunk, nil
			}
		}
	case lengthUntilClose:
		_, rerr, werr := c.copyN(w, -1, flush)
		if errors.Is(rerr, io.EOF) {
			rerr = nil
		}
		return false, rerr, werr
	default:
		_, rerr, werr := c.copyN(w, h.length, flush)
		return rerr == nil && werr == nil, rerr, werr
	}
}

// copyN copies n bytes (all until EOF when n < 0) from the read buffer
// to w. A short body is io.ErrUnexpectedEOF.
func (c *upConn) copyN(w io.Writer, n int64, flush *bodyFlusher) (int64, error, error) {
	br := c.br
	var done int64
	for n < 0 || done < n {
		if br.Buffered() == 0 {
			flush.beforeWait()
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) && n >= 0 {
					err = io.ErrUnexpectedEOF
				}
				return done, err, nil
			}
		}
		m := br.Buffered()
		if n >= 0 && int64(m) > n-done {
			m = int(n - done)
		}
		chunk, _ := br.Peek(m)
		if _, err := w.Write(chunk); err != nil {
			return done, nil, err
		}
		_, _ = br.Discard(m)
		done += int64(m)
		flush.wrote()
	}
	return done, nil, nil
}

// bodyFlusher decides when relayed body bytes are pushed to the client.
// A stream is flushed after every write. Any other body is flushed only
// before the gateway waits for more of it from the upstream: a body that
// is all here (nearly every small answer) leaves in one write with its
// head when the handler returns, and one that arrives slowly still
// reaches the client as it comes instead of sitting in net/http's
// buffers.
type bodyFlusher struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	eager bool
	// pending: something was written (the head, at first) since the last
	// flush.
	pending bool
}

func (f *bodyFlusher) wrote() {
	if f.eager {
		f.flush()
	} else {
		f.pending = true
	}
}

func (f *bodyFlusher) beforeWait() {
	if f.pending {
		f.flush()
	}
}

func (f *bodyFlusher) flush() {
	if f.rc == nil {
		f.rc = http.NewResponseController(f.w)
	}
	_ = f.rc.Flush()
	f.pending = false
}

// chunkSize reads a chunk-size line ("1a2b;ext=1\r\n").
func (c *upConn) chunkSize() (int64, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	line = trimCRLF(line)
	var n int64
	digits := 0
	for _, b := range line {
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		case b == ';' || b == ' ' || b == '\t':
			goto done
		default:
			return 0, errChunk
		}
		if digits == 15 {
			return 0, errChunk
		}
		n = n<<4 | int64(d)
		digits++
	}
done:
	if digits == 0 {
		return 0, errChunk
	}
	return n, nil
}

// readTrailer reads the trailer section after the last chunk.
func (c *upConn) readTrailer(trailer http.Header) error {
	size := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			return nil
		}
		size += len(line)
		if size > maxHeadBytes {
			return errBadResponse("trailer too large")
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 || trailer == nil {
			continue
		}
		name := append([]byte(nil), line[:colon]...)
		if !canonicalize(name) {
			continue
		}
		k := string(name)
		if isHopHeader(k) {
			continue
		}
		trailer[k] = append(trailer[k], string(trimSpace(line[colon+1:])))
	}
}
