package server

import (
	"net/http"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func (s *Server) stageParams(r *http.Request) (model, stage string, err error) {
	if model, err = pathName(r, "model"); err != nil {
		return "", "", err
	}
	stage, err = pathStage(r)
	return model, stage, err
}

func (s *Server) listStages(w http.ResponseWriter, r *http.Request) error {
	model, err := pathName(r, "model")
	if err != nil {
		return err
	}
	stages, err := s.store.ListStages(r.Context(), model)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, fixPage(&registry.Page[registry.StageAssignment]{Items: stages}, nil))
}

func (s *Server) getStage(w http.ResponseWriter, r *http.Request) error {
	model, stage, err := s.stageParams(r)
	if err != nil {
		return err
	}
	a, err := s.store.GetStage(r.Context(), model, stage)
	if err != nil {
		return err
	}
	return writeResource(w, http.StatusOK, a.Revision, a)
}

// assignStage is a promotion or a rollback. With ?dry_run=true (read
// scope is enough) it runs every policy check and writes nothing; the
// answer also says whether the caller's token could make the change.
func (s *Server) assignStage(w http.ResponseWriter, r *http.Request) error {
	model, stage, err := s.stageParams(r)
	if err != nil {
		return err
	}
	dryRun, err := flagQuery(r, "dry_run")
	if err != nil {
		return err
	}
	if !dryRun {
		if err := mayAssignStage(r, stage); err != nil {
			return err
		}
	}
	var req registry.StageAssign
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetStage(r.Context(), model, stage); return err })
	if err != nil {
		return err
	}
	a, err := s.store.AssignStage(r.Context(), actor(r), model, stage, req, registry.AssignOptions{Precondition: pre, DryRun: dryRun})
	if err != nil {
		return err
	}
	if dryRun {
		out := registry.StageDryRun{
			Allowed:         true,
			Model:           a.Model,
			Stage:           a.Stage,
			Version:         a.Version,
			PreviousVersion: a.PreviousVersion,
			Permitted:       true,
		}
		if perr := mayAssignStage(r, stage); perr != nil {
			re := registry.AsError(perr)
			out.Permitted, out.Permission, out.PermissionRule = false, re.Message, re.Rule
		}
		return writeJSON(w, http.StatusOK, out)
	}
	s.changed(KindStageAssignment, a.Model+"/"+a.Stage)
	return writeResource(w, http.StatusOK, a.Revision, a)
}

func (s *Server) unassignStage(w http.ResponseWriter, r *http.Request) error {
	model, stage, err := s.stageParams(r)
	if err != nil {
		return err
	}
	if err := mayAssignStage(r, stage); err != nil {
		return err
	}
	// DELETE carries no body: the reason comes in the query.
	reason := r.URL.Query().Get("reason")
	if err := registry.ValidateUnassignReason(reason); err != nil {
		return err
	}
	pre, err := precondition(r, func() error { _, err := s.store.GetStage(r.Context(), model, stage); return err })
	if err != nil {
		return err
	}
	if err := s.store.UnassignStage(r.Context(), actor(r), model, stage, reason, pre); err != nil {
		return err
	}
	s.changed(KindStageAssignment, model+"/"+stage)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) stageHistory(w http.ResponseWriter, r *http.Request) error {
	model, stage, err := s.stageParams(r)
	if err != nil {
		return err
	}
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	page, err := s.store.StageHistory(r.Context(), model, stage, opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, fixPage(page, nil))
}
