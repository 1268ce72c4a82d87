package plansummary

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestDrift_namesWhoFlaggedNotWhoTouchedLast: on-call flags v1 and later
// someone else edits its description; another token unflags v2. The drift
// history names on-call as the one who flagged v1, the editor for an
// update only, and the one who unflagged v2 for that: a reviewer acting on
// the drift report asks the right person why.
func TestDrift_namesWhoFlaggedNotWhoTouchedLast(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	config := modelHCL("churn", "", "auc = 0.9", "auc = 0.93")
	config = strings.Replace(config, "metrics  = { auc = 0.93 }", "metrics  = { auc = 0.93 }\n  flagged     = true\n  flag_reason = \"stale features\"", 1)
	e.apply(config)

	ctx := context.Background()
	flag, reason, desc := true, "label leak", "evaluated again"
	e.r.Clock.Advance(time.Hour)
	oncall := e.client(e.r.Token(t, "oncall", registry.ScopeWrite))
	if _, err := oncall.UpdateVersion(ctx, "churn", 1, registry.ModelVersionPatch{Flagged: &flag, FlagReason: &reason}, 0); err != nil {
		t.Fatal(err)
	}
	e.r.Clock.Advance(time.Minute)
	editor := e.client(e.r.Token(t, "editor", registry.ScopeWrite))
	if _, err := editor.UpdateVersion(ctx, "churn", 1, registry.ModelVersionPatch{Description: &desc}, 0); err != nil {
		t.Fatal(err)
	}
	unflag := false
	fixer := e.client(e.r.Token(t, "fixer", registry.ScopeWrite))
	if _, err := fixer.UpdateVersion(ctx, "churn", 2, registry.ModelVersionPatch{Flagged: &unflag}, 0); err != nil {
		t.Fatal(err)
	}

	md := e.summarise(e.planJSON(config, "-refresh-only"), "markdown")
	for _, want := range []string{
		"v1 flagged (label leak) by oncall at",
		"v1 updated by editor at",
		"v2 unflagged by fixer at",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("drift history lacks %q:\n%s", want, md)
		}
	}
	for _, wrong := range []string{"flagged (label leak) by editor", "v2 updated by fixer"} {
		if strings.Contains(md, wrong) {
			t.Errorf("drift history says %q:\n%s", wrong, md)
		}
	}
}
