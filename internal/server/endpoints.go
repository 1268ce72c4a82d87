package server

import (
	"net/http"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	page, err := s.store.ListEndpoints(r.Context(), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, fixPage(page, func(e *registry.Endpoint) { s.fixEndpoint(r, e) }))
}

// createEndpoint creates an endpoint. With ?dry_run=true (any token: it
// changes nothing, and a read token's drift plan asks it) it runs every
// check and writes nothing: 200 with the endpoint as it would be and
// whether the caller's token may make the change, or the error the write
// would get.
func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) error {
	dryRun, err := flagQuery(r, "dry_run")
	if err != nil {
		return err
	}
	if !dryRun {
		if err := requireUnrestricted(r, "changing an endpoint"); err != nil {
			return err
		}
	}
	var req registry.EndpointCreate
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if err := s.checkUpstreams(r.Context(), "routes", req.Routes); err != nil {
		return err
	}
	if err := s.checkPrometheusGates(req.Rollout); err != nil {
		return err
	}
	if dryRun {
		e, err := s.store.CheckEndpointCreate(r.Context(), actor(r), req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, endpointDryRun(r, s.fixEndpoint(r, e)))
	}
	e, err := s.store.CreateEndpoint(r.Context(), actor(r), req)
	if err != nil {
		return err
	}
	s.changed(KindEndpoint, e.Name)
	return s.writeCreated(w, r, e)
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "endpoint")
	if err != nil {
		return err
	}
	e, err := s.store.GetEndpoint(r.Context(), name)
	if err != nil {
		return err
	}
	tag := endpointETag(e)
	if notModified(r, tag) {
		w.Header().Set("ETag", tag)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return writeTagged(w, http.StatusOK, tag, s.fixEndpoint(r, e))
}

// updateEndpoint changes an endpoint; ?dry_run=true as for createEndpoint.
func (s *Server) updateEndpoint(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "endpoint")
	if err != nil {
		return err
	}
	dryRun, err := flagQuery(r, "dry_run")
	if err != nil {
		return err
	}
	if !dryRun {
		if err := requireUnrestricted(r, "changing an endpoint"); err != nil {
			return err
		}
	}
	var req registry.EndpointPatch
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if req.Routes != nil {
		if err := s.checkUpstreams(r.Context(), "routes", *req.Routes); err != nil {
			return err
		}
	}
	if err := s.checkPrometheusGates(req.Rollout); err != nil {
		return err
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetEndpoint(r.Context(), name); return err })
	if err != nil {
		return err
	}
	if dryRun {
		e, err := s.store.CheckEndpointUpdate(r.Context(), actor(r), name, req, pre)
		if err != nil {
			return err
		}
		return writeTagged(w, http.StatusOK, endpointETag(e), endpointDryRun(r, s.fixEndpoint(r, e)))
	}
	e, err := s.store.UpdateEndpoint(r.Context(), actor(r), name, req, pre)
	if err != nil {
		return err
	}
	s.changed(KindEndpoint, e.Name)
	return writeTagged(w, http.StatusOK, endpointETag(e), s.fixEndpoint(r, e))
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "endpoint")
	if err != nil {
		return err
	}
	if err := requireUnrestricted(r, "changing an endpoint"); err != nil {
		return err
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetEndpoint(r.Context(), name); return err })
	if err != nil {
		return err
	}
	if err := s.store.DeleteEndpoint(r.Context(), actor(r), name, pre); err != nil {
		return err
	}
	s.changed(KindEndpoint, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// endpointDryRun is the answer to an endpoint dry run whose checks passed:
// the endpoint, and whether the caller may make the change (endpoints
// decide what every stage serves: a write token without a stage
// restriction).
func endpointDryRun(r *http.Request, e *registry.Endpoint) registry.EndpointDryRun {
	out := registry.EndpointDryRun{Endpoint: *e, Permitted: true}
	if err := requireUnrestricted(r, "changing an endpoint"); err != nil {
		re := registry.AsError(err)
		out.Permitted, out.Permission, out.PermissionRule = false, re.Message, re.Rule
	}
	return out
}
