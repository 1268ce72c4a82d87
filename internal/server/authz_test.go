package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// govCase is one governance action: a request against a fresh fixture and
// the status each caller gets. A caller missing from want gets 403
// permission_denied.
type govCase struct {
	name string
	// route is the ServeMux pattern the request exercises, so the test can
	// check that every API route is covered.
	route  string
	method string
	path   string // {m}, {e} are the fixture's model and endpoint
	body   func(n int) any
	want   map[string]int
	// permitted: for a stage dry run, which callers are told they could
	// make the change.
	permitted []string
	// setup, when set, adds to the fixture before the request (as the
	// admin unless it says otherwise).
	setup func(f govFixture)
}

// govFixture is one case's fixture: model m, endpoint ep, and every
// caller's secret.
type govFixture struct {
	e      *testEnv
	m, ep  string
	n      int
	tokens map[string]string
}

// Callers: a read token, a write token restricted to staging (a CI
// token), an unrestricted write token, an admin token, a serve token and
// a serve token limited to another endpoint.
const (
	cRead       = "read"
	cCI         = "ci-staging"
	cWrite      = "write"
	cAdmin      = "admin"
	cServe      = "serve"
	cServeOther = "serve-other"
)

var callers = []string{cRead, cCI, cWrite, cAdmin, cServe, cServeOther}

// all is every caller that may use the API: serve tokens may not.
func all(status int) map[string]int {
	return map[string]int{cRead: status, cCI: status, cWrite: status, cAdmin: status}
}

// anyone is every caller, serve tokens included.
func anyone(status int) map[string]int {
	return with(all(status), cServe, status)
}

func writers(status int) map[string]int {
	return map[string]int{cCI: status, cWrite: status, cAdmin: status}
}

func unrestricted(status int) map[string]int {
	return map[string]int{cWrite: status, cAdmin: status}
}

func with(m map[string]int, caller string, status int) map[string]int {
	m[caller] = status
	return m
}

func jsonBody(v any) func(int) any { return func(int) any { return v } }

var govCases = []govCase{
	{name: "list models", route: "GET /api/v1/models", method: "GET", path: "/api/v1/models", want: all(200)},
	{name: "create model", route: "POST /api/v1/models", method: "POST", path: "/api/v1/models",
		body: func(n int) any { return map[string]any{"name": fmt.Sprintf("new-%d", n)} }, want: writers(201)},
	{name: "create model with stage_policies", route: "POST /api/v1/models", method: "POST", path: "/api/v1/models",
		body: func(n int) any {
			return map[string]any{"name": fmt.Sprintf("new-%d", n), "stage_policies": map[string]any{"production": map[string]any{}}}
		}, want: unrestricted(201)},
	{name: "get model", route: "GET /api/v1/models/{model}", method: "GET", path: "/api/v1/models/{m}", want: all(200)},
	{name: "describe model", route: "PATCH /api/v1/models/{model}", method: "PATCH", path: "/api/v1/models/{m}",
		body: jsonBody(map[string]any{"description": "d", "owner": "o", "tags": map[string]string{"a": "b"}}), want: writers(200)},
	{name: "change stage_policies", route: "PATCH /api/v1/models/{model}", method: "PATCH", path: "/api/v1/models/{m}",
		body: jsonBody(map[string]any{"stage_policies": map[string]any{}}), want: unrestricted(200)},
	// The model still has versions and an endpoint: allowed callers get
	// the store's conflict, the rest never reach it.
	{name: "delete model", route: "DELETE /api/v1/models/{model}", method: "DELETE", path: "/api/v1/models/{m}", want: unrestricted(409)},
	{name: "force delete model", route: "DELETE /api/v1/models/{model}", method: "DELETE", path: "/api/v1/models/{m}?force=true",
		want: map[string]int{cAdmin: 409}},

	{name: "list versions", route: "GET /api/v1/models/{model}/versions", method: "GET", path: "/api/v1/models/{m}/versions", want: all(200)},
	{name: "create version", route: "POST /api/v1/models/{model}/versions", method: "POST", path: "/api/v1/models/{m}/versions",
		body: func(n int) any {
			return map[string]any{"source": "s3://b/new.onnx", "checksum": sha(fmt.Sprint("new", n)), "format": "onnx"}
		}, want: writers(201)},
	{name: "get version", route: "GET /api/v1/models/{model}/versions/{version}", method: "GET", path: "/api/v1/models/{m}/versions/1", want: all(200)},
	{name: "describe version", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/1",
		body: jsonBody(map[string]any{"description": "d", "tags": map[string]string{"a": "b"}}), want: writers(200)},
	{name: "flag version", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/2",
		body: jsonBody(map[string]any{"flagged": true, "flag_reason": "bias"}), want: writers(200)},
	// Metrics recorded after registration: a CI token restricted to
	// staging may add them (recorded values never change, so it cannot
	// rewrite what a production decision read).
	{name: "add metrics", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/1",
		body: jsonBody(map[string]any{"add_metrics": map[string]float64{"f1": 0.8}}), want: writers(200)},
	{name: "unflag version", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/3",
		body: jsonBody(map[string]any{"flagged": false}), want: unrestricted(200)},
	{name: "unflag a version that is not flagged", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/2",
		body: jsonBody(map[string]any{"flagged": false, "description": "x"}), want: writers(200)},
	// Flagging drains traffic: a token restricted to staging may not stop
	// what production holds or serves, and may not rewrite why another
	// token stopped a version.
	{name: "flag version holding another stage", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/1",
		body: jsonBody(map[string]any{"flagged": true, "flag_reason": "bias"}), want: unrestricted(200)},
	{name: "flag version holding own stage", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/2",
		setup: func(f govFixture) { f.e.assign(f.m, "staging", 2, f.e.admin, http.StatusOK) },
		body:  jsonBody(map[string]any{"flagged": true, "flag_reason": "bias"}), want: writers(200)},
	{name: "flag version serving another stage's endpoint", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/2",
		setup: func(f govFixture) { f.stageEndpoint("production") },
		body:  jsonBody(map[string]any{"flagged": true, "flag_reason": "bias"}), want: unrestricted(200)},
	{name: "flag version serving own stage's endpoint", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/2",
		setup: func(f govFixture) { f.stageEndpoint("staging") },
		body:  jsonBody(map[string]any{"flagged": true, "flag_reason": "bias"}), want: writers(200)},
	{name: "erase another token's flag_reason", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/3",
		body: jsonBody(map[string]any{"flag_reason": ""}), want: unrestricted(200)},
	{name: "rewrite another token's flag_reason", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/3",
		body: jsonBody(map[string]any{"flagged": true, "flag_reason": "false alarm"}), want: unrestricted(200)},
	{name: "repeat another token's flag_reason", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/3",
		body: jsonBody(map[string]any{"flagged": true, "flag_reason": "leak"}), want: writers(200)},
	{name: "rewrite own flag_reason", route: "PATCH /api/v1/models/{model}/versions/{version}", method: "PATCH", path: "/api/v1/models/{m}/versions/2",
		setup: func(f govFixture) {
			f.e.do(req{method: "PATCH", path: "/api/v1/models/" + f.m + "/versions/2", token: f.tokens[cCI],
				body: map[string]any{"flagged": true, "flag_reason": "bias"}}, http.StatusOK)
		},
		body: jsonBody(map[string]any{"flag_reason": "bias in segment b"}), want: writers(200)},
	{name: "delete version", route: "DELETE /api/v1/models/{model}/versions/{version}", method: "DELETE", path: "/api/v1/models/{m}/versions/2", want: writers(204)},

	{name: "list stages", route: "GET /api/v1/models/{model}/stages", method: "GET", path: "/api/v1/models/{m}/stages", want: all(200)},
	{name: "get stage", route: "GET /api/v1/models/{model}/stages/{stage}", method: "GET", path: "/api/v1/models/{m}/stages/production", want: all(200)},
	{name: "stage history", route: "GET /api/v1/models/{model}/stages/{stage}/history", method: "GET", path: "/api/v1/models/{m}/stages/production/history", want: all(200)},
	{name: "assign own stage", route: "PUT /api/v1/models/{model}/stages/{stage}", method: "PUT", path: "/api/v1/models/{m}/stages/staging",
		body: jsonBody(map[string]any{"version": 2}), want: writers(200)},
	{name: "assign other stage", route: "PUT /api/v1/models/{model}/stages/{stage}", method: "PUT", path: "/api/v1/models/{m}/stages/production",
		body: jsonBody(map[string]any{"version": 2}), want: unrestricted(200)},
	{name: "dry run other stage", route: "PUT /api/v1/models/{model}/stages/{stage}", method: "PUT", path: "/api/v1/models/{m}/stages/production?dry_run=true",
		body: jsonBody(map[string]any{"version": 2}), want: all(200), permitted: []string{cWrite, cAdmin}},
	{name: "dry run own stage", route: "PUT /api/v1/models/{model}/stages/{stage}", method: "PUT", path: "/api/v1/models/{m}/stages/staging?dry_run=true",
		body: jsonBody(map[string]any{"version": 2}), want: all(200), permitted: []string{cCI, cWrite, cAdmin}},
	{name: "unassign own stage", route: "DELETE /api/v1/models/{model}/stages/{stage}", method: "DELETE", path: "/api/v1/models/{m}/stages/staging", want: writers(204)},
	{name: "unassign other stage", route: "DELETE /api/v1/models/{model}/stages/{stage}", method: "DELETE", path: "/api/v1/models/{m}/stages/production", want: unrestricted(204)},

	{name: "list endpoints", route: "GET /api/v1/endpoints", method: "GET", path: "/api/v1/endpoints", want: all(200)},
	{name: "create endpoint", route: "POST /api/v1/endpoints", method: "POST", path: "/api/v1/endpoints",
		body: func(n int) any { return endpointBody(fmt.Sprintf("new-%d", n), fmt.Sprintf("m%d", n)) }, want: unrestricted(201)},
	{name: "dry run create endpoint", route: "POST /api/v1/endpoints", method: "POST", path: "/api/v1/endpoints?dry_run=true",
		body: func(n int) any { return endpointBody(fmt.Sprintf("new-%d", n), fmt.Sprintf("m%d", n)) }, want: all(200), permitted: []string{cWrite, cAdmin}},
	{name: "get endpoint", route: "GET /api/v1/endpoints/{endpoint}", method: "GET", path: "/api/v1/endpoints/{e}", want: all(200)},
	{name: "change endpoint routes", route: "PATCH /api/v1/endpoints/{endpoint}", method: "PATCH", path: "/api/v1/endpoints/{e}",
		body: jsonBody(map[string]any{"routes": []map[string]any{{"name": "a", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 100}}}), want: unrestricted(200)},
	{name: "dry run endpoint change", route: "PATCH /api/v1/endpoints/{endpoint}", method: "PATCH", path: "/api/v1/endpoints/{e}?dry_run=true",
		body: jsonBody(map[string]any{"routes": []map[string]any{{"name": "a", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 100}}}), want: all(200), permitted: []string{cWrite, cAdmin}},
	{name: "delete endpoint", route: "DELETE /api/v1/endpoints/{endpoint}", method: "DELETE", path: "/api/v1/endpoints/{e}", want: unrestricted(204)},
	// Pausing, resuming or aborting a rollout changes what the endpoint
	// serves: what changing its routes needs.
	{name: "pause rollout", route: "POST /api/v1/endpoints/{endpoint}/rollout/{op}", method: "POST", path: "/api/v1/endpoints/{e}/rollout/pause",
		setup: func(f govFixture) { f.rollout() }, body: jsonBody(map[string]any{"reason": "r"}), want: unrestricted(200)},
	{name: "abort rollout", route: "POST /api/v1/endpoints/{endpoint}/rollout/{op}", method: "POST", path: "/api/v1/endpoints/{e}/rollout/abort",
		setup: func(f govFixture) { f.rollout() }, want: unrestricted(200)},

	{name: "version live metrics", route: "GET /api/v1/models/{model}/versions/{version}/live-metrics", method: "GET", path: "/api/v1/models/{m}/versions/1/live-metrics?window=1h", want: all(200)},
	{name: "compare versions", route: "GET /api/v1/models/{model}/compare", method: "GET", path: "/api/v1/models/{m}/compare?versions=1,2", want: all(200)},
	{name: "endpoint live metrics", route: "GET /api/v1/endpoints/{endpoint}/live-metrics", method: "GET", path: "/api/v1/endpoints/{e}/live-metrics", want: all(200)},
	// Feedback changes no configuration: serve tokens send it for the
	// endpoints they may call, writers for any, readers never.
	{name: "feedback", route: "POST /api/v1/endpoints/{endpoint}/feedback", method: "POST", path: "/api/v1/endpoints/{e}/feedback",
		body: jsonBody(map[string]any{"items": []map[string]any{{"receipt": "x", "metrics": map[string]any{"correct": 1}}}}),
		want: with(writers(200), cServe, 200)},
	{name: "list receipt keys", route: "GET /api/v1/receipt-keys", method: "GET", path: "/api/v1/receipt-keys", want: map[string]int{cAdmin: 200}},
	{name: "rotate receipt key", route: "POST /api/v1/receipt-keys", method: "POST", path: "/api/v1/receipt-keys", want: map[string]int{cAdmin: 201}},

	{name: "events", route: "GET /api/v1/events", method: "GET", path: "/api/v1/events", want: all(200)},
	{name: "list tokens", route: "GET /api/v1/tokens", method: "GET", path: "/api/v1/tokens", want: map[string]int{cAdmin: 200}},
	{name: "create token", route: "POST /api/v1/tokens", method: "POST", path: "/api/v1/tokens",
		body: func(n int) any { return map[string]any{"name": fmt.Sprintf("t-%d", n), "scope": "admin"} }, want: map[string]int{cAdmin: 201}},
	// Token 1 is the fixture's admin token; {t} is a token made for the
	// case, so each revoke finds it live.
	{name: "get token", route: "GET /api/v1/tokens/{id}", method: "GET", path: "/api/v1/tokens/1", want: map[string]int{cAdmin: 200}},
	{name: "revoke token", route: "DELETE /api/v1/tokens/{id}", method: "DELETE", path: "/api/v1/tokens/{t}", want: map[string]int{cAdmin: 200}},
	{name: "metrics", route: "GET /metrics", method: "GET", path: "/metrics", want: all(200)},
	{name: "openapi", route: "GET /openapi.json", method: "GET", path: "/openapi.json", want: all(200)},
	{name: "create serve token", route: "POST /api/v1/tokens", method: "POST", path: "/api/v1/tokens",
		body: func(n int) any {
			return map[string]any{"name": fmt.Sprintf("t-%d", n), "scope": "serve", "endpoints": []string{fmt.Sprintf("e%d", n)}}
		}, want: map[string]int{cAdmin: 201}},
	{name: "healthz", route: "GET /healthz", method: "GET", path: "/healthz", want: with(anyone(200), cServeOther, 200)},
	{name: "readyz", route: "GET /readyz", method: "GET", path: "/readyz", want: with(anyone(200), cServeOther, 200)},
	// The gateway itself is stood in for by serveStandIn; internal/app
	// tests the real one. cServeOther may call endpoint "other" only.
	{name: "serve", route: "/serve/", method: "POST", path: "/serve/{e}/predict", body: jsonBody(map[string]any{"x": 1}), want: anyone(200)},
}

func endpointBody(name, model string) map[string]any {
	return map[string]any{"name": name, "model": model, "routes": []map[string]any{
		{"name": "a", "version": 1, "upstream_url": "http://127.0.0.1:9", "weight": 100},
	}}
}

// TestGovernanceEveryActionEveryScope runs every governance action as
// every kind of caller, each against a fresh model m<n> (versions 1, 2,
// and 3 flagged by an admin; staging and production at 1; endpoint e<n>
// routing to 1), and checks who may do what, that refusals are 403
// permission_denied naming the rule, and that a refusal changes nothing.
func TestGovernanceEveryActionEveryScope(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		tokens := map[string]string{
			cRead:  e.reader,
			cCI:    e.token("ci", registry.ScopeWrite, "staging"),
			cWrite: e.writer,
			cAdmin: e.admin,
			cServe: e.token("serve", registry.ScopeServe),
		}
		tokens[cServeOther] = e.serveToken("serve-other", "other")
		e.srv.HandleServe("/serve/", serveStandInEndpoint, serveStandIn)
		n := 0
		for _, c := range govCases {
			for _, caller := range callers {
				n++
				m, ep := fmt.Sprintf("m%d", n), fmt.Sprintf("e%d", n)
				e.createModel(registry.ModelCreate{Name: m})
				e.createVersion(m, registry.ModelVersionCreate{Checksum: sha(m + "1")})
				e.createVersion(m, registry.ModelVersionCreate{Checksum: sha(m + "2")})
				e.createVersion(m, registry.ModelVersionCreate{Checksum: sha(m + "3"), Flagged: true, FlagReason: "leak"})
				e.assign(m, "staging", 1, e.admin, http.StatusOK)
				e.assign(m, "production", 1, e.admin, http.StatusOK)
				e.do(req{method: "POST", path: "/api/v1/endpoints", token: e.admin, body: endpointBody(ep, m)}, http.StatusCreated)
				tk := fmt.Sprintf("t%d", n)
				e.token(tk, registry.ScopeRead)
				if c.setup != nil {
					c.setup(govFixture{e: e, m: m, ep: ep, n: n, tokens: tokens})
				}
				events := e.countEvents()

				path := strings.NewReplacer("{m}", m, "{e}", ep, "{t}", itoa(e.tokens[tk].ID)).Replace(c.path)
				r := req{method: c.method, path: path, token: tokens[caller]}
				if c.body != nil {
					r.body = c.body(n)
				}
				res := e.call(r)
				want, allowed := c.want[caller]
				if !allowed {
					want = http.StatusForbidden
				}
				if res.status != want {
					t.Errorf("%s as %s: %s %s = %d, want %d; body %s", c.name, caller, c.method, path, res.status, want, res.body)
					continue
				}
				if !allowed {
					p := problem(t, res, registry.CodePermissionDenied)
					if p.Rule != "scope" && p.Rule != "token_stages" && p.Rule != "token_endpoints" {
						t.Errorf("%s as %s: refusal rule %q, want scope, token_stages or token_endpoints (%s)", c.name, caller, p.Rule, p.Detail)
					}
					if got := e.countEvents(); got != events {
						t.Errorf("%s as %s: a refused request wrote %d events", c.name, caller, got-events)
					}
				}
				if c.permitted != nil && allowed {
					var permitted bool
					var permission string
					if strings.Contains(c.route, "/endpoints") {
						dry := into[registry.EndpointDryRun](t, res)
						permitted, permission = dry.Permitted, dry.Permission
						if dry.Name == "" || len(dry.Routes) == 0 {
							t.Errorf("%s as %s: the dry run does not show the endpoint: %s", c.name, caller, res.body)
						}
					} else {
						dry := into[registry.StageDryRun](t, res)
						permitted, permission = dry.Permitted, dry.Permission
					}
					want := contains(c.permitted, caller)
					if permitted != want || (!want && permission == "") {
						t.Errorf("%s as %s: permitted %v (%q), want %v", c.name, caller, permitted, permission, want)
					}
					if got := e.countEvents(); got != events {
						t.Errorf("%s as %s: a dry run wrote %d events", c.name, caller, got-events)
					}
				}
			}
		}
	})
}

// stageEndpoint adds endpoint s<n>, bound to stage, that sends 10% of
// its traffic to version 2 (which holds no stage) and the rest to
// version 1.
func (f govFixture) stageEndpoint(stage string) {
	f.e.t.Helper()
	f.e.do(req{method: "POST", path: "/api/v1/endpoints", token: f.e.admin, body: map[string]any{
		"name": fmt.Sprintf("s%d", f.n), "model": f.m, "stage": stage, "routes": []map[string]any{
			{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9", "weight": 90},
			{"name": "canary", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 10},
		}}}, http.StatusCreated)
}

// rollout gives endpoint e<n> a rollout configuration and starts a
// rollout to version 2.
func (f govFixture) rollout() {
	f.e.t.Helper()
	f.e.do(req{method: "PATCH", path: "/api/v1/endpoints/" + f.ep, token: f.e.admin, body: map[string]any{
		"rollout": map[string]any{"steps": []int{50, 100}, "bake": "1h"},
		"routes":  []map[string]any{{"name": "a", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 100}},
	}}, http.StatusOK)
}

// serveStandIn stands in for the gateway behind HandleServe: the server's
// part is the authorization in front of it.
var serveStandIn = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

// serveStandInEndpoint reads the endpoint name as the gateway does for
// plain names: the first path segment after /serve/.
func serveStandInEndpoint(r *http.Request) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/serve/"), "/")
	return name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestGovernanceCoversEveryRoute fails when an API route is added without
// a governance case.
func TestGovernanceCoversEveryRoute(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	covered := map[string]bool{}
	for _, c := range govCases {
		covered[c.route] = true
	}
	e.srv.HandleServe("/serve/", serveStandInEndpoint, serveStandIn)
	var missing []string
	for _, route := range e.srv.Routes() {
		if !covered[route] {
			missing = append(missing, route)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes without a governance case: %s", strings.Join(missing, ", "))
	}
}

// TestStageRestrictedTokenCannotSteerProduction replays the attack from
// the review: a staging-only token, refused a staging assignment by the
// policy, tries to remove the policy, clear an admin's flag and point a
// production endpoint at an unvetted version. Each step is refused and
// production traffic still goes where production points.
func TestStageRestrictedTokenCannotSteerProduction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ci := e.token("ci", registry.ScopeWrite, "staging")
		e.createModel(registry.ModelCreate{Name: "churn", StagePolicies: map[string]registry.StagePolicy{
			"staging":    {MinMetrics: map[string]float64{"auc": 0.8}},
			"production": {RequireStage: "staging", MinMetrics: map[string]float64{"auc": 0.85}},
		}})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1"), Metrics: map[string]float64{"auc": 0.9}})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2"), Metrics: map[string]float64{"auc": 0.5}})
		e.assign("churn", "staging", 1, e.admin, http.StatusOK)
		e.assign("churn", "production", 1, e.admin, http.StatusOK)
		e.do(req{method: "POST", path: "/api/v1/endpoints", token: e.admin, body: map[string]any{
			"name": "churn", "model": "churn", "stage": "production",
			"routes": []map[string]any{{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9", "weight": 100}},
		}}, http.StatusCreated)
		e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/2", token: e.admin, body: map[string]any{"flagged": true, "flag_reason": "leak"}}, http.StatusOK)

		e.expectProblem(req{method: "PUT", path: "/api/v1/models/churn/stages/staging", token: ci, body: registry.StageAssign{Version: 2}},
			http.StatusUnprocessableEntity, registry.CodePolicyViolation)
		e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn", token: ci, body: map[string]any{"stage_policies": map[string]any{}}},
			http.StatusForbidden, registry.CodePermissionDenied)
		e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn/versions/2", token: ci, body: map[string]any{"flagged": false}},
			http.StatusForbidden, registry.CodePermissionDenied)
		e.expectProblem(req{method: "PATCH", path: "/api/v1/endpoints/churn", token: ci, body: map[string]any{
			"routes": []map[string]any{{"name": "stable", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 100}},
		}}, http.StatusForbidden, registry.CodePermissionDenied)
		e.expectProblem(req{method: "DELETE", path: "/api/v1/models/churn?force=true", token: ci}, http.StatusForbidden, registry.CodePermissionDenied)
		// Flagging production's version would drain all of production's
		// traffic (or leave it answering 503); erasing the admin's reason
		// would hide why version 2 is stopped.
		p := e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn/versions/1", token: ci, body: map[string]any{"flagged": true, "flag_reason": "x"}},
			http.StatusForbidden, registry.CodePermissionDenied)
		if !strings.Contains(p.Detail, `"production"`) {
			t.Errorf("refused flag does not name the stage: %s", p.Detail)
		}
		e.expectProblem(req{method: "PATCH", path: "/api/v1/models/churn/versions/2", token: ci, body: map[string]any{"flag_reason": ""}},
			http.StatusForbidden, registry.CodePermissionDenied)

		// Even an unrestricted writer cannot send production traffic to a
		// version that fails the production policy once it is unflagged.
		e.do(req{method: "PATCH", path: "/api/v1/models/churn/versions/2", token: e.writer, body: map[string]any{"flagged": false}}, http.StatusOK)
		p = e.expectProblem(req{method: "PATCH", path: "/api/v1/endpoints/churn", token: e.writer, body: map[string]any{
			"routes": []map[string]any{{"name": "stable", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 100}},
		}}, http.StatusUnprocessableEntity, registry.CodePolicyViolation)
		if p.Rule != "require_stage" || !strings.Contains(p.Detail, `endpoint serves stage "production"`) {
			t.Errorf("endpoint route to an unvetted version: rule %q detail %q", p.Rule, p.Detail)
		}
		ep := into[registry.Endpoint](t, e.do(req{method: "GET", path: "/api/v1/endpoints/churn", token: e.reader}, http.StatusOK))
		if len(ep.Routes) != 1 || ep.Routes[0].Version != 1 || ep.Stage != "production" {
			t.Errorf("endpoint changed: %+v", ep)
		}
	})
}

// serveToken creates a serve token limited to endpoints and returns its
// secret.
func (e *testEnv) serveToken(name string, endpoints ...string) string {
	e.t.Helper()
	secret, hash, err := registry.NewTokenSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.store.CreateToken(context.Background(), registry.Actor{Name: "test"}, registry.Token{
		Name: name, Scope: registry.ScopeServe, Endpoints: endpoints, Hash: hash,
	})
	if err != nil {
		e.t.Fatalf("create token %s: %v", name, err)
	}
	e.tokens[name] = tok
	return secret
}

// TestTokenLimitsFitTheScope: endpoints only on serve tokens, stages never
// on them, unknown scopes refused; the answer names the field.
func TestTokenLimitsFitTheScope(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "a", "scope": "read", "endpoints": []string{"churn"}}, "endpoints"},
		{map[string]any{"name": "b", "scope": "serve", "stages": []string{"staging"}}, "stages"},
		{map[string]any{"name": "c", "scope": "serve", "endpoints": []string{"Not A Name"}}, "endpoints[0]"},
		{map[string]any{"name": "d", "scope": "inference"}, "scope"},
	} {
		res := e.call(req{method: "POST", path: "/api/v1/tokens", token: e.admin, body: c.body})
		if res.status != http.StatusBadRequest {
			t.Errorf("%v: %d, want 400; %s", c.body, res.status, res.body)
			continue
		}
		if p := problem(t, res, registry.CodeInvalidArgument); p.Field != c.field {
			t.Errorf("%v: field %q, want %q", c.body, p.Field, c.field)
		}
	}
	res := e.call(req{method: "POST", path: "/api/v1/tokens", token: e.admin, body: map[string]any{"name": "app", "scope": "serve", "endpoints": []string{"churn"}}})
	got := into[registry.TokenCreated](t, res)
	if got.Token.Scope != registry.ScopeServe || len(got.Token.Endpoints) != 1 || got.Token.Endpoints[0] != "churn" {
		t.Errorf("created %+v", got.Token)
	}
}
