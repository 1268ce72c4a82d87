package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// An endpoint pointed at the registry itself (its API or its own /serve/
// path) is refused by the gateway: a read token cannot reach the API
// through /serve/ with any method, and a self-loop does not open a
// connection per hop. The answer names neither address nor dial error.
func TestServeRefusesTheRegistryAsUpstream(t *testing.T) {
	r := apptest.Start(t)
	ctx := context.Background()
	actor := registry.Actor{Name: "test"}
	if _, err := r.Store.CreateModel(ctx, actor, registry.ModelCreate{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Store.CreateVersion(ctx, actor, "m", registry.ModelVersionCreate{
		Source: "file:///m/1", Checksum: "sha256:" + strings.Repeat("a", 64), Format: "onnx",
	}); err != nil {
		t.Fatal(err)
	}
	for name, up := range map[string]string{"api": r.URL + "/api/v1", "loop": r.URL + "/serve/loop"} {
		if _, err := r.Store.CreateEndpoint(ctx, actor, registry.EndpointCreate{
			Name: name, Model: "m", Routes: []registry.Route{{Name: "a", Version: 1, UpstreamURL: up, Weight: 100}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	token := r.Token(t, "reader", registry.ScopeRead)
	for _, path := range []string{"/serve/api/tokens", "/serve/loop/x"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			// The gateway picks the out-of-band endpoints up by polling.
			var res *http.Response
			var b []byte
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				var body io.Reader
				if method == http.MethodPost {
					body = strings.NewReader(`{"name":"x","scope":"admin"}`)
				}
				req, _ := http.NewRequest(method, r.URL+path, body)
				req.Header.Set("Authorization", "Bearer "+token)
				var err error
				if res, err = http.DefaultClient.Do(req); err != nil {
					t.Fatal(err)
				}
				b, _ = io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusNotFound || time.Now().After(deadline) {
					break
				}
			}
			if res.StatusCode != http.StatusBadGateway {
				t.Errorf("%s %s: status %d: %s", method, path, res.StatusCode, b)
			}
			if host := strings.TrimPrefix(r.URL, "http://"); strings.Contains(string(b), host) {
				t.Errorf("%s %s: answer names the registry's address: %s", method, path, b)
			}
		}
	}
}
