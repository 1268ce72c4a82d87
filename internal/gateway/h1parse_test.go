package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// parsed is a response as a client of the gateway would get it.
type parsed struct {
	status  int
	header  http.Header
	body    []byte
	trailer http.Header // nil: not compared
}

// parseOurs reads a response from data with the lean client's parser.
func parseOurs(data []byte) (*parsed, error) {
	c := &upConn{br: bufio.NewReaderSize(bytes.NewReader(data), upReadBuf)}
	hdr := http.Header{}
	h, err := c.readHead(http.MethodGet, hdr)
	if err != nil {
		return nil, err
	}
	if h.status == http.StatusSwitchingProtocols {
		return nil, errBadResponse("protocol switch nobody asked for")
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
	for _, c := range smugglingAnswers {
		f.Add([]byte(c.answer))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareParsers(t, data)
	})
}

// smugglingAnswers are upstream answers built to split or confuse
// framing. want is what a client of the gateway gets: the body (status
// 200), "502" (refused before anything was sent) or "abort" (the status
// line was relayed, then the connection broken off so the truncated body
// cannot pass for a complete one). stricter: net/http accepts it, the
// lean client refuses.
var smugglingAnswers = []struct {
	name, answer, want string
	stricter           bool
}{
	{"CL.TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello", false},
	{"TE.CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello", false},
	{"TE.CL bad CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "502", false},
	{"TE upper case", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello", false},
	{"TE tab", "HTTP/1.1 200 OK\r\nTransfer-Encoding:\tchunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello", false},
	{"TE xchunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "502", false},
	{"TE list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "502", false},
	{"TE twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "502", false},
	{"TE identity then chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "502", false},
	{"TE space before colon", "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello", "502", true},
	{"TE vertical tab", "HTTP/1.1 200 OK\r\nTransfer-Encoding: \vchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "502", false},
	{"TE in HTTP/1.0 ignored", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", "hello", false},
	{"TE obs-fold", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n chunked\r\nContent-Length: 5\r\n\r\nhello", "502", false},
	{"CL twice differing", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "502", false},
	{"CL twice equal", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "hello", false},
	{"CL leading zero twice", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello", "502", false},
	{"CL plus", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "502", false},
	{"CL minus", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello", "502", false},
	{"CL hex", "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello", "502", false},
	{"CL list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", "502", false},
	{"CL empty", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nhello", "502", false},
	{"CL overflow", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nhello", "502", false},
	{"CL short body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", "abort", false},
	{"chunked bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", "abort", false},
	{"chunk data bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", "abort", false},
	{"chunk CR inside", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r;x\r\nhello\r\n0\r\n\r\n", "abort", false},
	{"chunk size plus", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", "abort", false},
	{"chunk size space then junk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", "abort", false},
	{"chunk size NUL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\x00\r\nhello\r\n0\r\n\r\n", "abort", false},
	{"chunk extension", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b \r\nhello\r\n0\r\n\r\n", "hello", false},
	{"trailer bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\n\r\n\r\n", "abort", true},
	{"trailer names framing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "502", false},
	{"head bare LF", "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", "502", true},
	{"head bare LF after CRLF", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\n\r\nhello", "502", true},
	{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 5\r\n\r\nhello", "502", false},
	{"NUL in name", "HTTP/1.1 200 OK\r\nX-\x00A: b\r\nContent-Length: 5\r\n\r\nhello", "502", false},
	{"CR in value", "HTTP/1.1 200 OK\r\nX-A: b\rContent-Length: 1\r\nContent-Length: 5\r\n\r\nhello", "502", false},
	{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 5\r\n\r\nhello", "502", true},
	{"leading space first header", "HTTP/1.1 200 OK\r\n Content-Length: 5\r\n\r\nhello", "502", false},
	{"status HTTP/1.2", "HTTP/1.2 200 OK\r\nContent-Length: 5\r\n\r\nhello", "502", true},
	{"status HTTP/1.x", "HTTP/1.x 200 OK\r\nContent-Length: 5\r\n\r\nhello", "502", false},
	{"status four digits", "HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello", "502", false},
	{"oversized header line", "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", 20<<10) + "\r\nContent-Length: 5\r\n\r\nhello", "502", true},
	{"oversized head", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 1100) + "Content-Length: 5\r\n\r\nhello", "502", true},
	{"1xx then answer", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", false},
	{"unasked 101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nhello", "502", false},
}

func TestResponseParserAgreesWithNetHTTP(t *testing.T) {
	for _, c := range smugglingAnswers {
		t.Run(c.name, func(t *testing.T) {
			compareParsers(t, []byte(c.answer))
			_, oerr := parseOurs([]byte(c.answer))
			_, terr := parseNetHTTP([]byte(c.answer))
			if c.stricter != (oerr != nil && terr == nil) {
				t.Errorf("stricter than net/http: %v (ours: %v, net/http: %v), table says %v", !c.stricter, oerr, terr, c.stricter)
			}
		})
	}
}

// TestSmugglingAnswersThroughGateway sends each answer through the lean
// client (the lane and net/http) and the Transport path and checks what
// the client gets: the body net/http would read, a 502, or a broken-off
// answer; never anything framed differently.
func TestSmugglingAnswersThroughGateway(t *testing.T) {
	for _, c := range smugglingAnswers {
		up := rawUpstream(t, func(conn net.Conn, br *bufio.Reader) {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil { // a POST body, whole
				return
			}
			_, _ = io.WriteString(conn, c.answer)
		})
		for _, p := range gatewayPaths {
			if p.name == "upgrade" {
				continue
			}
			t.Run(c.name+"/"+p.name, func(t *testing.T) {
				// A gateway each: the upstream closes every connection
				// after its answer, and no path may inherit another's
				// pooled connection that is closing.
				h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
				want := c.want
				if p.viaTransport && c.stricter {
					// net/http parses this path's answers: its body, or
					// a 502 when its Transport's own limits refuse.
					theirs, err := parseNetHTTP([]byte(c.answer))
					if err != nil {
						t.Fatal(err)
					}
					want = string(theirs.body)
					if c.name == "oversized head" {
						want = "502"
					}
				}
				req, _ := http.NewRequest(p.method, "http://"+h.addr+"/serve/e/x", p.bodyReader())
				tr := &http.Transport{}
				defer tr.CloseIdleConnections()
				res, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					if want == "abort" {
						return
					}
					t.Fatal(err)
				}
				defer res.Body.Close()
				got, rerr := io.ReadAll(res.Body)
				switch want {
				case "abort":
					if rerr == nil {
						t.Fatalf("status %d and a complete body %q, want a broken-off answer", res.StatusCode, got)
					}
				case "502":
					if res.StatusCode != http.StatusBadGateway {
						t.Fatalf("status %d body %q, want 502", res.StatusCode, got)
					}
				default:
					if rerr != nil || res.StatusCode != http.StatusOK || string(got) != want {
						t.Fatalf("status %d body %q (%v), want 200 %q", res.StatusCode, got, rerr, want)
					}
				}
			})
		}
	}
}
