package registry

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Bounds of a rollout configuration and of shadow routes.
const (
	MaxRolloutSteps       = 20
	MinRolloutBake        = time.Second
	MaxRolloutBake        = 24 * time.Hour
	MinRolloutLatencyP99  = time.Millisecond
	MaxRolloutLatencyP99  = 10 * time.Minute
	MaxPrometheusGates    = 5
	MaxPrometheusQueryLen = 4096
	MaxShadowRoutes       = 4
)

// PrometheusComparisons are the comparisons a prometheus gate may use.
var PrometheusComparisons = []string{"<", "<=", ">", ">="}

// Rule descriptions of a rollout, shared by server messages and provider
// validators.
const (
	RolloutStepsRule = "must be 1 to 20 percents, each 1..100, strictly increasing, ending at 100 (for example [10, 25, 50, 100])"
	RolloutBakeRule  = "must be a duration from 1s to 24h (for example 10m)"
)

// Validate checks a rollout configuration (nil means none). guard is the
// endpoint's guard as it will be stored (nil: none): a bake shorter than
// the guard's window would advance a step before the guard could judge
// it, so the bake must be at least that window.
func (s *RolloutSpec) Validate(field string, guard *Guard) error {
	if s == nil {
		return nil
	}
	if err := ValidateRolloutSteps(field+".steps", s.Steps); err != nil {
		return err
	}
	bake, err := ValidateRolloutBake(field+".bake", s.Bake)
	if err != nil {
		return err
	}
	if guard != nil {
		if w, err := time.ParseDuration(guard.Window); err == nil && bake < w {
			return FieldError(field+".bake", "guard_window", "%s must be at least the guard's window (%s): a step must bake as long as the guard judges a route", s.Bake, guard.Window)
		}
	}
	if s.MaxErrorRate != nil {
		if r := *s.MaxErrorRate; math.IsNaN(r) || r <= 0 || r > 1 {
			return FieldError(field+".max_error_rate", "range", "must be greater than 0 and at most 1")
		}
	}
	if s.MaxLatencyP99 != "" {
		d, err := time.ParseDuration(s.MaxLatencyP99)
		if err != nil {
			return FieldError(field+".max_latency_p99", "duration", "%q must be a duration such as 250ms or 1s", s.MaxLatencyP99)
		}
		if d < MinRolloutLatencyP99 || d > MaxRolloutLatencyP99 {
			return FieldError(field+".max_latency_p99", "range", "%s must be from %s to %s", s.MaxLatencyP99, MinRolloutLatencyP99, MaxRolloutLatencyP99)
		}
	}
	if s.MinRequests < 0 {
		return FieldError(field+".min_requests", "min", "must be at least 1")
	}
	if s.MinRequests == 0 && (s.MaxErrorRate != nil || s.MaxLatencyP99 != "") {
		// No default: a gate judged on a handful of requests rolls back
		// on noise, one judged on too many never judges a quiet endpoint.
		return FieldError(field+".min_requests", "required", "is required with max_error_rate or max_latency_p99: the number of requests a gaining route must receive in a step before its gates are judged")
	}
	if len(s.Prometheus) > MaxPrometheusGates {
		return FieldError(field+".prometheus", "max_items", "must have at most %d gates", MaxPrometheusGates)
	}
	for i, g := range s.Prometheus {
		f := fmt.Sprintf("%s.prometheus[%d]", field, i)
		if strings.TrimSpace(g.Query) == "" {
			return FieldError(f+".query", "required", "is required")
		}
		if len(g.Query) > MaxPrometheusQueryLen {
			return FieldError(f+".query", "max_length", "must be at most %d bytes", MaxPrometheusQueryLen)
		}
		if !slices.Contains(PrometheusComparisons, g.Comparison) {
			return FieldError(f+".comparison", "enum", "%q must be one of %s", g.Comparison, strings.Join(PrometheusComparisons, " "))
		}
		if math.IsNaN(g.Threshold) || math.IsInf(g.Threshold, 0) {
			return FieldError(f+".threshold", "finite", "must be a finite number")
		}
	}
	return ValidateLiveRule(field, s.MinLiveMetrics, s.MinLiveCount)
}

// ValidateRolloutSteps checks a rollout's steps (RolloutStepsRule).
func ValidateRolloutSteps(field string, steps []int) error {
	if len(steps) == 0 {
		return FieldError(field, "min_items", "%s", RolloutStepsRule)
	}
	if len(steps) > MaxRolloutSteps {
		return FieldError(field, "max_items", "has %d steps; %s", len(steps), RolloutStepsRule)
	}
	for i, p := range steps {
		f := fmt.Sprintf("%s[%d]", field, i)
		if p < 1 || p > 100 {
			return FieldError(f, "range", "%d must be from 1 to 100", p)
		}
		if i > 0 && p <= steps[i-1] {
			return FieldError(f, "increasing", "%d must be greater than the step before it (%d)", p, steps[i-1])
		}
	}
	if last := steps[len(steps)-1]; last != 100 {
		return FieldError(field, "last", "must end at 100 (the configured weights), ends at %d", last)
	}
	return nil
}

// ValidateRolloutBake checks a rollout's bake (RolloutBakeRule).
func ValidateRolloutBake(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, FieldError(field, "required", "is required: %s", RolloutBakeRule)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, FieldError(field, "duration", "%q %s", v, RolloutBakeRule)
	}
	if d < MinRolloutBake || d > MaxRolloutBake {
		return 0, FieldError(field, "range", "%s %s", v, RolloutBakeRule)
	}
	return d, nil
}

// RolloutBake is the bake of a validated spec.
func RolloutBake(s RolloutSpec) time.Duration {
	d, _ := time.ParseDuration(s.Bake)
	return d
}

// validateShadow checks the shadow-only fields of route r at field f.
func validateShadow(f string, r Route) error {
	if !r.Shadow {
		if r.Share != 0 {
			return FieldError(f+".share", "shadow_only", "may only be set on a shadow route (shadow = true)")
		}
		return nil
	}
	if r.Weight != 0 {
		return FieldError(f+".weight", "shadow", "must be 0 on a shadow route: a shadow gets copies of requests, never answers them")
	}
	if r.Match != nil {
		return FieldError(f+".match", "shadow", "may not be set on a shadow route: a shadow gets copies of requests, never answers them")
	}
	if math.IsNaN(r.Share) || r.Share <= 0 || r.Share > 1 {
		return FieldError(f+".share", "range", "must be greater than 0 and at most 1 (the share of requests copied to the shadow)")
	}
	return nil
}
