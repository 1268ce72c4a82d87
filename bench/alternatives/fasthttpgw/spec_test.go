package main

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestParserAgainstNetHTTP feeds fasthttp's request parser and
// http.ReadRequest the same bytes (the smuggling table of issue 9) and
// records where they differ. want is what fasthttp v1.78.0 does; a
// difference from net/http is a deviation the README lists. The test
// fails when fasthttp's behaviour changes, so the list stays true.
func TestParserAgainstNetHTTP(t *testing.T) {
	for _, c := range []struct {
		name, raw string
		want      string // fasthttp: "reject" or "method path body"
	}{
		{"plain", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", "POST /x hello"},
		{"CL.TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "POST /x hello"},
		{"TE.CL", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "POST /x hello"},
		{"TE xchunked", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "reject"},
		{"TE chunked, identity", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "reject"},
		{"TE twice", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "reject"},
		{"duplicate CL differing", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "reject"},
		{"duplicate CL equal", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "reject"},
		{"CL +5", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", "reject"},
		{"duplicate Host", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "reject"},
		{"no Host", "GET /x HTTP/1.1\r\n\r\n", "reject"},
		{"absolute-form", "GET http://b/y HTTP/1.1\r\nHost: a\r\n\r\n", "GET http://b/y "},
		{"bare LF head", "GET /x HTTP/1.1\nHost: a\n\n", "reject"},
		{"bare LF chunk", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", "reject"},
		{"chunk size 0x5", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", "reject"},
		{"NUL in value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", "reject"},
		{"obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "GET /x "},
		{"space before colon", "GET /x HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", "reject"},
		{"oversized head", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: " + strings.Repeat("b", 1<<20) + "\r\n\r\n", "reject"},
	} {
		t.Run(c.name, func(t *testing.T) {
			gotFast := "reject"
			var req fasthttp.Request
			if err := req.ReadLimitBody(bufio.NewReaderSize(strings.NewReader(c.raw), 8<<10), 1<<20); err == nil {
				gotFast = string(req.Header.Method()) + " " + string(req.Header.RequestURI()) + " " + string(req.Body())
			}
			gotStd := "reject"
			if r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(c.raw))); err == nil {
				if b, err := io.ReadAll(r.Body); err == nil {
					gotStd = r.Method + " " + r.RequestURI + " " + string(b)
				}
			}
			if gotFast != c.want {
				t.Errorf("fasthttp: %q, recorded %q (net/http: %q)", gotFast, c.want, gotStd)
			}
			if gotFast != gotStd {
				t.Logf("DEVIATION %s: fasthttp %q, net/http %q", c.name, short(gotFast), short(gotStd))
			}
		})
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// TestResponseParserAgainstNetHTTP does the same for upstream answers,
// which fasthttp's client parses (issue 9, defect 5 is the lane's bare LF).
func TestResponseParserAgainstNetHTTP(t *testing.T) {
	for _, c := range []struct {
		name, raw string
		want      string // fasthttp: "reject" or "status body"
	}{
		{"plain", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "200 hello"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "200 hello"},
		{"bare LF chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", "reject"},
		{"CL +5", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "reject"},
		{"duplicate CL differing", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "reject"},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "200 hello"},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 5\r\n\r\nhello", "reject"},
		{"bare LF head", "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", "reject"},
	} {
		t.Run(c.name, func(t *testing.T) {
			gotFast := "reject"
			var res fasthttp.Response
			if err := res.ReadLimitBody(bufio.NewReaderSize(strings.NewReader(c.raw), 8<<10), 1<<20); err == nil {
				gotFast = strconv.Itoa(res.StatusCode()) + " " + string(res.Body())
			}
			gotStd := "reject"
			if r, err := http.ReadResponse(bufio.NewReader(strings.NewReader(c.raw)), nil); err == nil {
				if b, err := io.ReadAll(r.Body); err == nil {
					gotStd = strconv.Itoa(r.StatusCode) + " " + string(b)
				}
			}
			if gotFast != c.want {
				t.Errorf("fasthttp: %q, recorded %q (net/http: %q)", gotFast, c.want, gotStd)
			}
			if gotFast != gotStd {
				t.Logf("DEVIATION %s: fasthttp %q, net/http %q", c.name, short(gotFast), short(gotStd))
			}
		})
	}
}
