// Command upstream is the model server stand-in of bench/gateway.sh: it
// reads the request body (a prediction's JSON) and answers every request
// with the same small body, so the benchmark measures the proxies in front
// of it; /sse answers a stream of server-sent events, each flushed.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18081", "address to listen on")
	size := flag.Int("size", 64, "response body size in bytes")
	events := flag.Int("events", 8, "events in an /sse answer")
	flag.Parse()

	body := make([]byte, *size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	if len(body) > 0 {
		body[len(body)-1] = '\n'
	}
	length := []string{strconv.Itoa(len(body))}
	ctype := []string{"text/plain; charset=utf-8"}
	event := []byte("data: {\"token\":\"abcdefghijklmnop\"}\n\n")
	sse := []string{"text/event-stream"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hdr := w.Header()
		if strings.HasSuffix(r.URL.Path, "/sse") {
			hdr["Content-Type"] = sse
			rc := http.NewResponseController(w)
			for range *events {
				_, _ = w.Write(event)
				_ = rc.Flush()
			}
			return
		}
		hdr["Content-Type"] = ctype
		hdr["Content-Length"] = length
		_, _ = w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
