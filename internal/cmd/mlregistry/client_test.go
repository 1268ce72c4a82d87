package main

// Tests of the client commands (models, versions, stages, endpoints,
// events, flag, unflag, token through the API) and of the token-free
// metrics listener: the real binary against a real `mlregistry serve` on a
// SQLite file.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// cliResult is one run of the binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliEnv runs the binary with env (NAME=value) added to a clean
// environment: no MLREGISTRY_* from the caller's shell leaks in.
func cliEnv(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return cliResult{stdout: o.String(), stderr: e.String(), code: code}
}

// fixture is a running registry with a model churn (versions 1-3, auc
// 0.81, 0.93, 0.88; staging and production at 1 then production at 2; 3
// flagged) and an endpoint churn (stable v1 90%, canary v2 10%).
type fixture struct {
	srv   *serverProc
	db    string
	admin string
	env   []string // MLREGISTRY_ADDR and MLREGISTRY_TOKEN (admin)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	f := &fixture{db: db, admin: createToken(t, db, "admin", "admin")}
	f.srv = startServer(t, db)
	f.env = []string{"MLREGISTRY_ADDR=" + f.srv.url, "MLREGISTRY_TOKEN=" + f.admin}
	must := func(method, path string, body any, want int) {
		t.Helper()
		if st, out := do(t, method, f.srv.url+path, f.admin, body); st != want {
			t.Fatalf("%s %s: %d %v", method, path, st, out)
		}
	}
	must("POST", "/api/v1/models", map[string]any{"name": "churn", "owner": "ds-team", "tags": map[string]string{"team": "ds"},
		"stage_policies": map[string]any{"production": map[string]any{"min_metrics": map[string]float64{"auc": 0.8}}}}, 201)
	must("POST", "/api/v1/models", map[string]any{"name": "fraud", "owner": "risk", "description": "card fraud"}, 201)
	for i, auc := range []float64{0.81, 0.93, 0.88} {
		must("POST", "/api/v1/models/churn/versions", map[string]any{
			"source": fmt.Sprintf("s3://models/churn/%d/model.onnx", i+1), "checksum": "sha256:" + strings.Repeat(fmt.Sprint(i+1), 64),
			"format": "onnx", "metrics": map[string]float64{"auc": auc}, "lineage": map[string]string{"run_id": fmt.Sprintf("run-%d", i+1)},
		}, 201)
	}
	must("PUT", "/api/v1/models/churn/stages/staging", map[string]any{"version": 1}, 200)
	must("PUT", "/api/v1/models/churn/stages/production", map[string]any{"version": 1, "reason": "first release"}, 200)
	must("PUT", "/api/v1/models/churn/stages/production", map[string]any{"version": 2, "reason": "better auc"}, 200)
	must("PATCH", "/api/v1/models/churn/versions/3", map[string]any{"flagged": true, "flag_reason": "label leak"}, 200)
	must("POST", "/api/v1/endpoints", map[string]any{"name": "churn", "model": "churn", "routes": []map[string]any{
		{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9/v1", "weight": 90},
		{"name": "canary", "version": 2, "upstream_url": "http://127.0.0.1:9/v2", "weight": 10},
	}}, 201)
	return f
}

func (f *fixture) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	return cliEnv(t, f.env, args...)
}

// ok runs args and expects exit code 0.
func (f *fixture) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := f.run(t, args...)
	if r.code != 0 {
		t.Fatalf("mlregistry %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// tableAfter is the table under a heading line: up to the next blank line.
func tableAfter(out, heading string) string {
	table, _, _ := strings.Cut(out[strings.Index(out, heading)+len(heading+"\n"):], "\n\n")
	return table
}

// rows splits a table into lines and checks that every cell of the header
// starts at the same column as the cells below it, for the columns named.
func rows(t *testing.T, out string, aligned ...string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes in output that is not a terminal:\n%q", out)
	}
	header := lines[0]
	for _, col := range aligned {
		at := strings.Index(header, col)
		if at < 0 {
			t.Fatalf("no column %s in header %q", col, header)
		}
		for _, l := range lines[1:] {
			if len(l) <= at || (at > 0 && l[at-1] != ' ') || l[at] == ' ' {
				t.Errorf("column %s (at %d) is not aligned in %q\n%s", col, at, l, out)
			}
		}
	}
	return lines
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
	return v
}

func TestClientCommandsTables(t *testing.T) {
	f := newFixture(t)

	lines := rows(t, f.ok(t, "models"), "OWNER", "TAGS", "POLICIES", "UPDATED")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "churn ") || !strings.Contains(lines[1], "team=ds") || !strings.Contains(lines[1], "production") ||
		!strings.HasPrefix(lines[2], "fraud ") || !strings.Contains(lines[2], "card fraud") {
		t.Errorf("models:\n%s", strings.Join(lines, "\n"))
	}
	if got := f.ok(t, "models", "list"); got != f.ok(t, "models") {
		t.Errorf("models list differs from models:\n%s", got)
	}
	show := f.ok(t, "models", "show", "churn")
	for _, want := range []string{"Owner:", "ds-team", "Stage policies:", "auc=0.8", "Stages:", "production", "better auc"} {
		if !strings.Contains(show, want) {
			t.Errorf("models show churn lacks %q:\n%s", want, show)
		}
	}

	lines = rows(t, f.ok(t, "versions", "churn"), "STAGES", "FLAGGED", "FORMAT", "METRICS", "CREATED", "SOURCE")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "1 ") || !strings.Contains(lines[1], "staging") ||
		!strings.Contains(lines[2], "production") || !strings.Contains(lines[3], "yes: label leak") {
		t.Errorf("versions churn:\n%s", strings.Join(lines, "\n"))
	}
	lines = rows(t, f.ok(t, "versions", "churn", "--order-by", "auc"), "METRICS")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "2 ") || !strings.HasPrefix(lines[2], "3 ") || !strings.HasPrefix(lines[3], "1 ") {
		t.Errorf("versions --order-by auc is not best first:\n%s", strings.Join(lines, "\n"))
	}
	lines = rows(t, f.ok(t, "versions", "churn", "--order-by", "auc asc"))
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "1 ") {
		t.Errorf("versions --order-by 'auc asc':\n%s", strings.Join(lines, "\n"))
	}
	if lines = rows(t, f.ok(t, "versions", "churn", "--stage", "production")); len(lines) != 2 || !strings.HasPrefix(lines[1], "2 ") {
		t.Errorf("versions --stage production:\n%s", strings.Join(lines, "\n"))
	}
	if lines = rows(t, f.ok(t, "versions", "churn", "--flagged")); len(lines) != 2 || !strings.HasPrefix(lines[1], "3 ") {
		t.Errorf("versions --flagged:\n%s", strings.Join(lines, "\n"))
	}
	one := f.ok(t, "versions", "churn", "2")
	for _, want := range []string{"Version:", "Checksum:", "sha256:2222", "auc=0.93", "run_id=run-2", "production"} {
		if !strings.Contains(one, want) {
			t.Errorf("versions churn 2 lacks %q:\n%s", want, one)
		}
	}

	lines = rows(t, f.ok(t, "stages", "churn"), "VERSION", "PREVIOUS", "ASSIGNED", "BY", "REASON")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "production ") || !strings.Contains(lines[1], "better auc") || !strings.HasPrefix(lines[2], "staging ") {
		t.Errorf("stages churn:\n%s", strings.Join(lines, "\n"))
	}
	lines = rows(t, f.ok(t, "stages", "churn", "--history", "production"), "ACTION", "VERSION", "PREVIOUS", "BY")
	if len(lines) != 3 || !strings.Contains(lines[1], "better auc") || !strings.Contains(lines[2], "first release") {
		t.Errorf("stages --history production (newest first):\n%s", strings.Join(lines, "\n"))
	}

	lines = rows(t, f.ok(t, "endpoints"), "MODEL", "STATUS", "ROUTES", "URL")
	if len(lines) != 2 || !strings.Contains(lines[1], "stable=v1:90% canary=v2:10%") || !strings.Contains(lines[1], "healthy") ||
		!strings.Contains(lines[1], f.srv.url+"/serve/churn/") {
		t.Errorf("endpoints:\n%s", strings.Join(lines, "\n"))
	}
	ep := f.ok(t, "endpoints", "show", "churn")
	for _, want := range []string{"Status:", "healthy", "URL:", "/serve/churn/", "Routes:", "stable", "90%", "http://127.0.0.1:9/v2"} {
		if !strings.Contains(ep, want) {
			t.Errorf("endpoints show churn lacks %q:\n%s", want, ep)
		}
	}
	if lines = rows(t, tableAfter(ep, "Routes:"), "VERSION", "CONFIGURED", "OBSERVED", "UPSTREAM"); len(lines) != 3 ||
		!strings.Contains(lines[1], "90%  ") || !strings.Contains(lines[2], "10%  ") {
		t.Errorf("endpoints show churn routes:\n%s", strings.Join(lines, "\n"))
	}

	lines = rows(t, f.ok(t, "events", "--model", "churn"), "TIME", "ACTOR", "ACTION", "SUBJECT")
	if len(lines) < 9 || !strings.Contains(lines[1], "model.create") || !strings.Contains(lines[len(lines)-1], "endpoint.create") {
		t.Errorf("events --model churn:\n%s", strings.Join(lines, "\n"))
	}
	if lines = rows(t, f.ok(t, "events", "--limit", "2")); len(lines) != 3 {
		t.Errorf("events --limit 2:\n%s", strings.Join(lines, "\n"))
	}
	if lines = rows(t, f.ok(t, "events", "--endpoint", "churn")); len(lines) != 2 || !strings.Contains(lines[1], "endpoint.create") {
		t.Errorf("events --endpoint churn:\n%s", strings.Join(lines, "\n"))
	}

	if out := f.ok(t, "flag", "churn", "1", "--reason", "drift"); !strings.Contains(out, "flagged churn version 1: drift") {
		t.Errorf("flag: %q", out)
	}
	if lines = rows(t, f.ok(t, "versions", "churn", "--flagged")); len(lines) != 3 {
		t.Errorf("after flag, versions --flagged:\n%s", strings.Join(lines, "\n"))
	}
	if out := f.ok(t, "unflag", "churn", "1"); !strings.Contains(out, "unflagged churn version 1") {
		t.Errorf("unflag: %q", out)
	}
	if lines = rows(t, f.ok(t, "versions", "churn", "--unflagged")); len(lines) != 3 {
		t.Errorf("after unflag, versions --unflagged:\n%s", strings.Join(lines, "\n"))
	}
}

func TestClientCommandsJSON(t *testing.T) {
	f := newFixture(t)
	if ms := decodeJSON[[]registry.Model](t, f.ok(t, "models", "-o", "json")); len(ms) != 2 || ms[0].Name != "churn" || ms[0].StagePolicies["production"].MinMetrics["auc"] != 0.8 {
		t.Errorf("models -o json: %+v", ms)
	}
	if m := decodeJSON[registry.Model](t, f.ok(t, "models", "show", "fraud", "--output", "json")); m.Name != "fraud" || m.Owner != "risk" {
		t.Errorf("models show -o json: %+v", m)
	}
	vs := decodeJSON[[]registry.ModelVersion](t, f.ok(t, "versions", "churn", "--order-by", "auc", "-o", "json"))
	if len(vs) != 3 || vs[0].Version != 2 || vs[0].Metrics["auc"] != 0.93 || vs[1].Version != 3 || !vs[1].Flagged {
		t.Errorf("versions --order-by auc -o json: %+v", vs)
	}
	if v := decodeJSON[registry.ModelVersion](t, f.ok(t, "versions", "churn", "3", "-o", "json")); v.FlagReason != "label leak" {
		t.Errorf("versions churn 3 -o json: %+v", v)
	}
	if ss := decodeJSON[[]registry.StageAssignment](t, f.ok(t, "stages", "churn", "-o", "json")); len(ss) != 2 || ss[0].Stage != "production" || ss[0].Version != 2 || ss[0].PreviousVersion != 1 {
		t.Errorf("stages -o json: %+v", ss)
	}
	if hs := decodeJSON[[]registry.StageHistoryEntry](t, f.ok(t, "stages", "churn", "--history", "production", "-o", "json")); len(hs) != 2 || hs[0].Version != 2 {
		t.Errorf("stages --history -o json: %+v", hs)
	}
	if es := decodeJSON[[]registry.Endpoint](t, f.ok(t, "endpoints", "-o", "json")); len(es) != 1 || len(es[0].Routes) != 2 || es[0].Routes[0].Weight != 90 {
		t.Errorf("endpoints -o json: %+v", es)
	}
	if e := decodeJSON[registry.Endpoint](t, f.ok(t, "endpoints", "show", "churn", "-o", "json")); e.URL == "" || e.Status != registry.EndpointStatusHealthy {
		t.Errorf("endpoints show -o json: %+v", e)
	}
	if evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--model", "fraud", "-o", "json")); len(evs) != 1 || evs[0].Action != registry.ActionModelCreate || evs[0].Actor != "admin" {
		t.Errorf("events -o json: %+v", evs)
	}
	if evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--model", "fraud", "--since", "2100-01-01", "-o", "json")); evs == nil || len(evs) != 0 {
		t.Errorf("events with no match -o json: %+v, want []", evs)
	}
	if v := decodeJSON[registry.ModelVersion](t, f.ok(t, "flag", "churn", "2", "--reason", "bias", "-o", "json")); !v.Flagged || v.FlagReason != "bias" {
		t.Errorf("flag -o json: %+v", v)
	}
	if v := decodeJSON[registry.ModelVersion](t, f.ok(t, "unflag", "churn", "2", "-o", "json")); v.Flagged {
		t.Errorf("unflag -o json: %+v", v)
	}
}

func TestClientExitCodes(t *testing.T) {
	f := newFixture(t)
	reader := createToken(t, f.db, "reader", "read")
	cases := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stderr []string
	}{
		{"model not found", f.env, []string{"models", "show", "nope"}, exitNotFound, []string{`model "nope" not found`, "not_found"}},
		{"version not found", f.env, []string{"versions", "churn", "9"}, exitNotFound, []string{"not_found"}},
		{"endpoint not found", f.env, []string{"endpoints", "show", "nope"}, exitNotFound, []string{"not_found"}},
		{"no token", []string{"MLREGISTRY_ADDR=" + f.srv.url}, []string{"models"}, exitAuth, []string{"unauthenticated", "hint: no token given: set MLREGISTRY_TOKEN"}},
		{"bad token", []string{"MLREGISTRY_ADDR=" + f.srv.url, "MLREGISTRY_TOKEN=mlr_nope"}, []string{"models"}, exitAuth, []string{"invalid or revoked token", "was refused"}},
		{"read token flags", []string{"MLREGISTRY_ADDR=" + f.srv.url}, []string{"flag", "churn", "1", "--reason", "x", "--token", reader}, exitAuth, []string{"permission_denied", `"reader" has scope read`}},
		{"read token lists tokens", nil, []string{"token", "list", "--addr", f.srv.url, "--token", reader}, exitAuth, []string{"needs scope admin"}},
		{"unreachable", []string{"MLREGISTRY_ADDR=http://127.0.0.1:1", "MLREGISTRY_TOKEN=" + f.admin}, []string{"models"}, exitUnavailable, []string{"could not reach the registry at http://127.0.0.1:1", "hint: is a registry running at http://127.0.0.1:1?"}},
		{"already exists", f.env, []string{"token", "create", "--name", "admin", "--scope", "read"}, exitConflict, []string{"already exists"}},
		{"flag without reason", f.env, []string{"flag", "churn", "1"}, exitUsage, []string{"--reason"}},
		{"bad version", f.env, []string{"versions", "churn", "first"}, exitUsage, []string{`version "first" must be a positive integer`}},
		{"invalid model name", f.env, []string{"models", "show", "Bad Name"}, exitUsage, []string{"invalid_argument"}},
		{"missing argument", f.env, []string{"versions"}, exitUsage, []string{"takes a MODEL", "Usage:"}},
		{"extra argument", f.env, []string{"models", "list", "x"}, exitUsage, []string{"takes no arguments"}},
		{"unknown flag", f.env, []string{"models", "--colour"}, exitUsage, []string{"unknown flag: --colour"}},
		{"bad output", f.env, []string{"models", "-o", "yaml"}, exitUsage, []string{`--output "yaml" must be table or json`}},
		{"bad address", []string{"MLREGISTRY_ADDR=ftp://x"}, []string{"models"}, exitUsage, []string{"must be an http:// or https:// URL"}},
		{"unknown command", nil, []string{"modles"}, exitUsage, []string{`unknown command "modles"`}},
	}
	for _, c := range cases {
		r := cliEnv(t, c.env, c.args...)
		if r.code != c.code {
			t.Errorf("%s: mlregistry %s: exit %d, want %d\nstderr: %s", c.name, strings.Join(c.args, " "), r.code, c.code, r.stderr)
			continue
		}
		for _, want := range c.stderr {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, want, r.stderr)
			}
		}
		if r.stdout != "" {
			t.Errorf("%s: an error printed to stdout: %q", c.name, r.stdout)
		}
		if strings.Contains(r.stderr, f.admin) || strings.Contains(r.stderr, reader) {
			t.Errorf("%s: stderr shows a token secret", c.name)
		}
	}
}

var idRE = regexp.MustCompile(`\(id (\d+)`)

// TestTokenCommandsRemoteAndLocal: token create, list and revoke through
// the API (flags and environment) and on the database, seeing each
// other's changes; a name revoked and re-created lists as two rows told
// apart by id and state; an expired token is refused.
func TestTokenCommandsRemoteAndLocal(t *testing.T) {
	f := newFixture(t)
	addr := []string{"--addr", f.srv.url, "--token", f.admin}

	// Remote create with flags: the secret alone on stdout, the id on stderr.
	r := cliEnv(t, nil, append([]string{"token", "create", "--name", "ci", "--scope", "write", "--stages", "staging"}, addr...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, registry.TokenPrefix) || strings.Count(r.stdout, "\n") != 1 || !idRE.MatchString(r.stderr) {
		t.Fatalf("remote token create: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	ci1 := strings.TrimSpace(r.stdout)
	ci1ID := idRE.FindStringSubmatch(r.stderr)[1]
	if got := cliEnv(t, []string{"MLREGISTRY_ADDR=" + f.srv.url, "MLREGISTRY_TOKEN=" + ci1}, "models"); got.code != 0 {
		t.Fatalf("the new token does not work: %d %s", got.code, got.stderr)
	}

	// Remote list (environment): ids and state, never a secret.
	out := f.ok(t, "token", "list")
	lines := rows(t, out, "NAME", "SCOPE", "STAGES", "STATE", "CREATED", "LAST USED", "EXPIRES", "REVOKED")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], ci1ID+" ") || !strings.Contains(lines[2], "staging") || !strings.Contains(lines[2], "active") {
		t.Errorf("token list:\n%s", out)
	}
	if strings.Contains(out, ci1) || strings.Contains(out, f.admin) {
		t.Fatal("token list shows a secret")
	}

	// Revoke by name through the API; the token is refused at once.
	if out := f.ok(t, "token", "revoke", "ci"); !strings.Contains(out, `revoked token "ci" (id `+ci1ID+")") {
		t.Errorf("token revoke ci: %q", out)
	}
	if got := cliEnv(t, []string{"MLREGISTRY_ADDR=" + f.srv.url, "MLREGISTRY_TOKEN=" + ci1}, "models"); got.code != exitAuth {
		t.Errorf("revoked token: exit %d, want %d", got.code, exitAuth)
	}
	if r := f.run(t, "token", "revoke", "ci"); r.code != exitNotFound {
		t.Errorf("revoking ci twice: exit %d, want %d (%s)", r.code, exitNotFound, r.stderr)
	}
	if r := f.run(t, "token", "revoke", "--id", ci1ID); r.code != exitConflict || !strings.Contains(r.stderr, "already revoked") {
		t.Errorf("revoking id %s twice: exit %d, want %d (%s)", ci1ID, r.code, exitConflict, r.stderr)
	}

	// Re-create "ci" on the database directly; both rows list, with ids and states.
	r = cliEnv(t, nil, "token", "create", "--db", f.db, "--name", "ci", "--scope", "read")
	if r.code != 0 {
		t.Fatalf("local token create: %d %s", r.code, r.stderr)
	}
	ci2ID := idRE.FindStringSubmatch(r.stderr)[1]
	toks := decodeJSON[[]registry.Token](t, f.ok(t, "token", "list", "-o", "json"))
	var states []string
	for _, tok := range toks {
		if tok.Name == "ci" {
			states = append(states, fmt.Sprintf("%d:%s", tok.ID, tok.State))
		}
	}
	if want := []string{ci1ID + ":revoked", ci2ID + ":active"}; strings.Join(states, " ") != strings.Join(want, " ") {
		t.Errorf("ci tokens after revoke and re-create: %v, want %v", states, want)
	}
	local := cliEnv(t, []string{"MLREGISTRY_DB=" + f.db}, "token", "list")
	if local.code != 0 || strings.Count(local.stdout, " ci ") != 2 || !strings.Contains(local.stdout, "revoked") {
		t.Errorf("local token list: %d\n%s%s", local.code, local.stdout, local.stderr)
	}

	// Revoke by id on the database; the API sees it.
	if r := cliEnv(t, nil, "token", "revoke", "--id", ci2ID, "--db", f.db, "-o", "json"); r.code != 0 || decodeJSON[registry.Token](t, r.stdout).State != registry.TokenRevoked {
		t.Errorf("local revoke --id: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if got := decodeJSON[[]registry.Token](t, f.ok(t, "token", "list", "-o", "json")); got[len(got)-1].State != registry.TokenRevoked {
		t.Errorf("the API does not see the local revoke: %+v", got[len(got)-1])
	}

	// JSON create through the API, with an expiry; expired, it is refused
	// and lists as expired.
	created := decodeJSON[registry.TokenCreated](t, f.ok(t, "token", "create", "--name", "brief", "--scope", "read", "--expires-in", "2s", "-o", "json"))
	if created.Token.ExpiresAt == nil || !strings.HasPrefix(created.Secret, registry.TokenPrefix) {
		t.Fatalf("token create -o json: %+v", created)
	}
	env := []string{"MLREGISTRY_ADDR=" + f.srv.url, "MLREGISTRY_TOKEN=" + created.Secret}
	if r := cliEnv(t, env, "models"); r.code != 0 {
		t.Fatalf("fresh token refused: %d %s", r.code, r.stderr)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := cliEnv(t, env, "models")
		if r.code == exitAuth {
			if !strings.Contains(r.stderr, "expired") {
				t.Errorf("expired token refused without saying so: %s", r.stderr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still accepted 20s after it expired: %d %s", r.code, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := f.ok(t, "token", "list"); !regexp.MustCompile(`brief\s+read\s+\*\s+expired`).MatchString(out) {
		t.Errorf("expired token does not list as expired:\n%s", out)
	}

	// Misuse.
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"token", "create", "--name", "x", "--scope", "read", "--expires-at", "2001-01-01T00:00:00Z"}, exitUsage, "expires_at"},
		{[]string{"token", "create", "--name", "x", "--scope", "read", "--expires-in", "soon"}, exitUsage, "--expires-in"},
		{[]string{"token", "create", "--name", "x", "--scope", "read", "--db", f.db, "--addr", f.srv.url}, exitUsage, "one or the other"},
		{[]string{"token", "revoke"}, exitUsage, "NAME or --id"},
		{[]string{"token", "revoke", "--id", "999"}, exitNotFound, "token 999 not found"},
	} {
		if r := f.run(t, c.args...); r.code != c.code || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("mlregistry %s: exit %d (want %d), stderr %q (want %q)", strings.Join(c.args, " "), r.code, c.code, r.stderr, c.msg)
		}
	}

	// Every change is in the audit log, by who made it.
	evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--limit", "0", "-o", "json"))
	var got []string
	for _, e := range evs {
		if e.SubjectType == "token" && e.Subject != "admin" && e.Subject != "reader" {
			got = append(got, e.Action+":"+e.Subject+":"+e.Actor)
		}
	}
	want := []string{"token.create:ci:admin", "token.revoke:ci:admin", "token.create:ci:cli", "token.revoke:ci:cli", "token.create:brief:admin"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("token events:\n got  %v\n want %v", got, want)
	}
}

var metricsRE = regexp.MustCompile(`metrics_url=(http://127\.0\.0\.1:\d+)/metrics`)

// TestMetricsListenerWithoutToken: --metrics-listen serves the same
// Prometheus registry without a token, and nothing else; the API's
// /metrics still needs one; a public address needs --metrics-listen-public.
func TestMetricsListenerWithoutToken(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	tok := createToken(t, db, "reader", "read")
	srv := startServer(t, db, "--metrics-listen", "127.0.0.1:0")
	m := metricsRE.FindStringSubmatch(srv.logText())
	if m == nil {
		t.Fatalf("no metrics_url in the log:\n%s", srv.logText())
	}
	if st, _ := do(t, "GET", srv.url+"/api/v1/models", tok, nil); st != 200 {
		t.Fatalf("list models: %d", st)
	}
	res, err := http.Get(m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(body, []byte("# TYPE go_goroutines")) || !regexp.MustCompile(`mlregistry_http_requests_total\{[^}]*route="/api/v1/models"`).Match(body) {
		t.Errorf("scrape without a token: %d\n%.2000s", res.StatusCode, body)
	}
	for _, path := range []string{"/api/v1/models", "/healthz", "/serve/x/"} {
		if res, err := http.Get(m[1] + path); err != nil || res.StatusCode != http.StatusNotFound {
			t.Errorf("metrics listener serves %s: %v %v", path, res.StatusCode, err)
		} else {
			res.Body.Close()
		}
	}
	if st, _ := do(t, "GET", srv.url+"/metrics", "", nil); st != http.StatusUnauthorized {
		t.Errorf("API /metrics without a token: %d, want 401", st)
	}
	if st, _ := do(t, "GET", srv.url+"/metrics", tok, nil); st != http.StatusOK {
		t.Errorf("API /metrics with a read token: %d, want 200", st)
	}

	// A refused serve exits at once; one that starts is killed after 10s.
	cmd := exec.Command(binary(t), "serve", "--listen", "127.0.0.1:0", "--db", db, "--metrics-listen", "0.0.0.0:0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "--metrics-listen-public") {
			t.Errorf("serve --metrics-listen 0.0.0.0:0: %v, stderr %s; want a refusal naming --metrics-listen-public", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("a public metrics listener started without --metrics-listen-public:\n%s", stderr.String())
	}
}

// TestEventsFollow: events --follow prints new events as they are written
// (one JSON object per line) and exits 0 on an interrupt.
func TestEventsFollow(t *testing.T) {
	f := newFixture(t)
	cmd := exec.Command(binary(t), "events", "--follow", "--interval", "100ms", "--model", "fraud", "-o", "json")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, f.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan registry.Event, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e registry.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	next := func() registry.Event {
		t.Helper()
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("events --follow ended early: %s", stderr.String())
			}
			return e
		case <-time.After(15 * time.Second):
			t.Fatalf("no event within 15s: %s", stderr.String())
		}
		return registry.Event{}
	}
	if e := next(); e.Action != registry.ActionModelCreate || e.Subject != "fraud" {
		t.Errorf("first event: %+v", e)
	}
	if st, out := do(t, "PATCH", f.srv.url+"/api/v1/models/fraud", f.admin, map[string]any{"owner": "risk-team"}); st != 200 {
		t.Fatalf("patch: %d %v", st, out)
	}
	if e := next(); e.Action != registry.ActionModelUpdate || e.Subject != "fraud" {
		t.Errorf("followed event: %+v", e)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("events --follow after an interrupt: %v (want exit 0)\n%s", err, stderr.String())
	}
}

func TestCompletionAndHelp(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_mlregistry", "zsh": "#compdef mlregistry", "fish": "complete -c mlregistry"} {
		r := cliEnv(t, nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: exit %d, no %q", shell, r.code, want)
		}
	}
	f := newFixture(t)
	// Dynamic completion asks the registry for names.
	if out := f.ok(t, "__complete", "models", "show", "ch"); !strings.HasPrefix(out, "churn\n") {
		t.Errorf("completing a model name: %q", out)
	}
	if out := f.ok(t, "__complete", "endpoints", "show", ""); !strings.HasPrefix(out, "churn\n") {
		t.Errorf("completing an endpoint name: %q", out)
	}
	if out := f.ok(t, "__complete", "token", "create", "--scope", ""); !strings.HasPrefix(out, "read\nwrite\nadmin\n") {
		t.Errorf("completing a scope: %q", out)
	}
	if r := cliEnv(t, nil, "models", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--addr") {
		t.Errorf("models --help: %d\n%s", r.code, r.stdout)
	}
}

// TestEveryCommandHasHelpWithExamples walks the command tree.
func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			switch sub.Name() {
			case "help", "completion", "version":
				continue
			}
			if sub.Short == "" || sub.Example == "" {
				t.Errorf("%s: needs a short description and examples", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(root)
}

// TestTableColourKeepsColumnsAligned: with colour on, every cell carries
// escapes of one length, so columns still line up on screen.
func TestTableColourKeepsColumnsAligned(t *testing.T) {
	var b bytes.Buffer
	tb := newTable(&b, "ID", "STATE", "NAME")
	tb.color = true
	tb.row(plain("1"), plain("active"), plain("ci"))
	tb.row(plain("22"), cell{text: "revoked", color: colorRed}, plain("deploy"))
	_ = tb.flush()
	// The header row was written before color was set: compare data rows.
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	lines := strings.Split(strings.TrimRight(ansi.ReplaceAllString(b.String(), ""), "\n"), "\n")
	if strings.Index(lines[1], "ci") != strings.Index(lines[2], "deploy") || strings.Index(lines[1], "active") != strings.Index(lines[2], "revoked") {
		t.Errorf("coloured rows are not aligned:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(b.String(), colorRed+"revoked") {
		t.Errorf("no colour in %q", b.String())
	}
}
