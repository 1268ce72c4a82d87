package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
)

// MalformedResponseError is an answer the client cannot parse (or will
// not, where net/http is lenient); its text says what is wrong.
type MalformedResponseError string

func (e MalformedResponseError) Error() string { return "malformed response: " + string(e) }

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
//
// The parser accepts a subset of what net/http's ReadResponse accepts and
// frames every message it accepts as net/http does (FuzzResponseParse
// holds it to that). Where net/http is lenient it is stricter and the
// answer is a 502: lines must end in CRLF (net/http takes a bare LF in
// heads and trailers, RFC 9112 section 2.2 allows either), no obsolete
// line folding, no space in header names, a status line of exactly
// "HTTP/1.0" or "HTTP/1.1", a three-digit code >= 100 and an optional
// reason.
func (c *clientConn) readHead(method string, dst http.Header) (respHead, error) {
	// The 1xx answers skipped share the head size limit with the final
	// one, as in net/http's Transport.
	budget := maxHeadBytes
	for {
		h, err := c.readOneHead(method, dst, &budget)
		if err != nil || h.status >= 200 || h.status == http.StatusSwitchingProtocols {
			return h, err
		}
	}
}

// crlfLine reads one line and returns it without its CRLF; a line that
// ends in a bare LF is an error.
func (c *clientConn) crlfLine(what string) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, MalformedResponseError(what + " too long")
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return nil, MalformedResponseError(what + " ends in a bare LF")
	}
	return line[:n-2], nil
}

func (c *clientConn) readOneHead(method string, dst http.Header, budget *int) (respHead, error) {
	var h respHead
	line, err := c.crlfLine("status line")
	if err != nil {
		return h, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) || (len(line) > 12 && line[12] != ' ') {
		return h, MalformedResponseError("bad status line")
	}
	http10 := line[7] == '0'
	h.status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if h.status < 100 {
		return h, MalformedResponseError("bad status code")
	}

	// Collect the header lines into the connection's scratch buffer; one
	// string conversion at the end gives every key and value without
	// further allocation.
	hb := c.head[:0]
	kvs := c.kvs[:0]
	for {
		line, err = c.crlfLine("header line")
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, MalformedResponseError("obsolete line folding")
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 {
			return h, MalformedResponseError("header line without a name")
		}
		if *budget -= len(line); *budget < 0 {
			return h, MalformedResponseError("head too large")
		}
		k0 := len(hb)
		hb = append(hb, line[:colon]...)
		if !canonicalize(hb[k0:]) {
			return h, MalformedResponseError("invalid header name")
		}
		k1 := len(hb)
		v := line[colon+1:]
		if !validHeaderValue(v) {
			return h, MalformedResponseError("control character in a header value")
		}
		v = trimSpace(v)
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
	length := "" // the first Content-Length, as net/http compares them
	lengthSeen := false
	te := 0
	for _, e := range kvs {
		k, v := block[e.k0:e.k1], block[e.v0:e.v1]
		switch k {
		case "Content-Length":
			if lengthSeen {
				if v != length {
					return h, MalformedResponseError("differing Content-Length values")
				}
				continue
			}
			n, ok := parseContentLength(v)
			if !ok {
				return h, MalformedResponseError("bad Content-Length")
			}
			h.length, length, lengthSeen = n, v, true
		case "Transfer-Encoding":
			te++
			// net/http ignores Transfer-Encoding in HTTP/1.0, and takes
			// one field only, "chunked" only (as nginx does).
			if !http10 && (te > 1 || !equalFoldASCII(v, "chunked")) {
				return h, MalformedResponseError("unsupported Transfer-Encoding")
			}
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
	chunked := te > 0 && !http10
	if chunked && h.trailers != "" && !validTrailerNames(h.trailers) {
		return h, MalformedResponseError("Trailer names a framing header")
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
	lengthSent := false
	for i, e := range kvs {
		k := block[e.k0:e.k1]
		if !c.pool.keep(k, conn) {
			continue
		}
		if k == "Content-Length" {
			if chunked || lengthSent {
				// Transfer-Encoding wins (RFC 9112 6.3); equal
				// duplicates pass as one, as in net/http.
				continue
			}
			lengthSent = true
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

// parseContentLength parses a Content-Length value: decimal digits only
// (no sign, no space, as net/http: strconv.ParseInt would take "+5"), at
// most 2^63-1.
func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(v); i++ {
		if !isDigit(v[i]) {
			return 0, false
		}
		n = n*10 + uint64(v[i]-'0')
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// validHeaderValue reports whether v holds no control byte other than
// HTAB (net/textproto refuses the same).
func validHeaderValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validTrailerNames reports whether a Trailer header value names no
// framing header, which net/http refuses.
func validTrailerNames(v string) bool {
	for v != "" {
		var name string
		name, v, _ = strings.Cut(v, ",")
		name = strings.TrimSpace(name)
		for _, bad := range [...]string{"Transfer-Encoding", "Trailer", "Content-Length"} {
			if equalFoldASCII(name, bad) {
				return false
			}
		}
	}
	return true
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
func (c *clientConn) copyBodyTo(w io.Writer, h respHead, flush *bodyFlusher, trailer http.Header) (complete bool, readErr, writeErr error) {
	br := c.br
	switch h.length {
	case 0:
		return true, nil, nil
	case lengthChunked:
		c.excess = 0
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
			crlf, err := br.Peek(2)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return false, err, nil
			}
			if crlf[0] != '\r' || crlf[1] != '\n' {
				return false, errChunk, nil
			}
			_, _ = br.Discard(2)
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
func (c *clientConn) copyN(w io.Writer, n int64, flush *bodyFlusher) (int64, error, error) {
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
// before the client waits for more of it from the upstream: a body that
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

// Chunked framing follows net/http's reader (net/http/internal/chunked.go)
// with the read buffer of its Transport (4 KiB): chunk lines end in CRLF
// (not a bare LF: CVE-2025-22871), a chunk line is shorter than
// maxChunkLine, a size has at most 16 hex digits, and overhead beyond
// 16 bytes per chunk plus twice its data may not pass 16 KiB.
const (
	maxChunkLine  = 4095 // ReadSlice in a 4 KiB buffer, with CRLF
	maxTrailer    = 4096 // trailer lines with their CRLFs, and the blank line
	maxExcess     = 16 << 10
	maxChunkDigit = 16
)

// chunkSize reads a chunk-size line ("1a2b;ext=1\r\n").
func (c *clientConn) chunkSize() (int64, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errChunk
		}
		return 0, err
	}
	if len(line) < 2 || len(line) > maxChunkLine || bytes.IndexByte(line, '\r') != len(line)-2 {
		return 0, errChunk // too long, a bare LF or a CR inside
	}
	line = line[:len(line)-2]
	c.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // extensions are ignored
	}
	if len(line) == 0 || len(line) > maxChunkDigit {
		return 0, errChunk
	}
	var n uint64
	for _, b := range line {
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		default:
			return 0, errChunk
		}
		n = n<<4 | uint64(d)
	}
	if n > math.MaxInt64/4 {
		return 0, errChunk // more than any upstream sends; net/http fails at EOF
	}
	c.excess = max(c.excess-16-2*int64(n), 0)
	if c.excess > maxExcess {
		return 0, errChunk
	}
	return int64(n), nil
}

// readTrailer reads the trailer section after the last chunk. Lines
// must be well-formed header lines ending in CRLF; the section, with its
// blank line, must fit in maxTrailer bytes.
func (c *clientConn) readTrailer(trailer http.Header) error {
	size := 0
	for {
		line, err := c.crlfLine("trailer line")
		if err != nil {
			return err
		}
		if size += len(line) + 2; size > maxTrailer {
			return MalformedResponseError("trailer too large")
		}
		if len(line) == 0 {
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return MalformedResponseError("malformed trailer line")
		}
		name := append([]byte(nil), line[:colon]...)
		v := line[colon+1:]
		if !canonicalize(name) || !validHeaderValue(v) {
			return MalformedResponseError("malformed trailer line")
		}
		if trailer == nil {
			continue
		}
		k := string(name)
		if !c.pool.keep(k, nil) {
			continue
		}
		trailer[k] = append(trailer[k], string(trimSpace(v)))
	}
}

// containsToken reports whether the comma-separated list v holds token
// (ASCII case-insensitive).
func containsToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if equalFoldASCII(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}
