package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func TestIdempotencyKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "churn"})
		path := "/api/v1/models/churn/versions"
		body, _ := json.Marshal(registry.ModelVersionCreate{Source: "s3://m/1", Checksum: sha("1"), Format: "onnx"})
		withKey := func(key string) map[string]string { return map[string]string{"Idempotency-Key": key} }

		first := e.do(req{method: "POST", path: path, token: e.writer, body: body, header: withKey("k-1")}, http.StatusCreated)
		if first.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("first response marked as replayed")
		}
		events := e.countEvents()
		again := e.do(req{method: "POST", path: path, token: e.writer, body: body, header: withKey("k-1")}, http.StatusCreated)
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay lacks Idempotent-Replayed: %v", again.header)
		}
		if !bytes.Equal(again.body, first.body) {
			t.Errorf("replayed body differs:\nfirst  %s\nreplay %s", first.body, again.body)
		}
		for _, h := range []string{"ETag", "Location", "Content-Type"} {
			if again.header.Get(h) != first.header.Get(h) || first.header.Get(h) == "" {
				t.Errorf("%s: first %q, replay %q", h, first.header.Get(h), again.header.Get(h))
			}
		}
		if n := e.countVersions("churn"); n != 1 {
			t.Errorf("%d versions after a replay, want 1", n)
		}
		if got := e.countEvents(); got != events {
			t.Errorf("replay wrote %d events", got-events)
		}

		// Same key, different body.
		other, _ := json.Marshal(registry.ModelVersionCreate{Source: "s3://m/2", Checksum: sha("2"), Format: "onnx"})
		p := e.expectProblem(req{method: "POST", path: path, token: e.writer, body: other, header: withKey("k-1")}, http.StatusUnprocessableEntity, registry.CodeIdempotencyMismatch)
		if !strings.Contains(p.Detail, "k-1") {
			t.Errorf("mismatch detail %q", p.Detail)
		}

		// A 4xx outcome is final too, and replayed.
		dup := e.do(req{method: "POST", path: path, token: e.writer, body: body, header: withKey("k-2")}, http.StatusConflict)
		problem(t, dup, registry.CodeAlreadyExists)
		dup2 := e.do(req{method: "POST", path: path, token: e.writer, body: body, header: withKey("k-2")}, http.StatusConflict)
		if dup2.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(dup.body, dup2.body) {
			t.Errorf("4xx replay: header %q, bodies\n%s\n%s", dup2.header.Get("Idempotent-Replayed"), dup.body, dup2.body)
		}

		// Keys belong to a token: another token's identical key is a new request.
		mbody, _ := json.Marshal(registry.ModelCreate{Name: "fraud"})
		e.do(req{method: "POST", path: "/api/v1/models", token: e.writer, body: mbody, header: withKey("shared")}, http.StatusCreated)
		r := e.do(req{method: "POST", path: "/api/v1/models", token: e.admin, body: mbody, header: withKey("shared")}, http.StatusConflict)
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("another token's key was replayed")
		}

		// A request still in flight.
		sum := sha256.Sum256(other)
		k := registry.IdempotencyKey{TokenID: e.tokens["writer"].ID, Key: "k-flight", Method: "POST", Path: path, RequestHash: hex.EncodeToString(sum[:])}
		if rec, err := e.store.BeginIdempotent(context.Background(), k, time.Hour); err != nil || rec != nil {
			t.Fatalf("claim key: %v %v", rec, err)
		}
		p = e.expectProblem(req{method: "POST", path: path, token: e.writer, body: other, header: withKey("k-flight")}, http.StatusConflict, registry.CodeConflict)
		if p.Detail != "a request with this Idempotency-Key is still in progress" {
			t.Errorf("in-flight detail %q", p.Detail)
		}
		if n := e.countVersions("churn"); n != 1 {
			t.Errorf("%d versions, want 1", n)
		}

		for _, bad := range []string{strings.Repeat("k", 256), "tab\there", "é"} {
			p := e.expectProblem(req{method: "POST", path: path, token: e.writer, body: other, header: withKey(bad)}, http.StatusBadRequest, registry.CodeInvalidArgument)
			if p.Field != "Idempotency-Key" {
				t.Errorf("key %q: %+v", bad, p)
			}
		}
	})
}

// TestIdempotencyAbandon: after a 5xx or a panic the key is released, so
// the retry runs instead of getting 409 forever.
func TestIdempotencyAbandon(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	var calls atomic.Int32
	e.srv.Handle("POST /test/flaky", registry.ScopeWrite, e.srv.idempotent(apiFunc(func(w http.ResponseWriter, r *http.Request) error {
		switch calls.Add(1) {
		case 1:
			panic("kaboom")
		case 2:
			return errors.New("disk on fire: INSERT INTO secrets")
		}
		return writeJSON(w, http.StatusCreated, map[string]int32{"call": calls.Load()})
	})))
	h := map[string]string{"Idempotency-Key": "retry-me"}
	for i, want := range []int{http.StatusInternalServerError, http.StatusInternalServerError, http.StatusCreated, http.StatusCreated} {
		r := e.do(req{method: "POST", path: "/test/flaky", token: e.writer, body: `{}`, header: h}, want)
		if want == http.StatusInternalServerError {
			p := problem(t, r, registry.CodeInternal)
			if p.Detail != "internal error" || strings.Contains(string(r.body), "kaboom") || strings.Contains(string(r.body), "INSERT") {
				t.Errorf("call %d leaks: %s", i+1, r.body)
			}
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3 (the 4th call is a replay)", n)
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	e.srv.Handle("GET /test/panic", registry.ScopeRead, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("secret stack") }))
	r := e.do(req{method: "GET", path: "/test/panic", token: e.reader}, http.StatusInternalServerError)
	problem(t, r, registry.CodeInternal)
	if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "goroutine") {
		t.Errorf("panic leaks into the response: %s", r.body)
	}
	// The server keeps serving.
	e.do(req{method: "GET", path: "/api/v1/models", token: e.reader}, http.StatusOK)
}

// TestRequestErrors: malformed requests get 400/413 problem+json naming
// what to fix.
func TestRequestErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "churn"})
		e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1")})
		big := `{"name":"x","description":"` + strings.Repeat("a", 1<<20) + `"}`
		routes := func(w int) []map[string]any {
			return []map[string]any{{"name": "a", "version": 1, "upstream_url": "http://a:1", "weight": w}}
		}
		for _, c := range []struct {
			name   string
			r      req
			status int
			field  string
			detail string // substring
		}{
			{"truncated JSON", req{method: "POST", path: "/api/v1/models", body: `{"name":`}, 400, "", "truncated"},
			{"syntax error", req{method: "POST", path: "/api/v1/models", body: `{"name": x}`}, 400, "", "not valid JSON at offset 10"},
			{"unknown field", req{method: "POST", path: "/api/v1/models", body: `{"name":"a","foo":1}`}, 400, "foo", `unknown field "foo"`},
			{"nested unknown field", req{method: "POST", path: "/api/v1/models", body: `{"name":"a","stage_policies":{"prod":{"min_soak_hours":1}}}`}, 400, "min_soak_hours", `unknown field "min_soak_hours"`},
			{"wrong type", req{method: "POST", path: "/api/v1/models", body: `{"name":5}`}, 400, "name", "must be a string, not number"},
			{"wrong nested type", req{method: "POST", path: "/api/v1/endpoints", body: `{"name":"e","model":"churn","routes":[{"name":"a","weight":"50"}]}`}, 400, "routes.weight", "must be an integer"},
			{"trailing data", req{method: "POST", path: "/api/v1/models", body: `{"name":"a"} {"name":"b"}`}, 400, "", "after the JSON object"},
			{"empty body", req{method: "POST", path: "/api/v1/models", body: ``}, 400, "", "empty"},
			{"not an object", req{method: "POST", path: "/api/v1/models", body: `["a"]`}, 400, "", "JSON object"},
			{"null body", req{method: "PATCH", path: "/api/v1/models/churn", body: `null`}, 400, "", "JSON object"},
			{"content type", req{method: "POST", path: "/api/v1/models", body: `{"name":"a"}`, header: map[string]string{"Content-Type": "text/plain"}}, 400, "Content-Type", "Content-Type"},
			{"too large", req{method: "POST", path: "/api/v1/models", body: big}, 413, "", "1048576"},
			{"too large idempotent", req{method: "POST", path: "/api/v1/models", body: big, header: map[string]string{"Idempotency-Key": "big"}}, 413, "", "1048576"},
			{"bad name in body", req{method: "POST", path: "/api/v1/models", body: `{"name":"-churn"}`}, 400, "name", "must match"},
			{"bad name in path", req{method: "GET", path: "/api/v1/models/Churn"}, 400, "model", "must match"},
			{"bad endpoint name", req{method: "DELETE", path: "/api/v1/endpoints/a%20b"}, 400, "endpoint", "must match"},
			{"bad version", req{method: "GET", path: "/api/v1/models/churn/versions/latest"}, 400, "version", "positive integer"},
			{"zero version", req{method: "DELETE", path: "/api/v1/models/churn/versions/0"}, 400, "version", "positive integer"},
			{"bad stage", req{method: "GET", path: "/api/v1/models/churn/stages/Prod"}, 400, "stage", "must match"},
			{"bad stage history", req{method: "GET", path: "/api/v1/models/churn/stages/1st/history"}, 400, "stage", "must match"},
			{"stage version 0", req{method: "PUT", path: "/api/v1/models/churn/stages/prod", body: `{"version":0}`}, 400, "version", ">= 1"},
			{"bad page_size", req{method: "GET", path: "/api/v1/models?page_size=5000"}, 400, "page_size", "between 1 and 1000"},
			{"zero page_size", req{method: "GET", path: "/api/v1/models/churn/versions?page_size=0"}, 400, "page_size", "between 1 and 1000"},
			{"nan page_size", req{method: "GET", path: "/api/v1/endpoints?page_size=ten"}, 400, "page_size", "integer"},
			{"bad order_by", req{method: "GET", path: "/api/v1/models/churn/versions?order_by=created_at"}, 400, "order_by", "metrics.<name>"},
			{"bad order direction", req{method: "GET", path: "/api/v1/models/churn/versions?order_by=version+up"}, 400, "order_by", "desc"},
			{"bad flagged", req{method: "GET", path: "/api/v1/models/churn/versions?flagged=maybe"}, 400, "flagged", "true or false"},
			{"bad stage filter", req{method: "GET", path: "/api/v1/models/churn/versions?stage=PROD"}, 400, "stage", "must match"},
			{"bad since", req{method: "GET", path: "/api/v1/events?since=yesterday"}, 400, "since", "RFC 3339"},
			{"bad event model", req{method: "GET", path: "/api/v1/events?model=A%20B"}, 400, "model", "must match"},
			{"bad force", req{method: "DELETE", path: "/api/v1/models/churn?force=yes"}, 400, "force", "true or false"},
			{"bad dry_run", req{method: "PUT", path: "/api/v1/models/churn/stages/prod?dry_run=perhaps", body: `{"version":1}`}, 400, "dry_run", "true or false"},
			{"bad If-Match", req{method: "DELETE", path: "/api/v1/models/churn/versions/1", header: map[string]string{"If-Match": `"abc`}}, 400, "If-Match", "If-Match"},
			{"immutable", req{method: "PATCH", path: "/api/v1/models/churn/versions/1", body: `{"checksum":"sha256:00"}`}, 400, "checksum", "is immutable"},
			{"bad checksum", req{method: "POST", path: "/api/v1/models/churn/versions", body: `{"source":"s3://a/b","checksum":"md5:1","format":"onnx"}`}, 400, "checksum", "sha256"},
			{"bad format", req{method: "POST", path: "/api/v1/models/churn/versions", body: fmt.Sprintf(`{"source":"s3://a/b","checksum":%q,"format":"zip"}`, sha("z"))}, 400, "format", "one of"},
			{"weights", req{method: "POST", path: "/api/v1/endpoints", body: map[string]any{"name": "e", "model": "churn", "routes": routes(90)}}, 400, "routes", "sum to 100"},
			{"bad policy", req{method: "PATCH", path: "/api/v1/models/churn", body: `{"stage_policies":{"prod":{"min_soak":"1d","require_stage":"staging"}}}`}, 400, "stage_policies.prod.min_soak", "duration"},
			{"bad key", req{method: "POST", path: "/api/v1/models", body: `{"name":"k"}`, header: map[string]string{"Idempotency-Key": strings.Repeat("x", 300)}}, 400, "Idempotency-Key", "255"},
		} {
			t.Run(c.name, func(t *testing.T) {
				c.r.token = e.admin
				r := e.do(c.r, c.status)
				code := registry.CodeInvalidArgument
				if c.status == http.StatusRequestEntityTooLarge {
					code = registry.CodeTooLarge
				}
				p := problem(t, r, code)
				if p.Field != c.field || !strings.Contains(p.Detail, c.detail) {
					t.Errorf("field %q detail %q; want field %q and detail containing %q", p.Field, p.Detail, c.field, c.detail)
				}
			})
		}
		if n := e.countVersions("churn"); n != 1 {
			t.Errorf("bad requests changed the versions: %d", n)
		}
	})
}

// TestNoServerErrors throws odd requests at every route with every token
// and checks that none is a 500 and every error is problem+json with a
// code.
func TestNoServerErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.createModel(registry.ModelCreate{Name: "m"})
		e.createVersion("m", registry.ModelVersionCreate{Checksum: sha("1")})
		e.assign("m", "staging", 1, e.writer, http.StatusOK)

		paths := []string{
			"/", "/api", "/api/v1", "/api/v1/", "/api/v1/models", "/api/v1/models/",
			"/api/v1/models/m", "/api/v1/models/nope", "/api/v1/models/%2E%2E", "/api/v1/models/m%2Fx", "/api/v1/models/" + strings.Repeat("a", 200),
			"/api/v1/models/m/versions", "/api/v1/models/m/versions/1", "/api/v1/models/m/versions/9", "/api/v1/models/nope/versions/1",
			"/api/v1/models/m/versions/1/extra", "/api/v1/models/m/versions/9223372036854775807",
			"/api/v1/models/m/stages", "/api/v1/models/m/stages/staging", "/api/v1/models/m/stages/none", "/api/v1/models/nope/stages/staging",
			"/api/v1/models/m/stages/staging/history", "/api/v1/models/nope/stages/x/history",
			"/api/v1/endpoints", "/api/v1/endpoints/ep", "/api/v1/events",
			"/api/v1/models?page_token=garbage", "/api/v1/models?page_token=%00%ff", "/api/v1/models/m/versions?page_token=eyJ4IjoxfQ",
			"/api/v1/models/m/versions?order_by=metrics.", "/api/v1/models/m/versions?order_by=metrics.auc+desc&tag=%3D&stage=x",
			"/api/v1/models/m/stages/staging/history?page_token=zzz", "/api/v1/endpoints?page_token=-1",
			"/api/v1/events?since=2030-01-01T00:00:00Z&model=m&page_size=1", "/api/v1/events?page_token=abc",
			"/api/v1/models/m?force=true", "/api/v1/models/m/stages/prod?dry_run=true",
			"/healthz", "/readyz", "/metrics", "/openapi.json", "/serve/x/",
		}
		bodies := []string{``, `{}`, `{"version":1}`, `{"name":"x","model":"m","routes":[]}`, `{"version":-5,"reason":7}`, `nul`, `{"name":"m2","tags":{"":"x"}}`,
			`{"source":"s3://a/b","checksum":"` + sha("2") + `","format":"onnx","metrics":{"x":1e400}}`, `{"routes":[{"name":"a","version":1,"upstream_url":"http://x","weight":100}],"clear_guard":true}`}
		tokens := []string{"", "mlr_garbage", e.reader, e.writer, e.admin}
		n := 0
		for _, path := range paths {
			for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
				for i, body := range bodies {
					tok := tokens[(n+i)%len(tokens)]
					if method == "GET" || method == "HEAD" || method == "OPTIONS" {
						if i > 0 {
							continue
						}
						body = ""
					}
					n++
					r := e.call(req{method: method, path: path, token: tok, body: body})
					if r.status >= 500 {
						t.Errorf("%s %s body %q: status %d: %s", method, path, body, r.status, r.body)
						continue
					}
					if r.status >= 400 && method != "HEAD" {
						if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
							t.Errorf("%s %s: status %d with Content-Type %q: %s", method, path, r.status, ct, r.body)
							continue
						}
						var p Problem
						if err := json.Unmarshal(r.body, &p); err != nil || p.Code == "" || p.Status != r.status || p.Detail == "" {
							t.Errorf("%s %s: status %d, bad problem %s", method, path, r.status, r.body)
						}
					}
				}
			}
		}
		t.Logf("%d requests", n)
	})
}

func TestRoutingAndHeaders(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	p := e.expectProblem(req{method: "GET", path: "/nope", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)
	if p.Instance != "/nope" {
		t.Errorf("instance = %q", p.Instance)
	}
	e.expectProblem(req{method: "GET", path: "/api/v1/models/m/versions/1/artifacts", token: e.reader}, http.StatusNotFound, registry.CodeNotFound)

	r := e.do(req{method: "DELETE", path: "/api/v1/events", token: e.admin}, http.StatusMethodNotAllowed)
	problem(t, r, registry.CodeInvalidArgument)
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q", allow)
	}
	r = e.do(req{method: "POST", path: "/api/v1/models/m/stages", token: e.admin, body: `{}`}, http.StatusMethodNotAllowed)
	if !strings.Contains(string(r.body), "allowed: GET") {
		t.Errorf("405 body %s", r.body)
	}

	// Request IDs: a safe client ID is kept and reaches the audit log; an
	// unsafe one is replaced.
	r = e.do(req{method: "POST", path: "/api/v1/models", token: e.writer, body: registry.ModelCreate{Name: "churn"}, header: map[string]string{"X-Request-ID": "req-42.a_b"}}, http.StatusCreated)
	if r.header.Get("X-Request-ID") != "req-42.a_b" {
		t.Errorf("X-Request-ID = %q", r.header.Get("X-Request-ID"))
	}
	evs := into[registry.Page[registry.Event]](t, e.do(req{method: "GET", path: "/api/v1/events?model=churn", token: e.reader}, http.StatusOK))
	if len(evs.Items) != 1 || evs.Items[0].RequestID != "req-42.a_b" || evs.Items[0].Actor != "writer" || evs.Items[0].Action != registry.ActionModelCreate {
		t.Errorf("events = %+v", evs.Items)
	}
	for _, bad := range []string{"has space", strings.Repeat("a", 129), "semi;colon"} {
		r := e.do(req{method: "GET", path: "/healthz", header: map[string]string{"X-Request-ID": bad}}, http.StatusOK)
		if got := r.header.Get("X-Request-ID"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
			t.Errorf("X-Request-ID for %q = %q, want a generated one", bad, got)
		}
	}
	r = e.do(req{method: "GET", path: "/healthz"}, http.StatusOK)
	if r.header.Get("X-Content-Type-Options") != "nosniff" || string(r.body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("healthz: %v %s", r.header, r.body)
	}
}

func TestPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		var want []string
		for i := range 5 {
			name := fmt.Sprintf("m%d", i)
			e.createModel(registry.ModelCreate{Name: name})
			want = append(want, name)
		}
		for i := range 5 {
			e.createVersion("m0", registry.ModelVersionCreate{Checksum: sha(fmt.Sprint(i))})
		}

		// walk follows next_page_token and returns the pages' sizes.
		walk := func(path string, each func(raw json.RawMessage)) []int {
			t.Helper()
			var sizes []int
			token := ""
			for range 20 {
				sep := "?"
				if strings.Contains(path, "?") {
					sep = "&"
				}
				page := into[registry.Page[json.RawMessage]](t, e.do(req{method: "GET", path: path + sep + "page_token=" + token, token: e.reader}, http.StatusOK))
				sizes = append(sizes, len(page.Items))
				for _, it := range page.Items {
					each(it)
				}
				if page.NextPageToken == "" {
					return sizes
				}
				token = page.NextPageToken
			}
			t.Fatalf("%s: more than 20 pages", path)
			return nil
		}

		var names []string
		sizes := walk("/api/v1/models?page_size=2", func(raw json.RawMessage) {
			var m registry.Model
			_ = json.Unmarshal(raw, &m)
			names = append(names, m.Name)
		})
		if !slices.Equal(names, want) || !slices.Equal(sizes, []int{2, 2, 1}) {
			t.Errorf("models pages %v: %v", sizes, names)
		}

		var versions []int64
		sizes = walk("/api/v1/models/m0/versions?page_size=2&order_by=version+desc", func(raw json.RawMessage) {
			var v registry.ModelVersion
			_ = json.Unmarshal(raw, &v)
			versions = append(versions, v.Version)
		})
		if !slices.Equal(versions, []int64{5, 4, 3, 2, 1}) || !slices.Equal(sizes, []int{2, 2, 1}) {
			t.Errorf("version pages %v: %v", sizes, versions)
		}

		for _, v := range []int64{1, 2, 3} {
			e.assign("m0", "staging", v, e.writer, http.StatusOK)
		}
		var hist []int64
		walk("/api/v1/models/m0/stages/staging/history?page_size=1", func(raw json.RawMessage) {
			var h registry.StageHistoryEntry
			_ = json.Unmarshal(raw, &h)
			hist = append(hist, h.Version)
		})
		if !slices.Equal(hist, []int64{3, 2, 1}) {
			t.Errorf("history pages: %v", hist)
		}

		var ids []int64
		walk("/api/v1/events?page_size=3", func(raw json.RawMessage) {
			var ev registry.Event
			_ = json.Unmarshal(raw, &ev)
			ids = append(ids, ev.ID)
		})
		if len(ids) != e.countEvents() || !slices.IsSorted(ids) {
			t.Errorf("event ids %v (store has %d events)", ids, e.countEvents())
		}
		var since []int64
		walk("/api/v1/events?since="+e.clock.Now().Add(time.Hour).Format(time.RFC3339), func(raw json.RawMessage) {
			since = append(since, 0)
		})
		if len(since) != 0 {
			t.Errorf("events since the future: %d", len(since))
		}
	})
}

func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db", func(o *Options) { o.Version = "1.2.3" })
	e.do(req{method: "GET", path: "/api/v1/models", token: e.reader}, http.StatusOK)
	e.do(req{method: "GET", path: "/api/v1/models/churn", token: e.reader}, http.StatusNotFound)
	e.do(req{method: "GET", path: "/no/such/thing", token: e.reader}, http.StatusNotFound)
	if r := e.do(req{method: "GET", path: "/readyz"}, http.StatusOK); string(r.body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("readyz body %s", r.body)
	}

	body := string(e.do(req{method: "GET", path: "/metrics", token: e.reader}, http.StatusOK).body)
	for _, want := range []string{
		`mlregistry_http_requests_total{code="200",method="GET",route="/api/v1/models"} 1`,
		`mlregistry_http_requests_total{code="404",method="GET",route="/api/v1/models/{model}"} 1`,
		`mlregistry_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`mlregistry_http_request_duration_seconds_bucket{method="GET",route="/api/v1/models",le="+Inf"} 1`,
		`mlregistry_build_info{version="1.2.3"} 1`,
		`go_goroutines`,
		`process_`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "churn") || strings.Contains(body, "/no/such") {
		t.Errorf("/metrics has raw paths as labels")
	}

	spec := into[map[string]any](t, e.do(req{method: "GET", path: "/openapi.json", token: e.reader}, http.StatusOK))
	if spec["openapi"] == nil || spec["paths"] == nil {
		t.Errorf("/openapi.json lacks openapi/paths")
	}

	// A store that cannot be reached makes /readyz fail, /healthz not.
	down, err := New(Options{Store: pingFails{e.store}, InsecureNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(down.Handler())
	t.Cleanup(ts.Close)
	res, err := http.Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p Problem
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil || res.StatusCode != http.StatusServiceUnavailable || p.Code != registry.CodeUnavailable || strings.Contains(p.Detail, "connection refused") {
		t.Errorf("readyz when down: %d %+v %v", res.StatusCode, p, err)
	}
	res2, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusOK {
		t.Errorf("healthz when the store is down: %d", res2.StatusCode)
	}
}

type pingFails struct{ Store }

func (pingFails) Ping(context.Context) error { return errors.New("dial tcp: connection refused") }

// TestSharedRegistry: two servers (or an app that registers its own Go
// collector) can share one Prometheus registry.
func TestSharedRegistry(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	reg := newRegistryWithGo(t)
	for range 2 {
		if _, err := New(Options{Store: e.store, Registry: reg}); err != nil {
			t.Fatalf("New with a shared registry: %v", err)
		}
	}
}

func newRegistryWithGo(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	return reg
}

// TestMountedHandlers: handlers mounted with Handle (gateway, UI) share
// auth, request IDs and problem answers.
func TestMountedHandlers(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	e.srv.Handle("/test/mounted/", registry.ScopeRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := ActorFromContext(r.Context())
		tok, _ := TokenFromContext(r.Context())
		id, _ := RequestIDFromContext(r.Context())
		if !ok || a.Name != "reader" || tok.Scope != registry.ScopeRead || a.RequestID != id || id == "" {
			t.Errorf("mounted handler context: %+v %+v %q", a, tok, id)
		}
		WriteProblemStatus(w, r, http.StatusBadGateway, registry.Errorf(registry.CodeUnavailable, "upstream refused the connection"))
	}))
	e.srv.Handle("GET /test/public", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := ActorFromContext(r.Context()); ok {
			t.Errorf("public handler has an actor")
		}
		WriteProblemStatus(w, r, http.StatusBadGateway, errors.New("SELECT secret FROM t"))
	}))
	problem(t, e.do(req{method: "POST", path: "/test/mounted/x"}, http.StatusUnauthorized), registry.CodeUnauthenticated)
	p := e.expectProblem(req{method: "POST", path: "/test/mounted/x", token: e.reader, body: `{}`}, http.StatusBadGateway, registry.CodeUnavailable)
	if p.Detail != "upstream refused the connection" || p.Instance != "/test/mounted/x" {
		t.Errorf("problem = %+v", p)
	}
	p = e.expectProblem(req{method: "GET", path: "/test/public"}, http.StatusInternalServerError, registry.CodeInternal)
	if p.Detail != "internal error" {
		t.Errorf("internal detail %q", p.Detail)
	}
	metrics := string(e.do(req{method: "GET", path: "/metrics", token: e.reader}, http.StatusOK).body)
	if !strings.Contains(metrics, `mlregistry_http_requests_total{code="502",method="POST",route="/test/mounted/"} 1`) {
		t.Errorf("mounted route not in metrics")
	}
}
