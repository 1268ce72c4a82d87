package sqlstore

import (
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestFeedbackLeavesChangeGenerationAlone: feedback and key rotations
// change no answer the read cache holds, so a stream of them must not
// empty it; a version create still moves the generation.
func TestFeedbackLeavesChangeGenerationAlone(t *testing.T) {
	s := open(t, sqliteDSN(t), Options{})
	ctx := t.Context()
	actor := registry.Actor{Name: "t"}
	if _, err := s.CreateModel(ctx, actor, registry.ModelCreate{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVersion(ctx, actor, "m", registry.ModelVersionCreate{Source: "s3://b/1", Checksum: "sha256:1111111111111111111111111111111111111111111111111111111111111111", Format: "onnx"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateEndpoint(ctx, actor, registry.EndpointCreate{Name: "ep", Model: "m", Routes: []registry.Route{{Name: "a", Version: 1, UpstreamURL: "http://127.0.0.1:9", Weight: 100}}}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Generation()
	if _, err := s.EnsureReceiptKey(ctx, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateReceiptKey(ctx, actor, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	res, err := s.RecordFeedback(ctx, actor, "ep", []registry.FeedbackRecord{{Metrics: map[string]float64{"correct": 1},
		Receipt: registry.Receipt{IssuedAt: s.clock(), Endpoint: "ep", Route: "a", Model: "m", Version: 1, RequestID: "r1"}}})
	if err != nil || res.Accepted != 1 {
		t.Fatal(res, err)
	}
	if got := c.Generation(); got != g {
		t.Fatalf("feedback and a key rotation moved the change generation %d -> %d", g, got)
	}
	if _, err := s.UpdateVersion(ctx, actor, "m", 1, registry.ModelVersionPatch{Description: new("x")}, registry.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if c.Generation() == g {
		t.Fatal("a version update did not move the change generation")
	}
}
