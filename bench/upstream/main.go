// Command upstream is the model server stand-in of bench/gateway.sh: it
// answers every request with the same small body, so the benchmark
// measures the proxies in front of it.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18081", "address to listen on")
	size := flag.Int("size", 64, "response body size in bytes")
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
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = ctype
		hdr["Content-Length"] = length
		_, _ = w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
