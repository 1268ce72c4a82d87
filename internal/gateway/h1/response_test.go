package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1/h1test"
)

// parsed is a response as a client of the gateway would get it.
type parsed struct {
	status  int
	header  http.Header
	body    []byte
	trailer http.Header // nil: not compared
}

// keepEndToEnd drops hop-by-hop fields, as the gateway's forwarding
// rules do.
func keepEndToEnd(k string, conn []string) bool {
	if isHopHeader(k) {
		return false
	}
	for _, v := range conn {
		if containsToken(v, k) {
			return false
		}
	}
	return true
}

func isHopHeader(k string) bool {
	switch k {
	case "Te", "Trailer", "Upgrade", "Connection", "Keep-Alive", "Proxy-Connection",
		"Transfer-Encoding", "Proxy-Authenticate", "Proxy-Authorization":
		return true
	}
	return false
}

// parseOurs reads a response from data with the engine client's parser.
func parseOurs(data []byte) (*parsed, error) {
	c := &clientConn{br: bufio.NewReaderSize(bytes.NewReader(data), upReadBuf), pool: &Pool{keepHeader: keepEndToEnd}}
	hdr := http.Header{}
	h, err := c.readHead(http.MethodGet, hdr)
	if err != nil {
		return nil, err
	}
	if h.status == http.StatusSwitchingProtocols {
		return nil, MalformedResponseError("protocol switch nobody asked for")
	}
	var trailer http.Header
	if h.trailers != "" && h.length == lengthChunked {
		trailer = http.Header{}
	}
	var body bytes.Buffer
	flush := &bodyFlusher{w: httptest.NewRecorder()}
	_, rerr, werr := c.copyBodyTo(&body, h, flush, trailer)
	if err := errors.Join(rerr, werr); err != nil {
		return nil, err
	}
	return &parsed{status: h.status, header: hdr, body: body.Bytes(), trailer: trailer}, nil
}

// parseNetHTTP reads a response from data as net/http's Transport does:
// ReadResponse with a 4 KiB buffer, informational answers skipped.
func parseNetHTTP(data []byte) (*parsed, error) {
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	for {
		res, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			return nil, err
		}
		if res.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("protocol switch")
		}
		if res.StatusCode >= 100 && res.StatusCode < 200 {
			continue
		}
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return nil, err
		}
		return &parsed{status: res.StatusCode, header: res.Header, body: body, trailer: res.Trailer}, nil
	}
}

var strictStatusLine = regexp.MustCompile(`^HTTP/1\.[01] [1-9][0-9]{2}( [^\r\n]*)?\r\n`)

// stricter reports why the lean parser may refuse data that net/http
// accepts (see readHead): each reason is a leniency of net/http's we do
// not copy. The refusal is a 502 (or a broken-off body), never a
// different framing.
func stricter(data []byte) string {
	for i, b := range data {
		if b == '\n' && (i == 0 || data[i-1] != '\r') {
			return "bare LF"
		}
	}
	if bytes.Contains(data, []byte("\n ")) || bytes.Contains(data, []byte("\n\t")) {
		return "obs-fold"
	}
	if !strictStatusLine.Match(data) {
		return "status line"
	}
	for line := range bytes.SplitSeq(data, []byte("\r\n")) {
		if name, _, ok := bytes.Cut(line, []byte(":")); ok && bytes.ContainsAny(name, " \t") {
			return "space in a header name"
		}
	}
	if len(data) >= upReadBuf {
		return "long line or head"
	}
	return ""
}

// connectionListed reports whether some Connection field of the raw
// head names k (net/http drops "Connection: close" from Response.Header,
// so the header map alone cannot tell).
func rawConnectionListed(data []byte, k string) bool {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		name, v, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(name), "Connection") && containsToken(string(v), k) {
			return true
		}
	}
	return false
}

// compareParsers checks the lean parser against net/http on data.
func compareParsers(t *testing.T, data []byte) {
	t.Helper()
	ours, oerr := parseOurs(data)
	theirs, terr := parseNetHTTP(data)
	switch {
	case oerr != nil && terr != nil:
		return
	case oerr != nil:
		if why := stricter(data); why == "" {
			t.Fatalf("lean parser refused what net/http accepts (%v); net/http: %d %q %q", oerr, theirs.status, theirs.header, theirs.body)
		}
		return
	case terr != nil:
		t.Fatalf("lean parser accepted what net/http refuses (%v): %d %q %q", terr, ours.status, ours.header, ours.body)
	}
	if ours.status != theirs.status {
		t.Fatalf("status %d, net/http %d", ours.status, theirs.status)
	}
	for k, vv := range ours.header {
		if !slices.Equal(vv, theirs.header[k]) {
			t.Fatalf("header %s = %q, net/http %q", k, vv, theirs.header[k])
		}
	}
	for k, vv := range theirs.header {
		if _, ok := ours.header[k]; ok || isHopHeader(k) || k == "Content-Length" || rawConnectionListed(data, k) {
			continue
		}
		if k == "Cache-Control" && theirs.header.Get("Pragma") == "no-cache" {
			continue // net/http adds it
		}
		t.Fatalf("header %s = %q from net/http only", k, vv)
	}
	if cl := ours.header["Content-Length"]; cl != nil && !slices.Equal(cl, theirs.header["Content-Length"]) {
		t.Fatalf("Content-Length %q, net/http %q", cl, theirs.header["Content-Length"])
	}
	if !bytes.Equal(ours.body, theirs.body) {
		t.Fatalf("body %q, net/http %q", ours.body, theirs.body)
	}
	if ours.trailer != nil {
		for k, vv := range ours.trailer {
			if !slices.Equal(vv, theirs.trailer[k]) {
				t.Fatalf("trailer %s = %q, net/http %q", k, vv, theirs.trailer[k])
			}
		}
		for k, vv := range theirs.trailer {
			if _, ok := ours.trailer[k]; !ok && vv != nil && !isHopHeader(k) {
				t.Fatalf("trailer %s = %q from net/http only", k, vv)
			}
		}
	}
}

// FuzzResponseParse holds the lean client's response parser to
// net/http's: what it accepts, net/http accepts with the same status,
// headers, body and trailers; what it refuses, net/http refuses too,
// unless a documented strictness (see stricter) explains it. The seed
// corpus is in testdata/fuzz/FuzzResponseParse (the smuggling table's
// answers among them).
func FuzzResponseParse(f *testing.F) {
	for _, c := range h1test.SmugglingAnswers {
		f.Add([]byte(c.Answer))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareParsers(t, data)
	})
}

func TestResponseParserAgreesWithNetHTTP(t *testing.T) {
	for _, c := range h1test.SmugglingAnswers {
		t.Run(c.Name, func(t *testing.T) {
			compareParsers(t, []byte(c.Answer))
			_, oerr := parseOurs([]byte(c.Answer))
			_, terr := parseNetHTTP([]byte(c.Answer))
			if c.Stricter != (oerr != nil && terr == nil) {
				t.Errorf("stricter than net/http: %v (ours: %v, net/http: %v), table says %v", !c.Stricter, oerr, terr, c.Stricter)
			}
		})
	}
}
