package server

import (
	"net/http"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	return s.readAnswer(w, r, func() (int64, any, error) {
		page, err := s.store.ListModels(r.Context(), opts)
		if err != nil {
			return 0, nil, err
		}
		return 0, fixPage(page, func(m *registry.Model) { fixModel(m) }), nil
	})
}

func (s *Server) createModel(w http.ResponseWriter, r *http.Request) error {
	var req registry.ModelCreate
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if len(req.StagePolicies) > 0 {
		if err := requireUnrestricted(r, "setting stage_policies"); err != nil {
			return err
		}
	}
	m, err := s.store.CreateModel(r.Context(), actor(r), req)
	if err != nil {
		return err
	}
	s.changed(KindModel, m.Name)
	return s.writeCreated(w, r, m)
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "model")
	if err != nil {
		return err
	}
	return s.readAnswer(w, r, func() (int64, any, error) {
		m, err := s.store.GetModel(r.Context(), name)
		if err != nil {
			return 0, nil, err
		}
		return m.Revision, fixModel(m), nil
	})
}

func (s *Server) updateModel(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "model")
	if err != nil {
		return err
	}
	var req registry.ModelPatch
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if req.StagePolicies != nil {
		if err := requireUnrestricted(r, "changing stage_policies"); err != nil {
			return err
		}
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetModel(r.Context(), name); return err })
	if err != nil {
		return err
	}
	m, err := s.store.UpdateModel(r.Context(), actor(r), name, req, pre)
	if err != nil {
		return err
	}
	s.changed(KindModel, m.Name)
	return writeResource(w, http.StatusOK, m.Revision, fixModel(m))
}

func (s *Server) deleteModel(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "model")
	if err != nil {
		return err
	}
	force, err := flagQuery(r, "force")
	if err != nil {
		return err
	}
	if err := requireUnrestricted(r, "deleting a model"); err != nil {
		return err
	}
	if force {
		if err := requireScope(r, registry.ScopeAdmin, "deleting a model with force=true"); err != nil {
			return err
		}
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetModel(r.Context(), name); return err })
	if err != nil {
		return err
	}
	if err := s.store.DeleteModel(r.Context(), actor(r), name, registry.DeleteModelOptions{Precondition: pre, Force: force}); err != nil {
		return err
	}
	s.changed(KindModel, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
