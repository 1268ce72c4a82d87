package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// SendFeedback posts a batch of feedback to an endpoint. Resending a batch
// is harmless: every request ID counts once.
func (c *Client) SendFeedback(ctx context.Context, endpoint string, req registry.FeedbackRequest) (*registry.FeedbackResult, error) {
	var out registry.FeedbackResult
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("endpoints", endpoint, "feedback"), body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func windowQuery(window string) url.Values {
	if window == "" {
		return nil
	}
	return url.Values{"window": {window}}
}

// VersionLiveMetrics returns a version's live metrics over window ("" is
// the server's default, an hour).
func (c *Client) VersionLiveMetrics(ctx context.Context, model string, version int64, window string) (*registry.LiveMetrics, error) {
	var out registry.LiveMetrics
	path := apiPath("models", model, "versions", strconv.FormatInt(version, 10), "live-metrics")
	if _, err := c.do(ctx, request{method: http.MethodGet, path: path, query: windowQuery(window)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EndpointLiveMetrics returns an endpoint's live metrics, per version.
func (c *Client) EndpointLiveMetrics(ctx context.Context, endpoint, window string) (*registry.LiveMetrics, error) {
	var out registry.LiveMetrics
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("endpoints", endpoint, "live-metrics"), query: windowQuery(window)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CompareVersions compares versions of a model; the first is the
// baseline of every delta.
func (c *Client) CompareVersions(ctx context.Context, model string, versions []int64, window string) (*registry.Comparison, error) {
	nums := make([]string, len(versions))
	for i, v := range versions {
		nums[i] = strconv.FormatInt(v, 10)
	}
	q := windowQuery(window)
	if q == nil {
		q = url.Values{}
	}
	q.Set("versions", strings.Join(nums, ","))
	var out registry.Comparison
	if _, err := c.do(ctx, request{method: http.MethodGet, path: apiPath("models", model, "compare"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateReceiptKey makes a fresh receipt signing key (admin).
func (c *Client) RotateReceiptKey(ctx context.Context) (*registry.ReceiptKeyInfo, error) {
	var out registry.ReceiptKeyInfo
	if _, err := c.do(ctx, request{method: http.MethodPost, path: apiPath("receipt-keys")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
