package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultPrometheusTimeout bounds one gate query.
const DefaultPrometheusTimeout = 10 * time.Second

// Querier answers a PromQL instant query with one number.
type Querier interface {
	Query(ctx context.Context, promQL string) (float64, error)
}

// Prometheus asks a Prometheus server's instant-query API
// (GET /api/v1/query). client_golang's API package would pull in a JSON
// library of its own for this one call; the answer's shape is small.
type Prometheus struct {
	endpoint string
	http     *http.Client
	timeout  time.Duration
}

// NewPrometheus returns a client of the Prometheus at base (http or https,
// e.g. http://prometheus:9090, a path prefix allowed); timeout 0 is
// DefaultPrometheusTimeout.
func NewPrometheus(base string, timeout time.Duration) (*Prometheus, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus url %q: want http(s)://host[:port][/path]", base)
	}
	if u.User != nil {
		return nil, fmt.Errorf("prometheus url %q: credentials in the URL are not supported", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("prometheus url %q: no query or fragment, only the base URL", base)
	}
	if timeout <= 0 {
		timeout = DefaultPrometheusTimeout
	}
	return &Prometheus{
		endpoint: strings.TrimRight(u.String(), "/") + "/api/v1/query",
		http:     &http.Client{Timeout: timeout},
		timeout:  timeout,
	}, nil
}

// ErrNoSample and ErrSamples are a query's answer that a gate cannot
// judge: a gate needs exactly one number.
var (
	ErrNoSample = errors.New("the query returned no sample")
	ErrSamples  = errors.New("the query returned more than one sample (aggregate it, e.g. with sum or max)")
)

// queryAnswer is the body of /api/v1/query.
type queryAnswer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// Query runs promQL at Prometheus's current time and returns its one
// sample's value. A scalar answer counts as one sample, so does a vector
// of one; a range vector or a string is refused.
func (p *Prometheus) Query(ctx context.Context, promQL string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.endpoint+"?"+url.Values{"query": {promQL}}.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("prometheus query: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return 0, fmt.Errorf("prometheus %s did not answer within %s", p.endpoint, p.timeout)
		}
		return 0, fmt.Errorf("prometheus %s: %w", p.endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("prometheus %s: read answer: %w", p.endpoint, err)
	}
	var a queryAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.Status == "" {
		return 0, fmt.Errorf("prometheus %s: HTTP %d with no Prometheus answer (is this a Prometheus URL?)", p.endpoint, resp.StatusCode)
	}
	if a.Status != "success" {
		return 0, fmt.Errorf("prometheus refused the query (%s): %s", a.ErrorType, a.Error)
	}
	var f float64
	switch a.Data.ResultType {
	case "vector":
		var v []struct {
			Value [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(a.Data.Result, &v); err != nil {
			return 0, fmt.Errorf("prometheus %s: malformed vector: %w", p.endpoint, err)
		}
		switch len(v) {
		case 0:
			return 0, ErrNoSample
		case 1:
		default:
			return 0, fmt.Errorf("%w: %d samples", ErrSamples, len(v))
		}
		if f, err = sampleValue(v[0].Value[1]); err != nil {
			return 0, fmt.Errorf("prometheus %s: %w", p.endpoint, err)
		}
	case "scalar":
		var v [2]json.RawMessage
		if err := json.Unmarshal(a.Data.Result, &v); err != nil {
			return 0, fmt.Errorf("prometheus %s: malformed scalar: %w", p.endpoint, err)
		}
		if f, err = sampleValue(v[1]); err != nil {
			return 0, fmt.Errorf("prometheus %s: %w", p.endpoint, err)
		}
	default:
		return 0, fmt.Errorf("the query returned a %s, not an instant vector or a scalar", a.Data.ResultType)
	}
	if math.IsNaN(f) {
		return 0, errors.New("the query returned NaN")
	}
	return f, nil
}

// sampleValue parses a sample's value: Prometheus sends it as a string
// ("0.5", "+Inf", "NaN").
func sampleValue(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("sample value %s is not a string", raw)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q is not a number", s)
	}
	return f, nil
}
