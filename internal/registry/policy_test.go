package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func hist(entries ...StageHistoryEntry) []StageHistoryEntry {
	for i := range entries {
		entries[i].ID = int64(i + 1)
		if entries[i].Action == "" {
			entries[i].Action = StageActionAssign
		}
	}
	return entries
}

func TestStageHold(t *testing.T) {
	tests := []struct {
		name    string
		history []StageHistoryEntry
		version int64
		now     time.Time
		held    bool
		longest time.Duration
	}{
		{"never", nil, 1, t0, false, 0},
		{"holds now", hist(StageHistoryEntry{Version: 1, AssignedAt: t0}), 1, t0.Add(5 * time.Hour), true, 5 * time.Hour},
		{"held then replaced", hist(
			StageHistoryEntry{Version: 1, AssignedAt: t0},
			StageHistoryEntry{Version: 2, AssignedAt: t0.Add(2 * time.Hour)},
		), 1, t0.Add(48 * time.Hour), true, 2 * time.Hour},
		{"longest of two holds", hist(
			StageHistoryEntry{Version: 1, AssignedAt: t0},
			StageHistoryEntry{Version: 2, AssignedAt: t0.Add(1 * time.Hour)},
			StageHistoryEntry{Version: 1, AssignedAt: t0.Add(2 * time.Hour)},
			StageHistoryEntry{Action: StageActionUnassign, PreviousVersion: 1, AssignedAt: t0.Add(6 * time.Hour)},
		), 1, t0.Add(48 * time.Hour), true, 4 * time.Hour},
		{"other version only", hist(StageHistoryEntry{Version: 2, AssignedAt: t0}), 1, t0.Add(time.Hour), false, 0},
		{"unsorted input", hist(
			StageHistoryEntry{Version: 2, AssignedAt: t0.Add(3 * time.Hour)},
			StageHistoryEntry{Version: 1, AssignedAt: t0},
		), 1, t0.Add(10 * time.Hour), true, 3 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held, longest := StageHold(tt.history, tt.version, tt.now)
			if held != tt.held || longest != tt.longest {
				t.Errorf("StageHold = (%v, %s), want (%v, %s)", held, longest, tt.held, tt.longest)
			}
		})
	}
}

func TestCheckAssignment(t *testing.T) {
	sigA := &Signature{Inputs: []TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 4}}}, Outputs: []TensorSpec{{Name: "y", DType: "float32", Shape: []int64{-1}}}}
	sigB := &Signature{Inputs: []TensorSpec{{Name: "x", DType: "float32", Shape: []int64{-1, 5}}}, Outputs: sigA.Outputs}
	v := func(n int64, metrics map[string]float64, sig *Signature) *ModelVersion {
		return &ModelVersion{Model: "churn", Version: n, Metrics: metrics, Signature: sig}
	}
	stagingHeld := hist(StageHistoryEntry{Version: 2, AssignedAt: t0})
	tests := []struct {
		name string
		c    AssignmentCheck
		rule string // "" = allowed
		msg  string
	}{
		{"no policy", AssignmentCheck{Stage: "production", Version: v(2, nil, nil), Now: t0}, "", ""},
		{"flagged", AssignmentCheck{Stage: "staging", Version: &ModelVersion{Model: "churn", Version: 3, Flagged: true, FlagReason: "data leak"}, Now: t0}, "flagged", "data leak"},
		{"require_stage fails", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireStage: "staging"}, Version: v(2, nil, nil), Now: t0}, "require_stage", `stage "staging"`},
		{"require_stage passes", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireStage: "staging"}, Version: v(2, nil, nil), RequiredHistory: stagingHeld, Now: t0}, "", ""},
		{"min_soak too short", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireStage: "staging", MinSoak: "24h"}, Version: v(2, nil, nil), RequiredHistory: stagingHeld, Now: t0.Add(23 * time.Hour)}, "min_soak", "at least 24h"},
		{"min_soak met", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireStage: "staging", MinSoak: "24h"}, Version: v(2, nil, nil), RequiredHistory: stagingHeld, Now: t0.Add(24 * time.Hour)}, "", ""},
		{"min_metrics below", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinMetrics: map[string]float64{"auc": 0.85}}, Version: v(2, map[string]float64{"auc": 0.8}, nil), Now: t0}, "min_metrics", "auc = 0.8"},
		{"min_metrics missing", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinMetrics: map[string]float64{"auc": 0.85}}, Version: v(2, nil, nil), Now: t0}, "min_metrics", `no metric "auc"`},
		{"min_metrics equal passes", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinMetrics: map[string]float64{"auc": 0.85}}, Version: v(2, map[string]float64{"auc": 0.85}, nil), Now: t0}, "", ""},
		{"max_metrics above", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MaxMetrics: map[string]float64{"latency_ms": 50}}, Version: v(2, map[string]float64{"latency_ms": 75}, nil), Now: t0}, "max_metrics", "latency_ms = 75"},
		{"max_metrics missing", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MaxMetrics: map[string]float64{"latency_ms": 50}}, Version: v(2, nil, nil), Now: t0}, "max_metrics", "no metric"},
		{"signature differs", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireSignatureMatch: true}, Version: v(2, nil, sigB), Current: v(1, nil, sigA), Now: t0}, "require_signature_match", "x:float32[-1,5]"},
		{"signature same", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireSignatureMatch: true}, Version: v(2, nil, sigA), Current: v(1, nil, sigA), Now: t0}, "", ""},
		{"signature nothing holds stage", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireSignatureMatch: true}, Version: v(2, nil, sigB), Now: t0}, "", ""},
		{"min_live_metrics below floor", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinLiveMetrics: map[string]float64{"correct": 0.9}}, Version: v(2, nil, nil),
			Live: map[string]LiveSums{"correct": {Count: 200, Sum: 160, SumSq: 160}}, Now: t0}, "min_live_metrics", "live correct = 0.8 over 200 trusted feedback values in the last 24h, policy for \"production\" needs mean >= 0.9"},
		{"min_live_metrics too few values (default count)", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinLiveMetrics: map[string]float64{"correct": 0.9}}, Version: v(2, nil, nil),
			Live: map[string]LiveSums{"correct": {Count: 99, Sum: 99, SumSq: 99}}, Now: t0}, "min_live_metrics", "has 99 trusted feedback values of live metric \"correct\" in the last 24h (mean 1), policy for \"production\" needs at least 100 (min_live_count)"},
		{"min_live_metrics no feedback", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinLiveMetrics: map[string]float64{"correct": 0.9}, MinLiveCount: 5}, Version: v(2, nil, nil),
			Live: map[string]LiveSums{}, Now: t0}, "min_live_metrics", "has 0 trusted feedback values"},
		{"min_live_metrics met with own count", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinLiveMetrics: map[string]float64{"correct": 0.9}, MinLiveCount: 10}, Version: v(2, nil, nil),
			Live: map[string]LiveSums{"correct": {Count: 10, Sum: 9, SumSq: 9}}, Now: t0}, "", ""},
		{"min_live_metrics not gathered is not judged", AssignmentCheck{Stage: "production", Policy: &StagePolicy{MinLiveMetrics: map[string]float64{"correct": 0.9}}, Version: v(2, nil, nil), Now: t0}, "", ""},
		{"nil signature equals empty", AssignmentCheck{Stage: "production", Policy: &StagePolicy{RequireSignatureMatch: true}, Version: v(2, nil, &Signature{}), Current: v(1, nil, nil), Now: t0}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAssignment(tt.c)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error rule %s, got %v", tt.rule, err)
			}
			if e.Code != CodePolicyViolation || e.Rule != tt.rule {
				t.Errorf("got code %s rule %s, want policy_violation %s", e.Code, e.Rule, tt.rule)
			}
			if !strings.Contains(e.Message, tt.rule) || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("message %q should name rule %q and contain %q", e.Message, tt.rule, tt.msg)
			}
			if !errors.Is(err, ErrPolicyViolation) {
				t.Error("errors.Is(err, ErrPolicyViolation) = false")
			}
		})
	}
}

// TestCheckAssignmentReportsEveryFailingRule: one answer names every rule
// that fails, so a plan shows everything to fix at once; Rule is the first.
func TestCheckAssignmentReportsEveryFailingRule(t *testing.T) {
	err := CheckAssignment(AssignmentCheck{
		Stage: "production",
		Policy: &StagePolicy{
			RequireStage: "staging",
			MinMetrics:   map[string]float64{"auc": 0.85},
			MaxMetrics:   map[string]float64{"latency_ms": 50},
		},
		Version: &ModelVersion{Model: "churn", Version: 3, Metrics: map[string]float64{"auc": 0.81, "latency_ms": 70}},
		Now:     time.Unix(0, 0),
	})
	var re *Error
	if !errors.As(err, &re) || re.Code != CodePolicyViolation || re.Rule != "require_stage" {
		t.Fatalf("got %v, want policy_violation with rule require_stage", err)
	}
	for _, want := range []string{"rule require_stage failed", "rule min_metrics failed: version 3 has auc = 0.81", "rule max_metrics failed: version 3 has latency_ms = 70"} {
		if !strings.Contains(re.Message, want) {
			t.Errorf("message %q lacks %q", re.Message, want)
		}
	}
}
