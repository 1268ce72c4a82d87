package server

import (
	"context"
	"net/http"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		requestLogger(r).Warn("store not ready", "err", err)
		return registry.Errorf(registry.CodeUnavailable, "the database is not reachable")
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
