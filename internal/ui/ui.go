// Package ui serves the registry's read-only web pages under /ui/: models,
// a model's versions, stages and history, a version, endpoints and the
// audit log. Pages are server-rendered html/template with embedded assets
// and work without JavaScript; app.js only submits a form when a select
// changes.
//
// It reads through Reader, the read methods of registry.Store it needs,
// and imports registry only: never the server, the store implementations,
// the gateway or the app (app wires it and hands it a token check).
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Reader is what the pages read: the read methods of registry.Store's
// parts, and the whole of its EventStore.
type Reader interface {
	registry.EventStore

	GetModel(ctx context.Context, name string) (*registry.Model, error)
	ListModels(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Model], error)
	GetVersion(ctx context.Context, model string, version int64) (*registry.ModelVersion, error)
	ListVersions(ctx context.Context, model string, f registry.VersionFilter) (*registry.Page[registry.ModelVersion], error)
	ListStages(ctx context.Context, model string) ([]registry.StageAssignment, error)
	StageHistory(ctx context.Context, model, stage string, opts registry.ListOptions) (*registry.Page[registry.StageHistoryEntry], error)
	GetEndpoint(ctx context.Context, name string) (*registry.Endpoint, error)
	ListEndpoints(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Endpoint], error)
	// TokenByID lets a session end as soon as its token is revoked.
	TokenByID(ctx context.Context, id int64) (*registry.Token, error)
}

var _ Reader = registry.Store(nil)

// RouteWindow is one route's traffic in its guard window as the gateway
// of this process counted it.
type RouteWindow struct {
	Route            string
	Requests, Errors int64
	// P99 is the 99th percentile of the window's latencies (zero without
	// requests).
	P99 time.Duration
}

// Options configures the UI.
type Options struct {
	Store Reader
	// Authenticate checks a token secret typed into the login form, the
	// same way the API checks a bearer token (revoked, expired, unknown
	// are errors). Required unless InsecureNoAuth.
	Authenticate func(ctx context.Context, secret string) (*registry.Token, error)
	// InsecureNoAuth serves every page without a login (the server's
	// --insecure-no-auth, loopback only).
	InsecureNoAuth bool
	// GuardWindow, when set, reports each route's requests and errors in
	// the guard window of the endpoint; nil hides those columns.
	GuardWindow func(endpoint string) []RouteWindow
	// SessionTTL is how long a login lasts (never past the token's own
	// expiry). 0 = 8h.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept in memory. 0 = 10000.
	MaxSessions int
	Now         func() time.Time // nil = time.Now
	Logger      *slog.Logger     // nil = discard
}

// Handler serves /ui/. Create it with New.
type Handler struct {
	store        Reader
	authenticate func(ctx context.Context, secret string) (*registry.Token, error)
	insecure     bool
	guardWindow  func(string) []RouteWindow
	now          func() time.Time
	log          *slog.Logger
	sessions     *sessions
	pages        map[string]*template.Template
	mux          *http.ServeMux
	bufs         sync.Pool
}

// contentSecurityPolicy allows scripts and styles from /ui/static only (no
// inline script, no inline style attributes), images from the same origin
// (the favicon; charts are inline SVG markup) and no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New builds the UI handler.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("ui: Options.Store is required")
	}
	if opts.Authenticate == nil && !opts.InsecureNoAuth {
		return nil, errors.New("ui: Options.Authenticate is required unless InsecureNoAuth")
	}
	h := &Handler{
		store:        opts.Store,
		authenticate: opts.Authenticate,
		insecure:     opts.InsecureNoAuth,
		guardWindow:  opts.GuardWindow,
		now:          opts.Now,
		log:          opts.Logger,
		mux:          http.NewServeMux(),
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ttl := opts.SessionTTL
	if ttl <= 0 {
		ttl = 8 * time.Hour
	}
	maxSessions := opts.MaxSessions
	if maxSessions <= 0 {
		maxSessions = 10000
	}
	h.sessions = newSessions(ttl, maxSessions)
	h.bufs.New = func() any { return new(bytes.Buffer) }
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	h.mux.Handle("GET /ui/static/", cacheStatic(http.StripPrefix("/ui/static/", http.FileServerFS(static))))
	h.mux.HandleFunc("GET /ui/login", h.loginForm)
	h.mux.HandleFunc("POST /ui/login", h.login)
	h.mux.HandleFunc("POST /ui/logout", h.logout)
	h.mux.Handle("GET /ui/{$}", h.page(h.models))
	h.mux.Handle("GET /ui/models/{model}", h.page(h.model))
	h.mux.Handle("GET /ui/models/{model}/versions/{version}", h.page(h.version))
	h.mux.Handle("GET /ui/endpoints", h.page(h.endpoints))
	h.mux.Handle("GET /ui/endpoints/{endpoint}", h.page(h.endpoint))
	h.mux.Handle("GET /ui/events", h.page(h.events))
	return h, nil
}

// ServeHTTP sets the security headers every answer carries and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.TLS != nil {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
	h.mux.ServeHTTP(w, r)
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// view is what a page handler returns: the template to render and its data.
type view struct {
	page string
	data any
}

// pageFunc renders one page for a signed-in user.
type pageFunc func(r *http.Request, u *user) (view, error)

// base is the data every page's layout reads.
type base struct {
	Title    string
	Nav      string
	User     *user
	Insecure bool
	// API is the API request that returns what the page shows.
	API string
}

// page wraps a pageFunc with the session check and rendering.
func (h *Handler) page(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := h.user(w, r)
		if !ok {
			return
		}
		v, err := f(r, u)
		if err != nil {
			h.renderError(w, r, u, err)
			return
		}
		h.render(w, http.StatusOK, v)
	})
}

func (h *Handler) render(w http.ResponseWriter, status int, v view) {
	t := h.pages[v.page]
	if t == nil {
		http.Error(w, "no such page template", http.StatusInternalServerError)
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.bufs.Put(buf)
	if err := t.ExecuteTemplate(buf, "layout", v.data); err != nil {
		h.log.Error("ui: render failed", "page", v.page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorData struct {
	base
	Status  int
	Message string
}

// renderError answers with the registry error's status and message (a
// registry message never holds SQL or a stack); anything else is a 500
// that says nothing more.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, u *user, err error) {
	status, msg := http.StatusInternalServerError, "something went wrong; the server log has the details"
	var re *registry.Error
	switch {
	case errors.As(err, &re) && re.Code != registry.CodeInternal:
		status, msg = registry.HTTPStatus(re.Code), re.Message
	case errors.Is(err, context.Canceled):
		return
	default:
		h.log.Error("ui: page failed", "path", r.URL.Path, "err", err)
	}
	h.render(w, status, view{"error", errorData{base: base{Title: http.StatusText(status), User: u, Insecure: h.insecure}, Status: status, Message: msg}})
}

// pageNames lists the page templates; each is parsed with layout.html.
var pageNames = []string{"login", "error", "models", "model", "version", "endpoints", "endpoint", "events"}

func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

var funcs = template.FuncMap{
	"time":   fmtTime,
	"metric": fmtMetric,
	"join":   strings.Join,
	"pct":    func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"ms":     func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds()) },
	"timep": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return fmtTime(*t)
	},
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func fmtMetric(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", f), "0"), ".")
}
