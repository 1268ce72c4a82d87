package server

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// RolloutControl is the optional body of POST
// /api/v1/endpoints/{endpoint}/rollout/{op}.
type RolloutControl struct {
	Reason string `json:"reason,omitempty"`
}

// controlRollout pauses, resumes or aborts an endpoint's rollout. It
// changes what the endpoint serves, so it needs what updating the
// endpoint needs: a write token without a stage restriction.
func (s *Server) controlRollout(w http.ResponseWriter, r *http.Request) error {
	name, err := pathName(r, "endpoint")
	if err != nil {
		return err
	}
	op := r.PathValue("op")
	if op != registry.RolloutOpPause && op != registry.RolloutOpResume && op != registry.RolloutOpAbort {
		return registry.FieldError("op", "enum", "%q must be one of pause, resume, abort", op)
	}
	if err := requireUnrestricted(r, "controlling an endpoint's rollout"); err != nil {
		return err
	}
	if err := checkContentType(r); err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req RolloutControl
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	}
	if len(req.Reason) > registry.MaxReasonLen {
		return registry.FieldError("reason", "max_length", "must be at most %d bytes", registry.MaxReasonLen)
	}
	e, err := s.store.ControlRollout(r.Context(), actor(r), name, op, req.Reason)
	if err != nil {
		return err
	}
	s.changed(KindEndpoint, e.Name)
	return writeTagged(w, http.StatusOK, endpointETag(e), s.fixEndpoint(r, e))
}

// checkPrometheusGates refuses prometheus gates on a registry that was
// given no Prometheus to ask: the provider cannot know it at plan, so the
// write says so.
func (s *Server) checkPrometheusGates(spec *registry.RolloutSpec) error {
	if spec == nil || len(spec.Prometheus) == 0 || s.prometheusURL != "" {
		return nil
	}
	return registry.FieldError("rollout.prometheus", "unavailable",
		"this registry has no Prometheus to check the gates against (mlregistry serve --prometheus-url); remove the prometheus gates or configure the registry")
}

// endpointETag is the entity-tag of an endpoint: its revision, and while
// it has a rollout status also the status's seq ("<revision>.<seq>"), so
// a step changes the tag. If-Match compares the revision part only (a
// step never fails an apply); If-None-Match compares the whole tag.
func endpointETag(e *registry.Endpoint) string {
	if e.Rollout != nil && e.Rollout.RolloutStatus != nil {
		return `"` + strconv.FormatInt(e.Revision, 10) + "." + strconv.FormatInt(e.Rollout.Seq, 10) + `"`
	}
	return etag(e.Revision)
}

// writeTagged answers one resource with the entity-tag tag.
func writeTagged(w http.ResponseWriter, status int, tag string, v any) error {
	w.Header().Set("ETag", tag)
	return writeJSON(w, status, v)
}

// notModified reports whether If-None-Match holds tag (or is *): the
// client's copy is current. The comparison is weak, as RFC 9110 says for
// If-None-Match: W/"3" matches "3".
func notModified(r *http.Request, tag string) bool {
	for _, v := range r.Header.Values("If-None-Match") {
		for member := range strings.SplitSeq(v, ",") {
			member = strings.TrimPrefix(strings.Trim(member, " \t"), "W/")
			if member == "*" || member == tag {
				return true
			}
		}
	}
	return false
}
