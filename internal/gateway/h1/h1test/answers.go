// Package h1test holds test data shared by the h1 engine's tests and the
// gateway's: answers built to split or confuse HTTP/1.1 framing. It
// imports nothing of the project.
package h1test

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
)

// SmugglingAnswer is one upstream answer and what a client of the
// gateway gets from it.
type SmugglingAnswer struct {
	Name, Answer, Want string
	Stricter           bool
}

// SmugglingAnswers are upstream answers built to split or confuse
// framing. want is what a client of the gateway gets: the body (status
// 200), "502" (refused before anything was sent) or "abort" (the status
// line was relayed, then the connection broken off so the truncated body
// cannot pass for a complete one). stricter: net/http accepts it, the
// engine's client refuses.
var SmugglingAnswers = []SmugglingAnswer{
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

// NetHTTPBody reads answer as net/http's Transport does (informational
// answers skipped) and returns the body.
func NetHTTPBody(answer string) (string, error) {
	br := bufio.NewReaderSize(strings.NewReader(answer), 4096)
	for {
		res, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			return "", err
		}
		if res.StatusCode == http.StatusSwitchingProtocols {
			return "", errors.New("protocol switch")
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 200 {
			return string(b), err
		}
	}
}
