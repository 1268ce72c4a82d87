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

// createdAnswer is the 201 answer to a create: the resource as JSON with
// its ETag and Location.
type createdAnswer struct {
	header map[string]string
	body   []byte
}

// renderCreated renders the answer to a create of created (a *Model,
// *ModelVersion or *Endpoint). Create handlers answer with it
// (writeCreated), and the idempotency layer stores the very same bytes,
// inside the create's transaction, for retries to replay.
func (s *Server) renderCreated(r *http.Request, created any) (*createdAnswer, error) {
	var (
		revision int64
		path     []string
		v        any
	)
	switch c := created.(type) {
	case *registry.Model:
		revision, path, v = c.Revision, []string{"models", c.Name}, fixModel(c)
	case *registry.ModelVersion:
		revision, path, v = c.Revision, []string{"models", c.Model, "versions", strconv.FormatInt(c.Version, 10)}, fixVersion(c)
	case *registry.Endpoint:
		revision, path, v = c.Revision, []string{"endpoints", c.Name}, s.fixEndpoint(r, c)
	default:
		return nil, fmt.Errorf("server: no answer for a created %T", created)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &createdAnswer{
		header: map[string]string{
			"Content-Type": "application/json",
			"ETag":         etag(revision),
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
	w.WriteHeader(http.StatusCreated)
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
