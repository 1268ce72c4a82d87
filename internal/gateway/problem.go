package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// problemTypeBase is the prefix of the RFC 9457 type URI; the server uses
// the same one, so a client sees one error format on every route.
const problemTypeBase = "https://mlregistry.dev/problems/"

type problem struct {
	Type   string        `json:"type"`
	Title  string        `json:"title"`
	Status int           `json:"status"`
	Detail string        `json:"detail,omitempty"`
	Code   registry.Code `json:"code"`
}

// writeProblem is the built-in problem+json writer, used when
// Options.WriteProblem is nil.
func writeProblem(w http.ResponseWriter, _ *http.Request, status int, code registry.Code, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:   problemTypeBase + string(code),
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	})
}
