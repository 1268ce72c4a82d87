package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// createdAnswer is the answer to a write: for a create 201 with the
// resource as JSON, its ETag and Location; for an update or stage change
// 200 with the resource and its ETag; for a delete 204.
type createdAnswer struct {
	status int
	header map[string]string
	body   []byte
}

// renderWritten renders the answer to the write r made (see
// registry.IdempotentWrite): renderCreated for a POST, else the resource
// as the update left it (nil after a delete), as writeResource sends it.
// The idempotency layer stores these bytes, inside the write's
// transaction, for retries to replay.
func (s *Server) renderWritten(r *http.Request, written any) (*createdAnswer, error) {
	if r.Method == http.MethodPost {
		return s.renderCreated(r, written)
	}
	var (
		tag string
		v   any
	)
	switch c := written.(type) {
	case nil:
		return &createdAnswer{status: http.StatusNoContent, header: map[string]string{}}, nil
	case *registry.Model:
		tag, v = etag(c.Revision), fixModel(c)
	case *registry.ModelVersion:
		tag, v = etag(c.Revision), fixVersion(c)
	case *registry.StageAssignment:
		tag, v = etag(c.Revision), c
	case *registry.Endpoint:
		tag, v = endpointETag(c), s.fixEndpoint(r, c)
	default:
		return nil, fmt.Errorf("server: no answer for a written %T", written)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &createdAnswer{
		status: http.StatusOK,
		header: map[string]string{"Content-Type": "application/json", "ETag": tag},
		body:   append(body, '\n'),
	}, nil
}

// renderCreated renders the answer to a create of created (a *Model,
// *ModelVersion or *Endpoint). Create handlers answer with it
// (writeCreated), and the idempotency layer stores the very same bytes,
// inside the create's transaction, for retries to replay.
func (s *Server) renderCreated(r *http.Request, created any) (*createdAnswer, error) {
	var (
		tag  string
		path []string
		v    any
	)
	switch c := created.(type) {
	case *registry.Model:
		tag, path, v = etag(c.Revision), []string{"models", c.Name}, fixModel(c)
	case *registry.ModelVersion:
		tag, path, v = etag(c.Revision), []string{"models", c.Model, "versions", strconv.FormatInt(c.Version, 10)}, fixVersion(c)
	case *registry.Endpoint:
		tag, path, v = endpointETag(c), []string{"endpoints", c.Name}, s.fixEndpoint(r, c)
	default:
		return nil, fmt.Errorf("server: no answer for a created %T", created)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &createdAnswer{
		status: http.StatusCreated,
		header: map[string]string{
			"Content-Type": "application/json",
			"ETag":         tag,
			"Location":     s.locationURL(r, path...),
		},
		body: append(body, '\n'),
	}, nil
}

// writeCreated answers 201 with the created resource.
func (s *Server) writeCreated(w http.ResponseWriter, r *http.Request, created any) error {
	a, err := s.renderCreated(r, created)
	if err != nil {
		return err
	}
	h := w.Header()
	for k, v := range a.header {
		h.Set(k, v)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
	return nil
}

// locationURL is the absolute URL of an API resource.
func (s *Server) locationURL(r *http.Request, segments ...string) string {
	p := ""
	for _, seg := range segments {
		p += "/" + url.PathEscape(seg)
	}
	return s.baseURL(r) + "/api/v1" + p
}

// idempotencyPath is the resource a request addresses, as idempotency
// keys record it: the matched route pattern with each wildcard replaced by
// its decoded value, escaped one canonical way. Two spellings of one URL
// (/api/v1/models/idem%2Da/versions and /api/v1/models/idem-a/versions)
// give one path; a value holding an escaped slash stays one segment.
func idempotencyPath(r *http.Request) string {
	pattern := r.Pattern
	if pattern == "" {
		return r.URL.Path
	}
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	if !strings.HasPrefix(pattern, "/") {
		// A host-qualified pattern: the path starts at the first slash.
		if i := strings.IndexByte(pattern, '/'); i >= 0 {
			pattern = pattern[i:]
		}
	}
	segs := strings.Split(pattern, "/")
	for i, seg := range segs {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		switch {
		case name == "$":
			segs[i] = ""
		case strings.HasSuffix(name, "..."):
			rest := strings.Split(r.PathValue(strings.TrimSuffix(name, "...")), "/")
			for j := range rest {
				rest[j] = url.PathEscape(rest[j])
			}
			segs[i] = strings.Join(rest, "/")
		default:
			segs[i] = url.PathEscape(r.PathValue(name))
		}
	}
	return strings.Join(segs, "/")
}
