package plansummary

// TestCIScripts runs the shell scripts of examples/ci/scripts (what the
// GitHub Actions and GitLab CI examples call) the way a CI job does:
// install-provider.sh builds the provider into a filesystem mirror, and
// terraform init installs it from there with every proxy pointing at a
// closed port, so nothing is downloaded; the plans run against a real
// registry. Only the code-host APIs (GitHub, GitLab comments) are stood
// in for by a small HTTP server here.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

type scriptEnv struct {
	t       *testing.T
	scripts string
	vars    map[string]string
}

func (s *scriptEnv) run(dir, name string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.scripts, name), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TF_") || strings.HasPrefix(k, "MLREGISTRY") || strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "GITLAB") || strings.HasPrefix(k, "CI_") || strings.Contains(strings.ToLower(k), "proxy") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range s.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return o.String(), e.String(), ee.ExitCode()
		}
		s.t.Fatalf("%s: %v", name, err)
	}
	return o.String(), e.String(), 0
}

func (s *scriptEnv) with(extra map[string]string) *scriptEnv {
	vars := map[string]string{}
	for k, v := range s.vars {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	return &scriptEnv{t: s.t, scripts: s.scripts, vars: vars}
}

func ciConfig(staging, production int) string {
	return providerHCL + modelHCL("churn", prodPolicy, "auc = 0.9", "auc = 0.93") +
		stageHCL("churn", "staging", fmt.Sprintf("mlregistry_model_version.churn_v%d.version", staging), "") +
		stageHCL("churn", "production", fmt.Sprintf("mlregistry_model_version.churn_v%d.version", production), "  depends_on = [mlregistry_stage_assignment.churn_staging]\n")
}

func TestCIScripts(t *testing.T) {
	needTerraform(t)
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.ShutdownTimeout = 15 * time.Second }))
	tfToken := r.Token(t, "terraform", registry.ScopeAdmin)
	readToken := r.Token(t, "ci-read", registry.ScopeRead)
	out := t.TempDir()
	s := &scriptEnv{t: t, scripts: filepath.Join(repoRoot(), "examples", "ci", "scripts"), vars: map[string]string{
		"HOME":               os.Getenv("HOME"),
		"CHECKPOINT_DISABLE": "1",
		"TF_IN_AUTOMATION":   "1",
		// Offline: anything Terraform would download goes to a closed port.
		"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
		"MLREGISTRY_ADDR": r.URL,
	}}

	// The mirror: built from this checkout, installed without network.
	stdout, stderr, code := s.run(repoRoot(), "install-provider.sh", repoRoot(), out)
	if code != 0 {
		t.Fatalf("install-provider.sh: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "export TF_CLI_CONFIG_FILE="+filepath.Join(out, "terraformrc")) {
		t.Fatalf("install-provider.sh printed:\n%s", stdout)
	}
	s.vars["TF_CLI_CONFIG_FILE"] = filepath.Join(out, "terraformrc")
	s.vars["PATH"] = filepath.Join(out, "bin") + ":" + os.Getenv("PATH")

	work := t.TempDir()
	write := func(hcl string) {
		if err := os.WriteFile(filepath.Join(work, "main.tf"), []byte(hcl), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	terraform := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("terraform", append(args, "-no-color")...)
		cmd.Dir = work
		cmd.Env = os.Environ()
		for k, v := range s.vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "MLREGISTRY_TOKEN="+tfToken)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("terraform %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	write(ciConfig(1, 1))
	if init := terraform("init", "-input=false"); !strings.Contains(init, "Installing mlregistry/mlregistry v0.0.1") {
		t.Fatalf("terraform init did not install from the mirror:\n%s", init)
	}
	terraform("apply", "-auto-approve", "-input=false")
	ci := s.with(map[string]string{"MLREGISTRY_TOKEN": readToken})

	t.Run("drift check, none", func(t *testing.T) {
		stdout, stderr, code := ci.run(work, "drift-check.sh")
		if code != 0 || !strings.Contains(stdout, "No drift") {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
	})

	summary := filepath.Join(t.TempDir(), "summary.md")
	t.Run("pull request summary", func(t *testing.T) {
		write(ciConfig(2, 1))
		stdout, stderr, code := ci.with(map[string]string{"SUMMARY_FILE": summary}).run(work, "plan-summary.sh")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		b, err := os.ReadFile(summary)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"<!-- mlregistry-plan-summary -->\n## mlregistry plan summary", "**staging: v1 -> v2**", "auc 0.9 -> 0.93 (+0.03)", "stage policy (registry dry run): ✅ passes"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("summary lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("post or update one comment", func(t *testing.T) {
		for _, platform := range []string{"github", "gitlab"} {
			t.Run(platform, func(t *testing.T) {
				host := newCommentHost(t, platform)
				vars := map[string]string{"COMMENT_PLATFORM": platform}
				if platform == "github" {
					vars["GITHUB_TOKEN"], vars["GITHUB_REPOSITORY"], vars["PR_NUMBER"], vars["GITHUB_API_URL"] = "gh-secret", "acme/models", "7", host.URL
				} else {
					vars["GITLAB_TOKEN"], vars["CI_API_V4_URL"], vars["CI_PROJECT_ID"], vars["CI_MERGE_REQUEST_IID"] = "gl-secret", host.URL+"/api/v4", "42", "7"
				}
				poster := ci.with(vars)
				for i, want := range []string{"created comment", "updated comment"} {
					if i == 1 {
						if err := os.WriteFile(summary, []byte("<!-- mlregistry-plan-summary -->\nsecond run\n"), 0o600); err != nil {
							t.Fatal(err)
						}
					}
					stdout, stderr, code := poster.run(work, "post-comment.sh", summary)
					if code != 0 || !strings.Contains(stdout, want) {
						t.Fatalf("run %d: exit %d\n%s\n%s", i+1, code, stdout, stderr)
					}
				}
				bodies := host.bodies()
				if len(bodies) != 2 || bodies[0] != "an unrelated comment" || bodies[1] != "<!-- mlregistry-plan-summary -->\nsecond run" {
					t.Fatalf("comments after two runs: %q", bodies)
				}
			})
		}
	})

	t.Run("plan fails on the stage policy", func(t *testing.T) {
		write(ciConfig(1, 2)) // v2 never held staging
		stdout, stderr, code := ci.with(map[string]string{"SUMMARY_FILE": summary}).run(work, "plan-summary.sh")
		b, _ := os.ReadFile(summary)
		if code == 0 || !strings.Contains(string(b), "terraform plan failed") || !strings.Contains(string(b), "require_stage") {
			t.Fatalf("exit %d\nsummary:\n%s\nstdout:\n%s\nstderr:\n%s", code, b, stdout, stderr)
		}
	})

	t.Run("drift check, plan fails and nothing drifted", func(t *testing.T) {
		// A refresh-only plan exits 2 with -detailed-exitcode even when it
		// finds nothing, so only the summary can say whether anything drifted.
		write(ciConfig(1, 2)) // v2 never held staging
		stdout, stderr, code := ci.run(work, "drift-check.sh")
		if code != 1 || !strings.Contains(stderr, "require_stage") || !strings.Contains(stderr, "nothing drifted") || strings.Contains(stderr, "drifted from the configuration") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		noLeftovers(t, work)
	})

	t.Run("FAIL_ON=error fails a plan that cannot apply", func(t *testing.T) {
		// v1 holds staging and production; its artifact changes without
		// create_before_destroy.
		retrained := strings.Replace(ciConfig(1, 1), fmt.Sprintf("sha256:%064x", 501), fmt.Sprintf("sha256:%064x", 0xbeef), 1)
		if retrained == ciConfig(1, 1) {
			t.Fatal("modelHCL no longer gives churn v1 the checksum this test changes")
		}
		write(retrained)
		stdout, stderr, code := ci.with(map[string]string{"SUMMARY_FILE": summary, "FAIL_ON": "error"}).run(work, "plan-summary.sh")
		b, _ := os.ReadFile(summary)
		if code != 5 || !strings.Contains(string(b), "### ❌ Errors: this plan cannot apply as it is (2)") || !strings.Contains(stderr, "destroyed_while_held") {
			t.Fatalf("exit %d\nsummary:\n%s\nstdout:\n%s\nstderr:\n%s", code, b, stdout, stderr)
		}
		noLeftovers(t, work)
	})

	t.Run("drift check finds a stage moved by hand", func(t *testing.T) {
		write(ciConfig(1, 1))
		bot, err := client.New(client.Options{Address: r.URL, Token: r.Token(t, "ci-bot", registry.ScopeWrite), MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bot.AssignStage(context.Background(), "churn", "staging", registry.StageAssign{Version: 2, Reason: "hotfix"}, 0); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := ci.run(work, "drift-check.sh")
		if code != 1 || !strings.Contains(stdout, "staging moved from v1 to v2 by ci-bot") || !strings.Contains(stderr, "drifted from the configuration") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		noLeftovers(t, work)
	})

	t.Run("flagged-version runbook", func(t *testing.T) {
		testFlaggedRunbook(t, s)
	})
}

// noLeftovers: the scripts leave no plan, log or summary in the working
// directory (they hold the registry's data, and *.tfplan may be committed
// by accident).
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "main.tf", "models", ".terraform", ".terraform.lock.hcl", "terraform.tfstate", "terraform.tfstate.backup":
		default:
			t.Errorf("left behind in the working directory: %s", e.Name())
		}
	}
}

// The runbook of templates/guides/promotion-and-rollback.md.tmpl, run as
// written against the quickstart: the test runs these lines and checks
// that the guide still says them.
const (
	runbookStaging  = "terraform apply -var staging_version=2\n"
	runbookApply1   = "terraform apply -var staging_version=2 -var canary_weight=10"
	runbookFlag     = `mlregistry flag churn 2 --reason "canary answers 5xx"`
	runbookDrift    = "examples/ci/scripts/drift-check.sh examples/quickstart -- -var staging_version=2 -var canary_weight=10"
	runbookHCL      = "  flagged     = true\n  flag_reason = \"canary answers 5xx\"\n"
	runbookPlan     = "terraform plan -out=fix.tfplan -var staging_version=2 -var canary_weight=0"
	runbookApply2   = "terraform apply fix.tfplan"
	runbookReplan   = "terraform plan -detailed-exitcode -var staging_version=2 -var canary_weight=0"
	runbookTemplate = "templates/guides/promotion-and-rollback.md.tmpl"
)

func testFlaggedRunbook(t *testing.T, s *scriptEnv) {
	guide, err := os.ReadFile(filepath.Join(repoRoot(), runbookTemplate))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{runbookStaging, runbookApply1, runbookFlag, runbookDrift, runbookHCL, runbookPlan, runbookApply2, runbookReplan} {
		if !strings.Contains(string(guide), line) {
			t.Errorf("%s no longer says %q, which this test runs", runbookTemplate, line)
		}
	}

	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.ShutdownTimeout = 15 * time.Second }))
	tfToken := r.Token(t, "terraform", registry.ScopeAdmin)
	work := t.TempDir()
	quickstart := filepath.Join(repoRoot(), "examples", "quickstart")
	if err := os.CopyFS(filepath.Join(work, "models"), os.DirFS(filepath.Join(quickstart, "models"))); err != nil {
		t.Fatal(err)
	}
	mainTF, err := os.ReadFile(filepath.Join(quickstart, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "main.tf"), mainTF, 0o600); err != nil {
		t.Fatal(err)
	}
	env := s.with(map[string]string{"MLREGISTRY_ADDR": r.URL})
	// sh runs one line of the runbook (split on spaces, one quoted
	// argument at most) with the given token.
	sh := func(token, line string, wantCode int) string {
		t.Helper()
		args := strings.Fields(line)
		if i := strings.Index(line, ` "`); i >= 0 {
			args = append(strings.Fields(line[:i]), strings.Trim(line[i+1:], `"`))
		}
		if args[0] == "terraform" {
			opts := []string{"-no-color"}
			if args[1] != "show" {
				opts = append(opts, "-input=false")
			}
			if args[1] == "apply" && !strings.HasSuffix(line, ".tfplan") {
				opts = append(opts, "-auto-approve")
			}
			args = append(append(args[:2:2], opts...), args[2:]...)
		}
		bin := args[0]
		for _, dir := range filepath.SplitList(env.vars["PATH"]) {
			if _, err := os.Stat(filepath.Join(dir, bin)); err == nil {
				bin = filepath.Join(dir, bin) // the PATH the runbook's shell would have
				break
			}
		}
		cmd := exec.Command(bin, args[1:]...)
		cmd.Dir = work
		cmd.Env = os.Environ()
		for k, v := range env.vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "MLREGISTRY_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if code != wantCode {
			t.Fatalf("%s: exit %d, want %d\n%s", line, code, wantCode, out)
		}
		return string(out)
	}

	// The quickstart as the guide leaves it before the emergency: v1 in
	// production, v2 in staging with a 10% canary.
	sh(tfToken, "terraform init", 0)
	sh(tfToken, "terraform apply", 0)
	sh(tfToken, strings.TrimSpace(runbookStaging), 0)
	sh(tfToken, runbookApply1, 0)

	// On call flags v2 with an unrestricted write token; the flag drains
	// the canary in the same transaction.
	r.Clock.Advance(time.Hour) // the registry's clock stands still otherwise
	sh(r.Token(t, "oncall", registry.ScopeWrite), runbookFlag, 0)
	r.Clock.Advance(time.Hour)
	ep, err := newRunbookClient(t, r.URL, r.AdminToken).GetEndpoint(context.Background(), "churn")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Status != registry.EndpointStatusDrained {
		t.Fatalf("endpoint after the flag: %+v", ep)
	}

	// The plan fails (the configuration still routes 10% to v2), and the
	// drift check still reports the drain and the flag, with who and why.
	ci := env.with(map[string]string{"MLREGISTRY_TOKEN": r.Token(t, "ci-read", registry.ScopeRead)})
	driftArgs := strings.Fields(strings.TrimPrefix(runbookDrift, "examples/ci/scripts/drift-check.sh examples/quickstart"))
	stdout, stderr, code := ci.run(work, "drift-check.sh", append([]string{work}, driftArgs...)...)
	for _, want := range []string{
		"version 2 of \"churn\": flagged (canary answers 5xx)",
		"v2 flagged (canary answers 5xx) by oncall at",
		"canary 10% -> 0%",
		"traffic drained from canary (flagged version)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("drift report lacks %q", want)
		}
	}
	for _, want := range []string{"Error: Stage policy violation", "stage policy rule flagged failed", "terraform plan failed (exit 1); reading the drift with a refresh-only plan", "the registry drifted from the configuration"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("drift check's stderr lacks %q", want)
		}
	}
	if code != 1 || t.Failed() {
		t.Fatalf("drift-check.sh: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// The report the guide shows is the one the drift check printed.
	block := string(guide)[strings.Index(string(guide), runbookDrift):]
	block = block[strings.Index(block, "```markdown\n")+len("```markdown\n"):]
	block = block[:strings.Index(block, "```")]
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if !strings.Contains(minuteRE.ReplaceAllString(stdout, "TIME"), minuteRE.ReplaceAllString(line, "TIME")) {
			t.Errorf("%s shows %q, which the drift check did not print:\n%s", runbookTemplate, line, stdout)
		}
	}
	noLeftovers(t, work)

	// Taking the canary out without keeping the flag would unflag v2:
	// the summary says so.
	sh(tfToken, "terraform plan -out=unflag.tfplan -var staging_version=2 -var canary_weight=0", 0)
	unflag := sh(tfToken, "terraform show -json unflag.tfplan", 0)
	if err := os.Remove(filepath.Join(work, "unflag.tfplan")); err != nil {
		t.Fatal(err)
	}
	md := summariseWith(t, []byte(unflag), Options{Address: r.URL, Token: r.Token(t, "reviewer", registry.ScopeRead)})
	if !strings.Contains(md, "This plan UNFLAGS v2 of \"churn\" (flagged: canary answers 5xx)") {
		t.Errorf("the summary of a plan that unflags v2 does not say so:\n%s", md)
	}

	// The reviewed change the guide gives: keep the flag in the
	// configuration and take the canary out; plan, apply, re-plan empty.
	hcl := strings.Replace(string(mainTF), "  description = \"retrained on a year more of data\"\n", "  description = \"retrained on a year more of data\"\n"+runbookHCL, 1)
	if hcl == string(mainTF) {
		t.Fatal("the quickstart's r2 changed: update where the runbook's HCL goes")
	}
	if err := os.WriteFile(filepath.Join(work, "main.tf"), []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	sh(tfToken, runbookPlan, 0)
	sh(tfToken, runbookApply2, 0)
	sh(tfToken, runbookReplan, 0)
	v, err := newRunbookClient(t, r.URL, r.AdminToken).GetVersion(context.Background(), "churn", 2)
	if err != nil || !v.Flagged || v.FlagReason != "canary answers 5xx" {
		t.Fatalf("v2 after the fix: %+v, %v", v, err)
	}
}

func newRunbookClient(t *testing.T, addr, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Address: addr, Token: token, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// commentHost is the part of the GitHub and GitLab REST APIs that
// post-comment.sh uses, holding one unrelated comment to start with.
type commentHost struct {
	*httptest.Server
	mu       sync.Mutex
	comments []map[string]any
}

func newCommentHost(t *testing.T, platform string) *commentHost {
	h := &commentHost{comments: []map[string]any{{"id": 1, "body": "an unrelated comment"}}}
	mux := http.NewServeMux()
	list, one, auth := "/repos/acme/models/issues/7/comments", "PATCH /repos/acme/models/issues/comments/{id}", "Bearer gh-secret"
	header := "Authorization"
	if platform == "gitlab" {
		list, one, auth, header = "/api/v4/projects/42/merge_requests/7/notes", "PUT /api/v4/projects/42/merge_requests/7/notes/{id}", "gl-secret", "PRIVATE-TOKEN"
	}
	check := func(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
		if r.Header.Get(header) != auth {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return nil, false
		}
		if r.Method == http.MethodGet {
			return nil, true
		}
		var in map[string]any
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in["body"] == nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return nil, false
		}
		return in, true
	}
	mux.HandleFunc("GET "+list, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := check(w, r); !ok {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.URL.Query().Get("page") != "1" {
			fmt.Fprint(w, "[]")
			return
		}
		json.NewEncoder(w).Encode(h.comments)
	})
	mux.HandleFunc("POST "+list, func(w http.ResponseWriter, r *http.Request) {
		in, ok := check(w, r)
		if !ok {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		c := map[string]any{"id": len(h.comments) + 100, "body": in["body"]}
		h.comments = append(h.comments, c)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc(one, func(w http.ResponseWriter, r *http.Request) {
		in, ok := check(w, r)
		if !ok {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.comments {
			if strconv.Itoa(c["id"].(int)) == r.PathValue("id") {
				c["body"] = in["body"]
				json.NewEncoder(w).Encode(c)
				return
			}
		}
		http.NotFound(w, r)
	})
	h.Server = httptest.NewServer(mux)
	t.Cleanup(h.Close)
	return h
}

func (h *commentHost) bodies() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.comments {
		out = append(out, fmt.Sprint(c["body"]))
	}
	return out
}

// TestCIWorkflowsCallShippedScripts: the workflow files only wire the
// scripts; every script they call exists and is executable.
func TestCIWorkflowsCallShippedScripts(t *testing.T) {
	dir := filepath.Join(repoRoot(), "examples", "ci")
	for _, wf := range []string{"plan-summary.yml", "drift-check.yml", "gitlab-ci.yml"} {
		b, err := os.ReadFile(filepath.Join(dir, wf))
		if err != nil {
			t.Fatal(err)
		}
		calls := scriptRE.FindAllStringSubmatch(string(b), -1)
		if len(calls) == 0 {
			t.Errorf("%s calls no script of ci/scripts", wf)
		}
		for _, m := range calls {
			fi, err := os.Stat(filepath.Join(dir, "scripts", m[1]))
			if err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("%s calls ci/scripts/%s, which is not an executable in examples/ci/scripts (%v)", wf, m[1], err)
			}
		}
	}
}

var scriptRE = regexp.MustCompile(`ci/scripts/([a-z-]+\.sh)`)

var minuteRE = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d UTC`)
