// Package client is the typed Go client of the mlregistry HTTP API
// (/api/v1). It retries transient failures with go-retryablehttp, sends an
// Idempotency-Key on every write (so a retry after a lost answer gets the
// first answer, even for a conditional write whose first attempt already
// moved the revision) and If-Match on conditional writes, and
// decodes RFC 9457 problem+json answers into *registry.Error values, so
// callers test them with errors.Is(err, registry.ErrNotFound) and friends.
//
// It imports the registry package for the wire types and error codes and
// must not import the server or any other package of this project. The
// bearer token never appears in an error, a log line or a String().
package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Defaults of Options.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultMaxRetries   = 4
	DefaultRetryWaitMin = 500 * time.Millisecond
	DefaultRetryWaitMax = 10 * time.Second
	// MaxRetryAfter caps how long a server's Retry-After may make us wait
	// between two attempts: a registry that asks for longer is treated as
	// asking for this long, so one apply does not stall for minutes.
	MaxRetryAfter = 30 * time.Second
	// DefaultUserAgent is used when Options.UserAgent is empty.
	DefaultUserAgent = "terraform-provider-mlregistry/dev"
)

// maxIdleConnsPerHost is how many idle connections to the registry the
// default transport keeps for reuse.
const maxIdleConnsPerHost = 32

// maxBody bounds how much of an answer is read; the server's own request
// limit is 1 MiB, answers (list pages) may be larger.
const maxBody = 32 << 20

// LogFunc receives the client's debug messages: each request, each retry
// and why. Fields never contain the token or the Authorization header.
type LogFunc func(ctx context.Context, msg string, fields map[string]any)

// Options configures a Client.
type Options struct {
	// Address is the registry's base URL, e.g. http://127.0.0.1:8080.
	Address string
	// Token is the bearer token secret (mlr_...).
	Token string
	// Timeout bounds each HTTP attempt (default 30s).
	Timeout time.Duration
	// MaxRetries is how many times a transient failure is retried
	// (default 4; a negative value disables retries).
	MaxRetries int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts (defaults 500ms and 10s). A Retry-After header on 429 or 503
	// takes precedence, capped at MaxRetryAfter; when that wait would end
	// after the context's deadline, the answer is returned at once.
	RetryWaitMin, RetryWaitMax time.Duration
	// UserAgent, e.g. terraform-provider-mlregistry/1.2.3.
	UserAgent string
	// Logger, when set, receives debug messages.
	Logger LogFunc
	// HTTPClient replaces the underlying transport client (its Timeout is
	// overwritten by Timeout).
	HTTPClient *http.Client
	// CAFile is a PEM file of CA certificates trusted for an https://
	// registry, besides the system's (a private CA). Ignored with
	// HTTPClient.
	CAFile string
	// ReadPageSize is the page size ReadVersion lists a model's versions
	// with (default and maximum registry.MaxPageSize): more versions per
	// page are fewer requests per plan.
	ReadPageSize int
}

// String describes the options without the token.
func (o Options) String() string {
	tok := "(none)"
	if o.Token != "" {
		tok = "(redacted)"
	}
	return fmt.Sprintf("client.Options{Address: %q, Token: %s, Timeout: %s, MaxRetries: %d, UserAgent: %q}",
		o.Address, tok, o.Timeout, o.MaxRetries, o.UserAgent)
}

// GoString is String, so %#v cannot print the token either.
func (o Options) GoString() string { return o.String() }

// Client talks to one registry. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	userAgent string
	log       LogFunc
	http      *retryablehttp.Client
	// reads holds ReadVersion's snapshots (readcache.go), listed
	// readPageSize versions a page.
	reads        versionSnapshots
	readPageSize int
}

// New checks the options and returns a client. It does not contact the
// registry; call Ping for that.
func New(opts Options) (*Client, error) {
	if strings.TrimSpace(opts.Address) == "" {
		return nil, errors.New("registry address is empty")
	}
	base, err := url.Parse(strings.TrimRight(opts.Address, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("registry address %q must be an http:// or https:// URL with a host", redactAddress(opts.Address))
	}
	if base.User != nil {
		return nil, fmt.Errorf("registry address %q must not contain credentials; use the token", base.Redacted())
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("registry address %q must not have a query or fragment", base.String())
	}
	if strings.ContainsAny(opts.Token, "\r\n") {
		return nil, errors.New("registry token contains a line break")
	}
	c := &Client{base: base, token: opts.Token, userAgent: opts.UserAgent, log: opts.Logger, readPageSize: opts.ReadPageSize}
	if c.readPageSize <= 0 || c.readPageSize > registry.MaxPageSize {
		c.readPageSize = registry.MaxPageSize
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.log == nil {
		c.log = func(context.Context, string, map[string]any) {}
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Terraform calls a provider from up to -parallelism (default 10)
		// goroutines at once, all to this one host; net/http keeps only 2
		// idle connections per host by default, so the others would be
		// closed after each answer and dialled again.
		tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
		if opts.CAFile != "" {
			pool, err := caPool(opts.CAFile)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		hc = &http.Client{Transport: tr}
	} else {
		cp := *hc
		hc = &cp
	}
	hc.Timeout = opts.Timeout
	if hc.Timeout <= 0 {
		hc.Timeout = DefaultTimeout
	}
	// Redirects would resend the Authorization header elsewhere; the API
	// never redirects.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       nil, // logging goes through LogFunc, with the request's context
		RetryWaitMin: opts.RetryWaitMin,
		RetryWaitMax: opts.RetryWaitMax,
		RetryMax:     opts.MaxRetries,
		CheckRetry:   c.checkRetry,
		Backoff:      backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, attempt int) {
			if attempt > 0 {
				c.log(req.Context(), "retrying registry request", map[string]any{
					"method": req.Method, "path": req.URL.Path, "attempt": attempt + 1,
				})
			}
		},
	}
	if rc.RetryWaitMin <= 0 {
		rc.RetryWaitMin = DefaultRetryWaitMin
	}
	if rc.RetryWaitMax <= 0 {
		rc.RetryWaitMax = DefaultRetryWaitMax
	}
	if rc.RetryWaitMax < rc.RetryWaitMin {
		rc.RetryWaitMax = rc.RetryWaitMin
	}
	switch {
	case opts.MaxRetries == 0:
		rc.RetryMax = DefaultMaxRetries
	case opts.MaxRetries < 0:
		rc.RetryMax = 0
	}
	c.http = rc
	return c, nil
}

// String describes the client without the token.
func (c *Client) String() string {
	return fmt.Sprintf("client.Client{Address: %q, Token: (redacted)}", c.base.String())
}

// GoString is String, so %#v cannot print the token either.
func (c *Client) GoString() string { return c.String() }

// Address returns the registry's base URL.
func (c *Client) Address() string { return c.base.String() }

// checkRetry retries connection errors and the statuses that say "try
// again later" (429, 502, 503, 504). Every other answer, including other
// 4xx and 500, is final.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		retry, _ := retryablehttp.DefaultRetryPolicy(ctx, nil, err)
		if retry {
			c.log(ctx, "registry request failed, will retry", map[string]any{"error": err.Error()})
		}
		return retry, nil
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// Sleeping into the deadline would turn the registry's answer
		// ("unavailable, come back in 20s") into a bare timeout.
		if deadline, ok := ctx.Deadline(); ok {
			if wait, ok := retryAfter(resp); ok && time.Now().Add(wait).After(deadline) {
				c.log(ctx, "registry asks to retry after the deadline, giving up", map[string]any{
					"status": resp.StatusCode, "retry_after": resp.Header.Get("Retry-After"),
				})
				return false, nil
			}
		}
		c.log(ctx, "registry answered with a transient status, will retry", map[string]any{
			"status": resp.StatusCode, "retry_after": resp.Header.Get("Retry-After"),
		})
		return true, nil
	}
	return false, nil
}

// backoff is retryablehttp's exponential backoff, honouring Retry-After on
// 429 and 503 up to MaxRetryAfter.
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if d, ok := retryAfter(resp); ok {
		return d
	}
	return retryablehttp.DefaultBackoff(minWait, maxWait, attempt, nil)
}

// retryAfter is the wait a 429 or 503 answer asks for, capped at
// MaxRetryAfter; other statuses' Retry-After is not a promise of service.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"))
	return min(d, MaxRetryAfter), ok
}

func parseRetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := time.Until(t)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// request is one logical API call.
type request struct {
	method string
	path   string
	query  url.Values
	body   any
	// ifRevision > 0 sends If-Match: "<ifRevision>".
	ifRevision int64
	// idempotent sends an Idempotency-Key, generated once per call and
	// reused by every retry of it. Every write (any method but GET and
	// HEAD) sends one anyway.
	idempotent bool
}

// response is what a successful call returns besides its decoded body.
type response struct {
	status int
	header http.Header
}

// do runs req and decodes a 2xx JSON body into out (when out is not nil).
// A non-2xx answer becomes an error wrapping *registry.Error.
func (c *Client) do(ctx context.Context, req request, out any) (*response, error) {
	// req.path is already escaped segment by segment (apiPath).
	u, err := url.Parse(c.base.String() + req.path)
	if err != nil {
		return nil, fmt.Errorf("building %s %s request: %w", req.method, req.path, err)
	}
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}

	var body []byte
	if req.body != nil {
		body, err = json.Marshal(req.body)
		if err != nil {
			return nil, fmt.Errorf("encoding %s %s request: %w", req.method, req.path, err)
		}
	}
	var rawBody any
	if body != nil {
		rawBody = body
	}
	hr, err := retryablehttp.NewRequestWithContext(ctx, req.method, u.String(), rawBody)
	if err != nil {
		return nil, fmt.Errorf("building %s %s request: %w", req.method, req.path, err)
	}
	hr.Header.Set("Accept", "application/json, application/problem+json")
	hr.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.ifRevision > 0 {
		hr.Header.Set("If-Match", etag(req.ifRevision))
	}
	fields := map[string]any{"method": req.method, "path": req.path}
	if req.idempotent || (req.method != http.MethodGet && req.method != http.MethodHead) {
		key, ok := ctx.Value(idempotencyKeyContext{}).(string)
		if !ok {
			key = newIdempotencyKey()
		}
		hr.Header.Set("Idempotency-Key", key)
		fields["idempotency_key"] = key
	}
	if req.ifRevision > 0 {
		fields["if_match"] = req.ifRevision
	}
	c.log(ctx, "registry request", fields)

	start := time.Now()
	resp, err := c.http.Do(hr)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, c.transportError(ctx, req, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading answer: %w", req.method, req.path, err)
	}
	c.log(ctx, "registry response", map[string]any{
		"method": req.method, "path": req.path, "status": resp.StatusCode,
		"request_id": resp.Header.Get("X-Request-Id"), "duration_ms": time.Since(start).Milliseconds(),
		"idempotent_replayed": resp.Header.Get("Idempotent-Replayed") == "true",
	})
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeError(req, resp, data)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: decoding answer (HTTP %d): %w", req.method, req.path, resp.StatusCode, err)
		}
	}
	return &response{status: resp.StatusCode, header: resp.Header}, nil
}

// transportError wraps a failure to get any answer. It matches
// registry.ErrUnavailable, so callers can tell "unreachable" from an
// answer. The message names the address, never the token.
func (c *Client) transportError(ctx context.Context, req request, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", req.method, req.path, ctx.Err())
	}
	return &TransportError{Method: req.method, Address: c.base.String(), Path: req.path, Err: err}
}

// TransportError is returned when the registry could not be reached (after
// retries). errors.Is(err, registry.ErrUnavailable) is true for it.
type TransportError struct {
	Method, Address, Path string
	Err                   error
}

func (e *TransportError) Error() string {
	msg := e.Err.Error()
	var ne net.Error
	if errors.As(e.Err, &ne) && ne.Timeout() {
		msg = "timed out: " + msg
	}
	return fmt.Sprintf("could not reach the registry at %s (%s %s): %s", e.Address, e.Method, e.Path, msg)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Is makes a transport failure match registry.ErrUnavailable.
func (e *TransportError) Is(target error) bool {
	var t *registry.Error
	return errors.As(target, &t) && t.Code == registry.CodeUnavailable && t.Message == ""
}

// APIError is a non-2xx answer of the registry. It wraps the decoded
// *registry.Error, so errors.Is(err, registry.ErrNotFound) and
// errors.As(err, &*registry.Error) work on it.
type APIError struct {
	Method string
	Path   string
	// StatusCode is the HTTP status.
	StatusCode int
	// RequestID is the server's request ID (problem+json request_id or the
	// X-Request-Id header), for finding the request in server logs.
	RequestID string
	// Problem is the decoded error: code, message (the problem's detail),
	// field and rule.
	Problem *registry.Error
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Problem.Message)
	fmt.Fprintf(&b, " (HTTP %d %s", e.StatusCode, e.Problem.Code)
	if e.RequestID != "" {
		fmt.Fprintf(&b, ", request %s", e.RequestID)
	}
	b.WriteString(")")
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Problem }

// problem is an RFC 9457 body with the registry's extension members.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Field     string `json:"field"`
	Rule      string `json:"rule"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
}

func decodeError(req request, resp *http.Response, data []byte) error {
	e := &APIError{Method: req.method, Path: req.path, StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var p problem
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if (mt == "application/problem+json" || mt == "application/json") && json.Unmarshal(data, &p) == nil && (p.Code != "" || p.Detail != "" || p.Title != "") {
		code := registry.Code(p.Code)
		if code == "" {
			code = registry.CodeForStatus(resp.StatusCode)
		}
		msg := p.Detail
		if msg == "" {
			msg = p.Title
		}
		e.Problem = &registry.Error{Code: code, Message: msg, Field: p.Field, Rule: p.Rule}
		if p.RequestID != "" {
			e.RequestID = p.RequestID
		}
		return e
	}
	code := registry.CodeForStatus(resp.StatusCode)
	msg := fmt.Sprintf("%s %s: %s", req.method, req.path, http.StatusText(resp.StatusCode))
	if text := strings.TrimSpace(string(data)); text != "" && mt == "text/plain" && len(text) < 512 {
		msg += ": " + text
	}
	e.Problem = &registry.Error{Code: code, Message: msg}
	return e
}

func etag(revision int64) string { return `"` + strconv.FormatInt(revision, 10) + `"` }

type idempotencyKeyContext struct{}

// WithIdempotencyKey makes the writes made with ctx send key as their
// Idempotency-Key instead of one generated per call, so a caller that runs
// the same write again (a pipeline re-run) gets the first answer back
// instead of a second write.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKeyContext{}, key)
}

// newIdempotencyKey returns a random UUID (version 4).
func newIdempotencyKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; a time-based
		// key still identifies this one call.
		return fmt.Sprintf("t-%d", time.Now().UnixNano())
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// apiPath joins escaped segments under /api/v1.
func apiPath(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func redactAddress(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.User != nil {
		return u.Redacted()
	}
	return addr
}

func listQuery(o registry.ListOptions) url.Values {
	q := url.Values{}
	if o.PageSize > 0 {
		q.Set("page_size", strconv.Itoa(o.PageSize))
	}
	if o.PageToken != "" {
		q.Set("page_token", o.PageToken)
	}
	return q
}

// collect walks every page of a list.
func collect[T any](ctx context.Context, pageSize int, list func(ctx context.Context, o registry.ListOptions) (*registry.Page[T], error)) ([]T, error) {
	var all []T
	opts := registry.ListOptions{PageSize: pageSize}
	for {
		page, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextPageToken == "" {
			return all, nil
		}
		if page.NextPageToken == opts.PageToken {
			return nil, fmt.Errorf("registry returned the same page token twice")
		}
		opts.PageToken = page.NextPageToken
	}
}

// caPool is the system's trusted certificates plus those in file.
func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}
