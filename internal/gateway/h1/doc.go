// Package h1 is the gateway's HTTP/1.1 engine: a server side that parses
// the common request itself or hands the connection over to net/http
// (Server), and a client side that carries one exchange to an upstream
// over a pooled keep-alive connection (Pools, Pool.Do, Response.Relay),
// both on the caller's goroutine, with raw non-blocking socket I/O where
// the platform has it (Listener).
//
// It holds protocol mechanics only: parsing, framing, connection reuse
// and deadlines. Which requests go where, which headers pass, and what an
// answer means for a route are the caller's (internal/gateway). Each
// parser is held to net/http by differential fuzzing (FuzzRequestParse
// against http.Server, FuzzResponseParse against http.ReadResponse), and
// is stricter where net/http is lenient, never different.
//
// It imports nothing of the project.
package h1
