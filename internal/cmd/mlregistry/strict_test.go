package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestClientFlagsAreStrict: a flag value the registry would take as "no
// match" (a misspelt metric or stage) or a flag that means nothing next to
// another is a usage error (exit 2) that names the flag and lists what it
// takes, never an empty answer with exit 0.
func TestClientFlagsAreStrict(t *testing.T) {
	f := newFixture(t)
	// A stage that has a policy but is not assigned is a valid filter.
	if st, out := do(t, "PATCH", f.srv.url+"/api/v1/models/churn", f.admin, map[string]any{"stage_policies": map[string]any{
		"production": map[string]any{"min_metrics": map[string]float64{"auc": 0.8}},
		"canary":     map[string]any{"require_stage": "staging"},
	}}); st != 200 {
		t.Fatalf("patch policies: %d %v", st, out)
	}
	if st, out := do(t, "PATCH", f.srv.url+"/api/v1/models/churn/versions/1", f.admin, map[string]any{"tags": map[string]string{"team": "ds", "run": "nightly"}}); st != 200 {
		t.Fatalf("tag v1: %d %v", st, out)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown metric", []string{"versions", "churn", "--order-by", "acu"}, []string{`--order-by "acu"`, "version", "auc"}},
		{"unknown metric ascending", []string{"versions", "churn", "--order-by", "acu asc"}, []string{`--order-by`, `"acu"`, "auc"}},
		{"unknown direction", []string{"versions", "churn", "--order-by", "auc up"}, []string{"--order-by", "asc", "desc"}},
		{"unknown metric with a filter", []string{"versions", "churn", "--stage", "staging", "--order-by", "acu"}, []string{`--order-by "acu"`, "auc"}},
		{"unknown stage", []string{"versions", "churn", "--stage", "prodution"}, []string{`--stage "prodution"`, "canary", "production", "staging"}},
		{"unknown stage history", []string{"stages", "churn", "--history", "prodution"}, []string{`--history "prodution"`, "production", "staging"}},
		{"stages on a read token", []string{"token", "create", "--name", "r", "--scope", "read", "--stages", "staging"}, []string{"--stages", "write"}},
		{"stages on a read token, database", []string{"token", "create", "--db", f.db, "--name", "r3", "--scope", "read", "--stages", "staging"}, []string{"--stages", "write"}},
		{"endpoints on a write token", []string{"token", "create", "--name", "w", "--scope", "write", "--endpoints", "churn"}, []string{"--endpoints", "serve"}},
		{"unknown tag key", []string{"versions", "churn", "--tag", "tem"}, []string{`--tag "tem"`, "run", "team"}},
		{"unknown tag key with a value", []string{"versions", "churn", "--tag", "tem=ds"}, []string{`--tag "tem=ds"`, "team"}},
		{"interval without follow", []string{"events", "--interval", "1s"}, []string{"--interval", "--follow"}},
		{"since not a time", []string{"events", "--since", "yesterday"}, []string{`--since "yesterday"`, "24h", "7d", "RFC 3339"}},
		{"since in the future", []string{"events", "--since", "-2h"}, []string{`--since "-2h"`}},
		{"unknown rollout operation", []string{"endpoints", "rollout", "paus", "churn"}, []string{`"paus"`, "valid choices: pause, resume, abort"}},
		{"rollout without an endpoint", []string{"endpoints", "rollout", "pause"}, []string{"endpoints rollout", "an operation (pause, resume or abort) and an endpoint NAME"}},
		{"rollout with an unknown flag", []string{"endpoints", "rollout", "abort", "churn", "--reson", "x"}, []string{"--reson"}},
	}
	for _, c := range cases {
		env := f.env
		if len(c.args) > 2 && c.args[2] == "--db" {
			env = nil
		}
		r := cliEnv(t, env, c.args...)
		if r.code != exitUsage {
			t.Errorf("%s: mlregistry %s: exit %d, want %d\nstdout: %s\nstderr: %s", c.name, strings.Join(c.args, " "), r.code, exitUsage, r.stdout, r.stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, r.stderr)
			}
		}
		if r.stdout != "" {
			t.Errorf("%s: printed to stdout: %q", c.name, r.stdout)
		}
	}

	// A model or endpoint that does not exist is not found (exit 3), not
	// an empty log.
	for _, args := range [][]string{{"events", "--model", "chrun"}, {"events", "--endpoint", "chrun"}} {
		if r := f.run(t, args...); r.code != exitNotFound || !strings.Contains(r.stderr, `"chrun"`) || r.stdout != "" {
			t.Errorf("mlregistry %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, exitNotFound, r.stdout, r.stderr)
		}
	}

	// What is valid still works: a stage with a policy and nothing
	// assigned is an empty list, not an error.
	if vs := decodeJSON[[]registry.ModelVersion](t, f.ok(t, "versions", "churn", "--stage", "canary", "-o", "json")); len(vs) != 0 {
		t.Errorf("versions --stage canary: %+v, want none", vs)
	}
	if vs := decodeJSON[[]registry.ModelVersion](t, f.ok(t, "versions", "churn", "--order-by", "version desc", "-o", "json")); len(vs) != 3 || vs[0].Version != 3 {
		t.Errorf("versions --order-by 'version desc': %+v", vs)
	}
	if vs := decodeJSON[[]registry.ModelVersion](t, f.ok(t, "versions", "churn", "--order-by", "metrics.auc", "-o", "json")); len(vs) != 3 || vs[0].Version != 2 {
		t.Errorf("versions --order-by metrics.auc: %+v", vs)
	}
	if vs := decodeJSON[[]registry.ModelVersion](t, f.ok(t, "versions", "churn", "--tag", "team=ml", "-o", "json")); len(vs) != 0 {
		t.Errorf("versions --tag team=ml: %+v, want none (the key exists, no version has the value)", vs)
	}
	f.ok(t, "token", "create", "--name", "ci", "--scope", "write", "--stages", "staging")
	f.ok(t, "token", "create", "--name", "app", "--scope", "serve", "--endpoints", "churn")
	// The API refuses the same combination, so no client can make one.
	if st, out := do(t, "POST", f.srv.url+"/api/v1/tokens", f.admin, map[string]any{"name": "r2", "scope": "read", "stages": []string{"staging"}}); st != 400 {
		t.Errorf("POST /tokens read with stages: %d %v, want 400", st, out)
	}
}

// TestEventsSinceTakesDurations: --since takes what the UI's audit log
// takes (RFC 3339, a date, a duration back from now) and days; with
// --since, an explicit --limit keeps the last N of those events.
func TestEventsSinceTakesDurations(t *testing.T) {
	f := newFixture(t)
	all := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--limit", "0", "-o", "json"))
	for _, since := range []string{"24h", "90m", "7d", "1d12h", all[0].Time.Add(-time.Second).UTC().Format(time.RFC3339), time.Now().UTC().Add(-48 * time.Hour).Format("2006-01-02")} {
		evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--since", since, "-o", "json"))
		if len(evs) != len(all) {
			t.Errorf("events --since %s: %d events, want all %d", since, len(evs), len(all))
		}
	}
	future := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	if evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--since", future, "-o", "json")); len(evs) != 0 {
		t.Errorf("events --since %s: %d events, want none", future, len(evs))
	}
	evs := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--since", "1h", "--limit", "2", "-o", "json"))
	if len(evs) != 2 || evs[1].ID != all[len(all)-1].ID {
		t.Errorf("events --since 1h --limit 2: %v, want the last two of %v", ids(evs), ids(all))
	}
}

// TestServerFlagsAreStrict: serve and gateway refuse a flag that would do
// nothing or disable a protection by accident, before opening anything.
func TestServerFlagsAreStrict(t *testing.T) {
	db := "sqlite://" + t.TempDir() + "/r.db"
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"serve", "--metrics-listen-public"}, []string{"--metrics-listen-public", "--metrics-listen"}},
		{[]string{"gateway", "--metrics-listen-public"}, []string{"--metrics-listen-public", "--metrics-listen"}},
		{[]string{"serve", "--read-timeout", "-1s"}, []string{`--read-timeout "-1s"`, "positive"}},
		{[]string{"serve", "--read-timeout", "0"}, []string{"--read-timeout", "positive"}},
		{[]string{"gateway", "--read-header-timeout", "0s"}, []string{"--read-header-timeout", "positive"}},
	} {
		args := append(append([]string{}, c.args...), "--listen", "127.0.0.1:0", "--db", db)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, binary(t), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		r := cliResult{stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("mlregistry %s started and ran until killed; want a usage error\n%s", strings.Join(args, " "), r.stderr)
			continue
		}
		if err != nil && r.code == 0 {
			t.Fatal(err)
		}
		if r.code != exitUsage {
			t.Errorf("mlregistry %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, exitUsage, r.stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("mlregistry %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
			}
		}
	}
}
