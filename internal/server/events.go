package server

import (
	"net/http"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := registry.EventFilter{ListOptions: opts, Model: q.Get("model"), Endpoint: q.Get("endpoint")}
	if f.Model != "" {
		if err := registry.ValidateName("model", f.Model); err != nil {
			return err
		}
	}
	if f.Endpoint != "" {
		if err := registry.ValidateName("endpoint", f.Endpoint); err != nil {
			return err
		}
	}
	if f.Since, err = sinceQuery(r); err != nil {
		return err
	}
	page, err := s.store.ListEvents(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, fixPage(page, nil))
}
