package ui_test

import (
	"context"
	"crypto/tls"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/ui"
)

// TestLogin signs in through the form: a wrong token is refused and sets
// no cookie, a serve-only token is refused, a read token gets an HttpOnly
// SameSite=Strict session cookie that is not the token, logout ends it.
func TestLogin(t *testing.T) {
	reg := apptest.Start(t)
	read := reg.Token(t, "viewer", registry.ScopeRead)
	serve := reg.Token(t, "inference", registry.ScopeServe)
	c := browser(t)

	p := get(t, c, reg.URL+"/ui/models/churn?sort=version")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/login?next="+url.QueryEscape("/ui/models/churn?sort=version") {
		t.Fatalf("signed-out page = %d, Location %q", p.status, p.header.Get("Location"))
	}
	if p := get(t, c, reg.URL+"/ui/login"); p.status != 200 || !strings.Contains(p.body, `name="token"`) {
		t.Fatalf("login form = %d: %s", p.status, p.body)
	}

	for name, tok := range map[string]string{"wrong": "mlr_wrongwrongwrong", "empty": "", "serve scope": serve} {
		p := postForm(t, c, reg.URL+"/ui/login", url.Values{"token": {tok}}, reg.URL)
		if p.status != http.StatusUnauthorized && p.status != http.StatusForbidden {
			t.Errorf("%s token: status %d, want 401/403", name, p.status)
		}
		if sc := p.header.Get("Set-Cookie"); sc != "" {
			t.Errorf("%s token: Set-Cookie %q", name, sc)
		}
		if !strings.Contains(p.body, `id="login-error"`) {
			t.Errorf("%s token: no error shown: %s", name, p.body)
		}
	}
	if p := postForm(t, c, reg.URL+"/ui/login", url.Values{"token": {read}}, "http://evil.example"); p.status != http.StatusForbidden {
		t.Errorf("cross-origin login = %d, want 403", p.status)
	}
	// A post-login redirect never leaves the UI.
	p = postForm(t, browser(t), reg.URL+"/ui/login", url.Values{"token": {read}, "next": {"//evil.example/ui/"}}, reg.URL)
	if p.header.Get("Location") != "/ui/" {
		t.Errorf("next=//evil.example: Location %q", p.header.Get("Location"))
	}

	ck := login(t, c, reg.URL, read)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/ui/" {
		t.Errorf("cookie flags: HttpOnly %v SameSite %v Secure %v Path %q", ck.HttpOnly, ck.SameSite, ck.Secure, ck.Path)
	}
	if strings.Contains(ck.Value, read) || strings.Contains(ck.Value, strings.TrimPrefix(read, "mlr_")) || len(ck.Value) < 40 {
		t.Errorf("cookie value %q is not an opaque session id", ck.Value)
	}
	if p := get(t, c, reg.URL+"/ui/"); p.status != 200 || !strings.Contains(p.body, "viewer (read)") {
		t.Fatalf("signed-in models page = %d: %s", p.status, p.body)
	}

	p = postForm(t, c, reg.URL+"/ui/logout", nil, reg.URL)
	if p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout = %d, Set-Cookie %q", p.status, p.header.Get("Set-Cookie"))
	}
	// The old cookie value is dead on the server too, not only in the jar.
	replay := browser(t)
	u, _ := url.Parse(reg.URL + "/ui/")
	replay.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/ui/"}})
	if p := get(t, replay, reg.URL+"/ui/"); p.status != http.StatusSeeOther {
		t.Errorf("replayed cookie after logout = %d, want 303 to login", p.status)
	}
}

// TestSessionEnds: a session ends at its expiry, at its token's expiry,
// and at once when its token is revoked.
func TestSessionEnds(t *testing.T) {
	reg := apptest.Start(t)
	ctx := context.Background()

	c := browser(t)
	login(t, c, reg.URL, reg.Token(t, "viewer", registry.ScopeRead))
	reg.Clock.Advance(7*time.Hour + 59*time.Minute)
	if p := get(t, c, reg.URL+"/ui/"); p.status != 200 {
		t.Fatalf("before the session's end: %d", p.status)
	}
	reg.Clock.Advance(2 * time.Minute)
	if p := get(t, c, reg.URL+"/ui/"); p.status != http.StatusSeeOther {
		t.Errorf("after 8h: %d, want 303 to the login form", p.status)
	}

	// A token that expires in an hour gives a session of an hour.
	exp := reg.Clock.Now().Add(time.Hour)
	secret, hash, err := registry.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Store.CreateToken(ctx, registry.Actor{Name: "test"}, registry.Token{Name: "short", Scope: registry.ScopeRead, ExpiresAt: &exp, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	c = browser(t)
	if ck := login(t, c, reg.URL, secret); ck.MaxAge != 3600 {
		t.Errorf("session of a token expiring in 1h: Max-Age %d", ck.MaxAge)
	}
	reg.Clock.Advance(time.Hour)
	if p := get(t, c, reg.URL+"/ui/"); p.status != http.StatusSeeOther {
		t.Errorf("after the token expired: %d, want 303", p.status)
	}

	c = browser(t)
	login(t, c, reg.URL, reg.Token(t, "revoked", registry.ScopeRead))
	if err := reg.Store.RevokeToken(ctx, registry.Actor{Name: "test"}, "revoked"); err != nil {
		t.Fatal(err)
	}
	if p := get(t, c, reg.URL+"/ui/"); p.status != http.StatusSeeOther {
		t.Errorf("after the token was revoked: %d, want 303", p.status)
	}
}

// TestSecureCookieBehindTLS: over HTTPS the session cookie is Secure.
func TestSecureCookieBehindTLS(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "r.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secret, _, err := app.CreateToken(context.Background(), st, registry.Actor{Name: "test"}, "viewer", registry.ScopeRead, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ui.New(ui.Options{Store: st, Authenticate: func(ctx context.Context, s string) (*registry.Token, error) {
		tok, err := st.TokenByHash(ctx, registry.HashToken(s))
		if err != nil {
			return nil, registry.Errorf(registry.CodeUnauthenticated, "invalid token")
		}
		return tok, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	c := browser(t)
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}
	ck := login(t, c, ts.URL, secret)
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie over TLS: Secure %v HttpOnly %v SameSite %v", ck.Secure, ck.HttpOnly, ck.SameSite)
	}
	if p := get(t, c, ts.URL+"/ui/"); p.header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
}

// TestInsecureNoAuth: with authentication off (loopback only) there is no
// login: pages render at once and the login form sends you to them.
func TestInsecureNoAuth(t *testing.T) {
	reg := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.InsecureNoAuth = true }))
	c := browser(t)
	if p := get(t, c, reg.URL+"/ui/"); p.status != 200 || !strings.Contains(p.body, "authentication off") {
		t.Fatalf("models page without login = %d", p.status)
	}
	if p := get(t, c, reg.URL+"/ui/login"); p.status != http.StatusSeeOther {
		t.Errorf("login form under --insecure-no-auth = %d, want a redirect", p.status)
	}
}

var (
	inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>`)
	handlerAttr  = regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`)
	styleAttr    = regexp.MustCompile(`(?i)<[a-z][^>]*\sstyle\s*=`)
)

// TestPagesEscapeAndHeaders renders every page over data whose free text is
// hostile: no user string reaches the page unescaped, pages carry the
// security headers, and the markup has no inline script, event handler
// or style attribute (the CSP would block them).
func TestPagesEscapeAndHeaders(t *testing.T) {
	reg := apptest.Start(t)
	seed(t, reg)
	c := browser(t)
	login(t, c, reg.URL, reg.Token(t, "viewer", registry.ScopeRead))
	pages := []string{
		"/ui/", "/ui/?q=team", "/ui/?q=" + url.QueryEscape("<script>"),
		"/ui/models/churn", "/ui/models/churn?sort=metrics.auc+desc&metric=f1", "/ui/models/churn?stage=production",
		"/ui/models/churn/versions/3", "/ui/models/churn/versions/2",
		"/ui/endpoints", "/ui/endpoints/churn",
		"/ui/events", "/ui/events?model=churn&actor=" + url.QueryEscape(xss), "/ui/events?since=" + url.QueryEscape(xss),
		"/ui/models/" + url.PathEscape(xss),
	}
	for _, path := range pages {
		p := get(t, c, reg.URL+path)
		if p.status != 200 && p.status != 404 && p.status != 400 {
			t.Errorf("%s = %d: %s", path, p.status, p.body)
			continue
		}
		csp := p.header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline code", path, csp)
		}
		if p.header.Get("X-Content-Type-Options") != "nosniff" || p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, p.header)
		}
		if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "<img src=x") {
			t.Errorf("%s: a user string reached the page unescaped", path)
		}
		for _, m := range inlineScript.FindAllString(p.body, -1) {
			if !strings.Contains(m, `src="/ui/static/`) {
				t.Errorf("%s: inline script %q", path, m)
			}
		}
		if m := handlerAttr.FindString(p.body); m != "" {
			t.Errorf("%s: event handler attribute %q", path, m)
		}
		if m := styleAttr.FindString(p.body); m != "" {
			t.Errorf("%s: style attribute %q", path, m)
		}
	}
	model := get(t, c, reg.URL+"/ui/models/churn")
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "label leak", `<svg id="chart"`, "first candidate", "better auc", `href="/api/v1/models/churn"`} {
		if !strings.Contains(model.body, want) {
			t.Errorf("model page lacks %q", want)
		}
	}
	if p := get(t, c, reg.URL+"/ui/models/nope"); p.status != 404 || !strings.Contains(p.body, `id="error-message"`) {
		t.Errorf("unknown model = %d", p.status)
	}
	if p := get(t, c, reg.URL+"/ui/static/app.js"); p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js = %d %q", p.status, p.header.Get("Content-Type"))
	}
	// The audit log's time filter is the CLI's --since: days too.
	for since, want := range map[string]int{"7d": 200, "90m": 200, "2026-01-02": 200, "yesterday": 400} {
		if p := get(t, c, reg.URL+"/ui/events?since="+since); p.status != want {
			t.Errorf("/ui/events?since=%s = %d, want %d", since, p.status, want)
		}
	}
}

// TestVersionsPagination walks a model of 250 versions page by page in
// both orders and by a metric: every version once, in order.
func TestVersionsPagination(t *testing.T) {
	reg := apptest.Start(t)
	ctx := context.Background()
	if _, err := reg.Store.CreateModel(ctx, registry.Actor{Name: "t"}, registry.ModelCreate{Name: "big"}); err != nil {
		t.Fatal(err)
	}
	const n = 250
	for i := range n {
		_, err := reg.Store.CreateVersion(ctx, registry.Actor{Name: "t"}, "big", registry.ModelVersionCreate{
			Source: "s3://b/m", Checksum: checksum(string(rune(i)) + "big"), Format: "onnx",
			Metrics: map[string]float64{"auc": float64((i*37)%n) / n},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c := browser(t)
	login(t, c, reg.URL, reg.AdminToken)
	rowRe := regexp.MustCompile(`class="version-link">v(\d+)<`)
	nextRe := regexp.MustCompile(`<a href="([^"]+)" id="next">`)
	for _, sort := range []string{"version desc", "version", "metrics.auc desc"} {
		seen := map[string]bool{}
		var order []string
		next := "/ui/models/big?sort=" + url.QueryEscape(sort)
		pages := 0
		for next != "" {
			p := get(t, c, reg.URL+html.UnescapeString(next))
			if p.status != 200 {
				t.Fatalf("%s: %d", next, p.status)
			}
			pages++
			for _, m := range rowRe.FindAllStringSubmatch(p.body, -1) {
				if seen[m[1]] {
					t.Fatalf("sort %q: v%s twice", sort, m[1])
				}
				seen[m[1]] = true
				order = append(order, m[1])
			}
			next = ""
			if m := nextRe.FindStringSubmatch(p.body); m != nil {
				next = m[1]
			}
		}
		if len(seen) != n || pages != 3 {
			t.Errorf("sort %q: %d versions over %d pages, want %d over 3", sort, len(seen), pages, n)
		}
		if sort == "version desc" && (order[0] != "250" || order[n-1] != "1") {
			t.Errorf("version desc: first %s last %s", order[0], order[n-1])
		}
		if sort == "version" && (order[0] != "1" || order[n-1] != "250") {
			t.Errorf("version: first %s last %s", order[0], order[n-1])
		}
	}
}

// TestEndpointRouteMatch: a route that takes requests by a header shows
// the header, the value and whether it is a prefix next to the route, so
// the page tells why a request went to the canary whatever the weights.
func TestEndpointRouteMatch(t *testing.T) {
	reg := apptest.Start(t)
	seed(t, reg)
	admin := reg.AdminToken
	api(t, reg, "POST", "/api/v1/endpoints", admin, map[string]any{
		"name": "churn-beta", "model": "churn",
		"routes": []map[string]any{
			{"name": "stable", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 100},
			{"name": "beta", "version": 4, "upstream_url": "http://127.0.0.1:9", "weight": 0,
				"match": map[string]any{"header": "X-Cohort", "value": "beta-", "prefix": true}},
			{"name": "team", "version": 4, "upstream_url": "http://127.0.0.1:9", "weight": 0,
				"match": map[string]any{"header": "X-Team", "value": "ds"}},
		},
	}, http.StatusCreated)
	c := browser(t)
	login(t, c, reg.URL, reg.Token(t, "viewer", registry.ScopeRead))
	p := get(t, c, reg.URL+"/ui/endpoints/churn-beta")
	if p.status != 200 {
		t.Fatalf("endpoint page = %d: %s", p.status, p.body)
	}
	for _, want := range []string{
		`<td>beta<div class="match">when <code>X-Cohort</code> starts with <code>beta-</code></div></td>`,
		`<td>team<div class="match">when <code>X-Team</code> is <code>ds</code></div></td>`,
		`<td>stable</td>`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("endpoint page lacks %q:\n%s", want, p.body)
		}
	}
}

// TestEndpointRollout: the endpoint page shows the rollout's
// configuration, where it stands (state, step, next step due) and the
// weights in force while it runs; once aborted, the state and who aborted
// it and why.
func TestEndpointRollout(t *testing.T) {
	reg := apptest.Start(t)
	seed(t, reg)
	admin := reg.AdminToken
	// The guard's window is 5m, so the bake is at least that.
	api(t, reg, "PATCH", "/api/v1/endpoints/churn", admin, map[string]any{"rollout": map[string]any{
		"steps": []int{25, 50, 100}, "bake": "10m", "max_error_rate": 0.05, "max_latency_p99": "500ms", "min_requests": 20,
	}}, http.StatusOK)
	api(t, reg, "PATCH", "/api/v1/endpoints/churn", admin, map[string]any{"routes": []map[string]any{
		{"name": "stable", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 50},
		{"name": "canary", "version": 4, "upstream_url": "http://127.0.0.1:9", "weight": 50},
	}}, http.StatusOK)
	c := browser(t)
	login(t, c, reg.URL, reg.Token(t, "viewer", registry.ScopeRead))
	p := get(t, c, reg.URL+"/ui/endpoints/churn")
	if p.status != 200 {
		t.Fatalf("endpoint page = %d: %s", p.status, p.body)
	}
	text := regexp.MustCompile(`\s+`).ReplaceAllString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(p.body, " "), " ")
	for _, want := range []string{
		"steps 25%, 50%, 100%; bake 10m per step; gates: error rate at most 5.0%; p99 at most 500ms; judged once a gaining route has 20 requests",
		"State progressing step 1 of 3 (25%) rollout",
		"Next step due 2026-01-02 03:14:05Z (once its gates pass)",
		"Weights in force",
		"stable v2 http://127.0.0.1:9 80%",
		"canary v4 http://127.0.0.1:9 20%",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("endpoint page lacks %q:\n%s", want, text)
		}
	}
	// The list shows the weights the gateway serves, and that a rollout runs.
	list := get(t, c, reg.URL+"/ui/endpoints")
	listText := regexp.MustCompile(`\s+`).ReplaceAllString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(list.body, " "), " ")
	for _, want := range []string{"rollout progressing 1/3", "stable → v2 80%", "canary → v4 20%"} {
		if !strings.Contains(listText, want) {
			t.Errorf("endpoints page lacks %q:\n%s", want, listText)
		}
	}
	if _, err := reg.Store.ControlRollout(context.Background(), registry.Actor{Name: "oncall"}, "churn", registry.RolloutOpAbort, "v4 mislabels churners"); err != nil {
		t.Fatal(err)
	}
	p = get(t, c, reg.URL+"/ui/endpoints/churn")
	text = regexp.MustCompile(`\s+`).ReplaceAllString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(p.body, " "), " ")
	for _, want := range []string{"State aborted rollout", "v4 mislabels churners", "endpoint.rollout_aborted"} {
		if !strings.Contains(text, want) {
			t.Errorf("endpoint page after the abort lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Weights in force") {
		t.Errorf("endpoint page shows weights in force of an aborted rollout:\n%s", text)
	}
}
