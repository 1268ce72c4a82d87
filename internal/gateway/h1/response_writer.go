package h1

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// responseWriter is the http.ResponseWriter of a request the Server serves: it writes
// HTTP/1.1 to the connection's buffered writer, with Content-Length
// framing when the handler set it and chunked framing otherwise.
type responseWriter struct {
	lc          *serverConn
	method      string
	hdr         http.Header
	wroteHeader bool
	status      int
	bytes       int64 // body bytes written
	chunked     bool
	noBody      bool
	err         error
	numBuf      [20]byte
}

func (w *responseWriter) Header() http.Header { return w.hdr }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader || code < 200 {
		return // informational answers are not forwarded
	}
	w.wroteHeader = true
	w.status = code
	bw := w.lc.bw
	w.noBody = w.method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	_, hasLen := w.hdr["Content-Length"]
	w.chunked = !hasLen && !w.noBody
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(w.numBuf[:0], int64(code), 10))
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(http.StatusText(code))
	_, _ = bw.WriteString("\r\n")
	if _, ok := w.hdr["Date"]; !ok {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	for k, vv := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Transfer-Encoding" || k == "Connection" {
			continue // trailers come after the body; framing is ours
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	_, _ = bw.WriteString("\r\n")
}

// writeHeaderLine writes "k: v", with CR and LF in v turned into spaces
// as net/http does, so no value can start a header of its own.
func writeHeaderLine(bw *bufio.Writer, k, v string) {
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			_ = bw.WriteByte(' ')
		} else {
			_ = bw.WriteByte(c)
		}
	}
	_, _ = bw.WriteString("\r\n")
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	bw := w.lc.bw
	if w.chunked {
		_, _ = bw.Write(strconv.AppendInt(w.numBuf[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	w.bytes += int64(n)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what is buffered (http.Flusher, for streamed answers).
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil {
		w.err = w.lc.bw.Flush()
	}
}

// SetReadDeadline sets the client connection's read deadline (for
// http.ResponseController): the proxy wakes a body read with it.
func (w *responseWriter) SetReadDeadline(t time.Time) error {
	w.lc.deadline = t
	return w.lc.c.SetReadDeadline(t)
}

// finish ends the response: the last chunk and trailers when chunked,
// then one write to the connection.
func (w *responseWriter) finish() error {
	if !w.wroteHeader {
		if _, ok := w.hdr["Content-Length"]; !ok {
			w.hdr["Content-Length"] = []string{"0"}
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	bw := w.lc.bw
	if w.chunked {
		_, _ = bw.WriteString("0\r\n")
		for k, vv := range w.hdr {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					writeHeaderLine(bw, name, v)
				}
			}
		}
		_, _ = bw.WriteString("\r\n")
	}
	w.err = bw.Flush()
	return w.err
}

// httpDate is the Date header value, formatted at most once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var cachedDate atomic.Pointer[dateText]
