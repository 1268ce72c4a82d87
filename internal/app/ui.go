package app

import (
	"fmt"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/ui"
)

// mountUI serves the web pages under /ui/. The route needs no bearer
// token: the UI signs people in with a token once and keeps a session
// (or, under InsecureNoAuth, asks nothing).
func (m *Main) mountUI() error {
	h, err := ui.New(ui.Options{
		Store:          m.store,
		Authenticate:   m.server.Authenticate,
		InsecureNoAuth: m.cfg.InsecureNoAuth,
		Now:            m.cfg.Now,
		Logger:         m.cfg.Logger.With("component", "ui"),
		GuardWindow: func(endpoint string) []ui.RouteWindow {
			var out []ui.RouteWindow
			for _, w := range m.gateway.GuardWindows(endpoint) {
				out = append(out, ui.RouteWindow{Route: w.Route, Requests: w.Requests, Errors: w.Errors, P99: w.P99})
			}
			return out
		},
	})
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	m.server.Handle("/ui/", "", h)
	return nil
}
