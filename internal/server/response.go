package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// writeJSON answers v as JSON. It marshals first so a failure can still
// become a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// writeResource answers one resource with its ETag.
func writeResource(w http.ResponseWriter, status int, revision int64, v any) error {
	w.Header().Set("ETag", etag(revision))
	return writeJSON(w, status, v)
}

func etag(revision int64) string { return `"` + strconv.FormatInt(revision, 10) + `"` }

// baseURL is PublicURL, or the request's own scheme and host when unset.
func (s *Server) baseURL(r *http.Request) string {
	if s.publicURL != "" {
		return s.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) location(w http.ResponseWriter, r *http.Request, segments ...string) {
	w.Header().Set("Location", s.locationURL(r, segments...))
}

// The store may leave empty collections nil; the wire always has [] / {}.

func fixModel(m *registry.Model) *registry.Model {
	if m.Tags == nil {
		m.Tags = map[string]string{}
	}
	if m.StagePolicies == nil {
		m.StagePolicies = map[string]registry.StagePolicy{}
	}
	return m
}

func fixVersion(v *registry.ModelVersion) *registry.ModelVersion {
	if v.Parameters == nil {
		v.Parameters = map[string]string{}
	}
	if v.Metrics == nil {
		v.Metrics = map[string]float64{}
	}
	if v.Tags == nil {
		v.Tags = map[string]string{}
	}
	if v.Stages == nil {
		v.Stages = []string{}
	}
	if v.Signature != nil {
		v.Signature.Inputs = fixTensors(v.Signature.Inputs)
		v.Signature.Outputs = fixTensors(v.Signature.Outputs)
	}
	return v
}

func fixTensors(ts []registry.TensorSpec) []registry.TensorSpec {
	if ts == nil {
		return []registry.TensorSpec{}
	}
	for i := range ts {
		if ts[i].Shape == nil {
			ts[i].Shape = []int64{}
		}
	}
	return ts
}

func (s *Server) fixEndpoint(r *http.Request, e *registry.Endpoint) *registry.Endpoint {
	if e.Routes == nil {
		e.Routes = []registry.Route{}
	}
	base := s.serveURL
	if base == "" {
		base = s.baseURL(r)
	}
	e.URL = base + "/serve/" + url.PathEscape(e.Name) + "/"
	return e
}

func fixPage[T any](p *registry.Page[T], fix func(*T)) *registry.Page[T] {
	if p == nil {
		p = &registry.Page[T]{}
	}
	if p.Items == nil {
		p.Items = []T{}
	}
	if fix != nil {
		for i := range p.Items {
			fix(&p.Items[i])
		}
	}
	return p
}
