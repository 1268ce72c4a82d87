package server

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func versionID(model string, version int64) string {
	return model + "/" + strconv.FormatInt(version, 10)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) error {
	model, err := pathName(r, "model")
	if err != nil {
		return err
	}
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := registry.VersionFilter{ListOptions: opts, Stage: q.Get("stage"), Tag: q.Get("tag")}
	if f.Stage != "" {
		if err := registry.ValidateStage("stage", f.Stage); err != nil {
			return err
		}
	}
	if len(f.Tag) > registry.MaxTagKeyLen+1+registry.MaxTagValueLen {
		return registry.FieldError("tag", "max_length", "must be \"key\" or \"key=value\" within the tag size limits")
	}
	if f.Flagged, err = boolQuery(r, "flagged"); err != nil {
		return err
	}
	if f.OrderBy, err = orderBy(q.Get("order_by")); err != nil {
		return err
	}
	return s.readAnswer(w, r, func() (int64, any, error) {
		page, err := s.store.ListVersions(r.Context(), model, f)
		if err != nil {
			return 0, nil, err
		}
		return 0, fixPage(page, func(v *registry.ModelVersion) { fixVersion(v) }), nil
	})
}

func (s *Server) createVersion(w http.ResponseWriter, r *http.Request) error {
	model, err := pathName(r, "model")
	if err != nil {
		return err
	}
	var req registry.ModelVersionCreate
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	v, err := s.store.CreateVersion(r.Context(), actor(r), model, req)
	if err != nil {
		return err
	}
	s.changed(KindModelVersion, versionID(v.Model, v.Version))
	return s.writeCreated(w, r, v)
}

func (s *Server) versionParams(r *http.Request) (string, int64, error) {
	model, err := pathName(r, "model")
	if err != nil {
		return "", 0, err
	}
	version, err := pathVersion(r)
	return model, version, err
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	model, version, err := s.versionParams(r)
	if err != nil {
		return err
	}
	return s.readAnswer(w, r, func() (int64, any, error) {
		v, err := s.store.GetVersion(r.Context(), model, version)
		if err != nil {
			return 0, nil, err
		}
		return v.Revision, fixVersion(v), nil
	})
}

// versionPatchBody is a version patch plus the artifact fields, which are
// recognised only to reject them with a clearer message than "unknown
// field". (New metrics come in add_metrics, which the patch has.)
type versionPatchBody struct {
	registry.ModelVersionPatch
	Source     json.RawMessage `json:"source"`
	Checksum   json.RawMessage `json:"checksum"`
	Format     json.RawMessage `json:"format"`
	Parameters json.RawMessage `json:"parameters"`
	Metrics    json.RawMessage `json:"metrics"`
	Lineage    json.RawMessage `json:"lineage"`
	Signature  json.RawMessage `json:"signature"`
}

func (b *versionPatchBody) immutable() error {
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"source", b.Source}, {"checksum", b.Checksum}, {"format", b.Format},
		{"parameters", b.Parameters}, {"metrics", b.Metrics}, {"lineage", b.Lineage}, {"signature", b.Signature},
	} {
		if f.raw == nil {
			continue
		}
		if f.name == "metrics" {
			return registry.FieldError(f.name, "immutable",
				"recorded metrics are immutable; add metrics the version does not have with add_metrics, or create a new version to change one")
		}
		return registry.FieldError(f.name, "immutable", "is immutable; create a new version instead")
	}
	return nil
}

func (s *Server) updateVersion(w http.ResponseWriter, r *http.Request) error {
	model, version, err := s.versionParams(r)
	if err != nil {
		return err
	}
	var req versionPatchBody
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := req.immutable(); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetVersion(r.Context(), model, version); return err })
	if err != nil {
		return err
	}
	v, err := s.store.UpdateVersion(r.Context(), actor(r), model, version, req.ModelVersionPatch, pre)
	if err != nil {
		return err
	}
	s.changed(KindModelVersion, versionID(v.Model, v.Version))
	if v.Flagged {
		s.drained(r, v)
	}
	return writeResource(w, http.StatusOK, v.Revision, fixVersion(v))
}

func (s *Server) deleteVersion(w http.ResponseWriter, r *http.Request) error {
	model, version, err := s.versionParams(r)
	if err != nil {
		return err
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetVersion(r.Context(), model, version); return err })
	if err != nil {
		return err
	}
	if err := s.store.DeleteVersion(r.Context(), actor(r), model, version, pre); err != nil {
		return err
	}
	s.changed(KindModelVersion, versionID(model, version))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// drained tells the OnChange hook about the endpoints that route to a
// flagged version: the store drained their traffic in the flag's
// transaction, and this replica's gateway must stop sending requests there
// now, not at its next poll. A failed look-up is only logged: the write
// is done, and the poll picks the change up.
func (s *Server) drained(r *http.Request, v *registry.ModelVersion) {
	names, err := s.store.VersionEndpoints(r.Context(), v.Model, v.Version)
	if err != nil {
		s.log.Warn("cannot list the endpoints of a flagged version; gateways apply the drain at their next poll",
			"model", v.Model, "version", v.Version, "err", err)
		return
	}
	for _, name := range names {
		s.changed(KindEndpoint, name)
	}
}
