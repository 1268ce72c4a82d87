package main

// Tests of the write commands (stages assign/unassign, versions create):
// the real binary against a real registry, with the governance,
// idempotency and audit of the API.

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func TestStagesAssignAndUnassign(t *testing.T) {
	f := newFixture(t)
	ci := createToken(t, f.db, "ci", "write", "--stages", "staging")
	ciEnv := []string{"MLREGISTRY_ADDR=" + f.srv.url, "MLREGISTRY_TOKEN=" + ci}

	// A break-glass rollback: production 2 -> 1, with the reason on record.
	out := f.ok(t, "stages", "assign", "churn", "production", "1", "--reason", "rollback: v2 mislabels churners")
	if !strings.Contains(out, "churn production: version 1 (was version 2)") {
		t.Errorf("stages assign: %q", out)
	}
	hist := decodeJSON[[]registry.StageHistoryEntry](t, f.ok(t, "stages", "churn", "--history", "production", "-o", "json"))
	if len(hist) == 0 || hist[0].Version != 1 || hist[0].PreviousVersion != 2 || hist[0].Reason != "rollback: v2 mislabels churners" || hist[0].AssignedBy != "admin" {
		t.Errorf("history after the rollback: %+v", hist)
	}

	// The stage policy and the token's stages are the API's.
	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want []string
	}{
		{"flagged version", f.env, []string{"stages", "assign", "churn", "production", "3", "--reason", "x"}, exitConflict, []string{"flagged", "policy_violation"}},
		{"policy floor", f.env, []string{"stages", "assign", "churn", "production", "4", "--reason", "x"}, exitConflict, []string{"auc", "policy_violation"}},
		{"flagged version, dry run", f.env, []string{"stages", "assign", "churn", "production", "3", "--reason", "x", "--dry-run"}, exitConflict, []string{"flagged"}},
		{"other stage's token", ciEnv, []string{"stages", "assign", "churn", "production", "2", "--reason", "x"}, exitAuth, []string{`token "ci" may assign stages [staging], not "production"`}},
		{"other stage's token, dry run", ciEnv, []string{"stages", "assign", "churn", "production", "2", "--reason", "x", "--dry-run"}, exitAuth, []string{"passes the stage policy", `not "production"`}},
		{"other stage's token, unassign", ciEnv, []string{"stages", "unassign", "churn", "production", "--reason", "x"}, exitAuth, []string{`not "production"`}},
		{"no reason", f.env, []string{"stages", "assign", "churn", "production", "2"}, exitUsage, []string{"--reason"}},
		{"blank reason", f.env, []string{"stages", "unassign", "churn", "staging", "--reason", " "}, exitUsage, []string{"--reason"}},
		{"bad version", f.env, []string{"stages", "assign", "churn", "production", "v2", "--reason", "x"}, exitUsage, []string{`version "v2"`}},
		{"missing version", f.env, []string{"stages", "assign", "churn", "production", "--reason", "x"}, exitUsage, []string{"MODEL, a STAGE and a VERSION"}},
		{"unknown version", f.env, []string{"stages", "assign", "churn", "production", "9", "--reason", "x"}, exitNotFound, []string{"not_found"}},
		{"reason too long", f.env, []string{"stages", "unassign", "churn", "staging", "--reason", strings.Repeat("x", 1025)}, exitUsage, []string{"reason", "1024"}},
		{"unassigned stage", f.env, []string{"stages", "unassign", "churn", "canary", "--reason", "x"}, exitNotFound, []string{"canary"}},
	} {
		if c.name == "policy floor" {
			// Version 4 with an auc below production's floor.
			f.ok(t, "versions", "create", "churn", "--source", "s3://models/churn/4/model.onnx", "--checksum", "sha256:"+strings.Repeat("4", 64), "--format", "onnx")
		}
		r := cliEnv(t, c.env, c.args...)
		if r.code != c.code {
			t.Errorf("%s: mlregistry %s: exit %d, want %d\nstdout: %s\nstderr: %s", c.name, strings.Join(c.args, " "), r.code, c.code, r.stdout, r.stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout+r.stderr, w) {
				t.Errorf("%s: output lacks %q:\nstdout: %s\nstderr: %s", c.name, w, r.stdout, r.stderr)
			}
		}
	}
	if got := decodeJSON[[]registry.StageAssignment](t, f.ok(t, "stages", "churn", "-o", "json")); len(got) != 2 || got[0].Version != 1 {
		t.Errorf("a refused or dry-run move changed the stages: %+v", got)
	}

	// A dry run that passes says so and writes nothing.
	out = f.ok(t, "stages", "assign", "churn", "production", "2", "--reason", "x", "--dry-run")
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "version 1 -> 2") || !strings.Contains(out, "passes the stage policy") {
		t.Errorf("dry run: %q", out)
	}
	dr := decodeJSON[registry.StageDryRun](t, f.ok(t, "stages", "assign", "churn", "production", "2", "--reason", "x", "--dry-run", "-o", "json"))
	if !dr.Allowed || !dr.Permitted || dr.Version != 2 || dr.PreviousVersion != 1 {
		t.Errorf("dry run -o json: %+v", dr)
	}

	// The CI token moves its own stage; unassign records who and why.
	if out := cliEnv(t, ciEnv, "stages", "assign", "churn", "staging", "2", "--reason", "nightly"); out.code != 0 {
		t.Fatalf("ci assigns staging: %d %s", out.code, out.stderr)
	}
	if out := f.ok(t, "stages", "unassign", "churn", "staging", "--reason", "retire staging", "--dry-run"); !strings.Contains(out, "dry run") || !strings.Contains(out, "version 2") {
		t.Errorf("unassign --dry-run: %q", out)
	}
	if r := cliEnv(t, ciEnv, "stages", "unassign", "churn", "staging", "--reason", "retire staging"); r.code != 0 || !strings.Contains(r.stdout, "unassigned churn staging (was version 2)") {
		t.Fatalf("ci unassigns staging: %d %q %s", r.code, r.stdout, r.stderr)
	}
	hist = decodeJSON[[]registry.StageHistoryEntry](t, f.ok(t, "stages", "churn", "--history", "staging", "-o", "json"))
	if len(hist) != 3 || hist[0].Action != registry.StageActionUnassign || hist[0].Reason != "retire staging" || hist[0].AssignedBy != "ci" || hist[1].Reason != "nightly" {
		t.Errorf("staging history: %+v", hist)
	}
	evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--model", "churn", "--limit", "3", "-o", "json"))
	var got []string
	for _, e := range evs {
		got = append(got, e.Action+" "+e.Subject+" by "+e.Actor)
	}
	if want := "stage.assign churn/staging by ci,stage.unassign churn/staging by ci"; !strings.HasSuffix(strings.Join(got, ","), want) {
		t.Errorf("events: %v, want to end with %s", got, want)
	}
}

// TestStagesAssignIfMatch: a move made by someone else between the
// command's read of the stage and its write is a 412, not overwritten.
func TestStagesAssignIfMatch(t *testing.T) {
	f := newFixture(t)
	target, err := url.Parse(f.srv.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/api/v1/models/churn/stages/production" && r.URL.Query().Get("dry_run") == "" {
			once.Do(func() {
				if st, out := do(t, "PUT", f.srv.url+"/api/v1/models/churn/stages/production", f.admin, map[string]any{"version": 1, "reason": "someone else"}); st != 200 {
					t.Errorf("concurrent move: %d %v", st, out)
				}
			})
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	env := []string{"MLREGISTRY_ADDR=" + front.URL, "MLREGISTRY_TOKEN=" + f.admin}
	r := cliEnv(t, env, "stages", "assign", "churn", "production", "2", "--reason", "again")
	if r.code != exitConflict || !strings.Contains(r.stderr, "precondition_failed") {
		t.Errorf("assign over a concurrent move: exit %d, want %d with precondition_failed\nstdout: %s\nstderr: %s", r.code, exitConflict, r.stdout, r.stderr)
	}
	if s := stageOf(t, f, "production"); s.Version != 1 || s.Reason != "someone else" {
		t.Errorf("production after the refused move: %+v, want the concurrent move kept", s)
	}
}

func stageOf(t *testing.T, f *fixture, stage string) registry.StageAssignment {
	t.Helper()
	for _, s := range decodeJSON[[]registry.StageAssignment](t, f.ok(t, "stages", "churn", "-o", "json")) {
		if s.Stage == stage {
			return s
		}
	}
	t.Fatalf("no stage %s", stage)
	return registry.StageAssignment{}
}

func TestVersionsCreate(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	metrics := filepath.Join(dir, "metrics.json")
	if err := os.WriteFile(metrics, []byte(`{"auc": 0.94, "f1": 0.71}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := "sha256:" + strings.Repeat("4", 64)
	args := []string{"versions", "create", "churn", "--source", "s3://models/churn/4/model.onnx", "--checksum", sum,
		"--metrics-file", metrics, "--param", "lr=0.1", "--param", "epochs=20", "--tag", "team=ds", "--lineage", "run_id=run-4",
		"--description", "nightly retrain", "--idempotency-key", "pipeline-1234-churn"}
	r := f.run(t, args...)
	if r.code != 0 || r.stdout != "4\n" || !strings.Contains(r.stderr, "registered churn version 4") {
		t.Fatalf("versions create: exit %d\nstdout %q\nstderr %s", r.code, r.stdout, r.stderr)
	}
	v := decodeJSON[registry.ModelVersion](t, f.ok(t, "versions", "churn", "4", "-o", "json"))
	if v.Format != "onnx" || v.Metrics["auc"] != 0.94 || v.Metrics["f1"] != 0.71 || v.Parameters["lr"] != "0.1" || v.Parameters["epochs"] != "20" ||
		v.Tags["team"] != "ds" || v.Lineage == nil || v.Lineage.RunID != "run-4" || v.Description != "nightly retrain" || v.CreatedBy != "admin" {
		t.Errorf("created version: %+v", v)
	}

	// A pipeline re-run with the same key gets the same version back.
	if r := f.run(t, args...); r.code != 0 || r.stdout != "4\n" {
		t.Errorf("re-run with the same idempotency key: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	// The same key with another body is refused.
	other := append(append([]string{}, args...), "--tag", "late=yes")
	if r := f.run(t, other...); r.code != exitConflict || !strings.Contains(r.stderr, "idempotency") {
		t.Errorf("same key, other body: exit %d, want %d\n%s", r.code, exitConflict, r.stderr)
	}
	// Without a key, the same artifact again is refused naming the version.
	if r := f.run(t, args[:len(args)-2]...); r.code != exitConflict || !strings.Contains(r.stderr, "version 4") {
		t.Errorf("same artifact again: exit %d, want %d\n%s", r.code, exitConflict, r.stderr)
	}
	// JSON output; the format comes from the source's extension.
	j := decodeJSON[registry.ModelVersion](t, f.ok(t, "versions", "create", "churn", "--source", "s3://models/churn/5/model.safetensors", "--checksum", "sha256:"+strings.Repeat("5", 64), "-o", "json"))
	if j.Version != 5 || j.Format != "safetensors" {
		t.Errorf("versions create -o json: %+v", j)
	}
	evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--model", "churn", "--limit", "2", "-o", "json"))
	if len(evs) != 2 || evs[0].Action != registry.ActionVersionCreate || evs[0].Subject != "churn/4" || evs[0].Actor != "admin" || evs[1].Subject != "churn/5" {
		t.Errorf("events: %+v", evs)
	}

	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := []string{"versions", "create", "churn", "--source", "s3://models/churn/6/model.onnx", "--checksum", "sha256:" + strings.Repeat("6", 64)}
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"metric not a number", []string{"--metrics-file", write("m1.json", `{"auc": "high"}`)}, exitUsage, []string{"--metrics-file", "m1.json", "auc", "number"}},
		{"metrics not an object", []string{"--metrics-file", write("m2.json", `[0.9]`)}, exitUsage, []string{"--metrics-file", "object"}},
		{"metrics not JSON", []string{"--metrics-file", write("m3.json", `auc=0.9`)}, exitUsage, []string{"--metrics-file", "m3.json", "JSON"}},
		{"metrics file missing", []string{"--metrics-file", filepath.Join(dir, "none.json")}, exitUsage, []string{"--metrics-file", "none.json"}},
		{"metrics unknown shape", []string{"--metrics-file", write("m4.json", `{"auc": {"value": 1}}`)}, exitUsage, []string{"auc", "number"}},
		{"param without =", []string{"--param", "lr"}, exitUsage, []string{"--param", `"lr"`, "key=value"}},
		{"tag without key", []string{"--tag", "=x"}, exitUsage, []string{"--tag"}},
		{"unknown lineage key", []string{"--lineage", "run=4"}, exitUsage, []string{"--lineage", "run_id", "git_commit", "dataset", "code_uri"}},
		{"unknown format", []string{"--format", "onxx"}, exitUsage, []string{"format", "onnx"}},
		{"format not told", []string{"--source", "s3://models/churn/6/model.bin"}, exitUsage, []string{"--format", "onnx", "custom"}},
		{"bad checksum", []string{"--checksum", "md5:abc"}, exitUsage, []string{"checksum"}},
		{"unknown model", []string{"--format", "onnx"}, -1, nil},
	} {
		a := append(append([]string{}, base...), c.args...)
		if c.code == -1 {
			a[2] = "chrun"
			c.code, c.want = exitNotFound, []string{`"chrun"`}
		}
		r := f.run(t, a...)
		if r.code != c.code {
			t.Errorf("%s: mlregistry %s: exit %d, want %d\nstdout: %s\nstderr: %s", c.name, strings.Join(a, " "), r.code, c.code, r.stdout, r.stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, r.stderr)
			}
		}
	}
	for _, missing := range [][]string{{"versions", "create", "churn", "--checksum", sum}, {"versions", "create", "churn", "--source", "s3://x/y.onnx"}} {
		if r := f.run(t, missing...); r.code != exitUsage || !strings.Contains(r.stderr, "--source and --checksum") {
			t.Errorf("mlregistry %s: exit %d %s", strings.Join(missing, " "), r.code, r.stderr)
		}
	}
	if vs := decodeJSON[[]registry.ModelVersion](t, f.ok(t, "versions", "churn", "-o", "json")); len(vs) != 5 {
		t.Errorf("refused creates wrote versions: %d versions", len(vs))
	}
}
