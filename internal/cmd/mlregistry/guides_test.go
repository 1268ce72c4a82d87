package main

// Tests that hold the guides' CLI examples to what the CLI prints and
// does: the output blocks are compared with a real run.

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// guideBlock returns the first fenced block of the given language that
// follows the line `after` in a guide template.
func guideBlock(t *testing.T, guide, after, lang string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "templates", "guides", guide))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, after)
	if i < 0 {
		t.Fatalf("%s has no %q", guide, after)
	}
	open := "```" + lang + "\n"
	j := strings.Index(text[i:], open)
	if j < 0 {
		t.Fatalf("%s has no ```%s block after %q", guide, lang, after)
	}
	body := text[i+j+len(open):]
	return body[:strings.Index(body, "```")]
}

// TestCanaryGuideEndpointsShow: the guide's `endpoints show` output after
// the guard rolled a failing canary back is what the CLI prints.
func TestCanaryGuideEndpointsShow(t *testing.T) {
	f := newFixture(t)
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"churn_probability":0.1}`)
	}))
	t.Cleanup(stable.Close)
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "model failed to load", http.StatusInternalServerError)
	}))
	t.Cleanup(canary.Close)
	// The quickstart's endpoint at 50/50, as in the guide.
	if st, out := do(t, "POST", f.srv.url+"/api/v1/endpoints", f.admin, map[string]any{"name": "canary-demo", "model": "churn", "routes": []map[string]any{
		{"name": "stable", "version": 1, "upstream_url": stable.URL, "weight": 50},
		{"name": "canary", "version": 2, "upstream_url": canary.URL, "weight": 50},
	}, "guard": map[string]any{"max_error_rate": 0.05, "min_requests": 20, "window": "1m"}}); st != 201 {
		t.Fatalf("create endpoint: %d %v", st, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := do(t, "POST", f.srv.url+"/serve/canary-demo/predict", f.admin, map[string]any{"features": map[string]float64{"tenure_months": 4}})
		if st == http.StatusOK || st == http.StatusBadGateway || st == http.StatusInternalServerError {
			if _, ep := do(t, "GET", f.srv.url+"/api/v1/endpoints/canary-demo", f.admin, nil); ep["status"] == "rolled_back" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the guard did not roll the canary back within 30s")
		}
	}
	out := f.ok(t, "endpoints", "show", "canary-demo")
	out = strings.NewReplacer(stable.URL, "http://127.0.0.1:8501", canary.URL, "http://127.0.0.1:8502").Replace(out)
	got := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		got[strings.TrimRight(l, " ")] = true
	}
	want := guideBlock(t, "canary-deployments.md.tmpl", "mlregistry endpoints show churn", "text")
	for _, l := range strings.Split(strings.TrimRight(want, "\n"), "\n") {
		l = strings.TrimRight(l, " ")
		if l == "..." {
			continue
		}
		if !got[l] {
			t.Errorf("the guide shows the line\n%q\nthat `mlregistry endpoints show` does not print; it prints:\n%s", l, out)
		}
	}
}

var providerBuild struct {
	sync.Once
	dir string
	err error
}

// providerDir builds the provider binary from main.go once and returns
// its directory, for a dev_overrides CLI configuration.
func providerDir(t *testing.T) string {
	t.Helper()
	providerBuild.Do(func() {
		dir, err := os.MkdirTemp("", "mlregistry-provider-")
		if err != nil {
			providerBuild.err = err
			return
		}
		providerBuild.dir = dir
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "terraform-provider-mlregistry"), ".")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			providerBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if providerBuild.err != nil {
		t.Fatal(providerBuild.err)
	}
	return providerBuild.dir
}

// TestPromotionGuidePipelineImport runs the guide's section on a version
// registered by a pipeline: its shell block (the real CLI), then its
// import block through terraform plan and apply.
func TestPromotionGuidePipelineImport(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("runs terraform: set TF_ACC=1")
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform not on PATH")
	}
	const guide, section = "promotion-and-rollback.md.tmpl", "## A version registered by a pipeline"
	db := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	admin := createToken(t, db, "admin", "admin")
	pipeline := createToken(t, db, "train-pipeline", "write")
	srv := startServer(t, db)

	work := t.TempDir()
	tfrc := filepath.Join(t.TempDir(), "dev.tfrc")
	writeFile(t, tfrc, fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"mlregistry/mlregistry\" = %q\n  }\n  direct {}\n}\n", providerDir(t)))
	env := []string{"PATH=" + filepath.Dir(binary(t)) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"TF_CLI_CONFIG_FILE=" + tfrc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "MLREGISTRY_ADDR=" + srv.url}
	run := func(token string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = work, append(append([]string{}, env...), "MLREGISTRY_TOKEN="+token)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	base := "terraform {\n  required_providers {\n    mlregistry = { source = \"mlregistry/mlregistry\" }\n  }\n}\n\nprovider \"mlregistry\" {}\n\n" +
		"resource \"mlregistry_model\" \"churn\" {\n  name = \"churn\"\n}\n"
	writeFile(t, filepath.Join(work, "main.tf"), base)
	run(admin, "terraform", "apply", "-auto-approve", "-no-color")
	// Seven versions before the pipeline's, so it is number 8 as in the guide.
	for i := 1; i <= 7; i++ {
		if st, out := do(t, "POST", srv.url+"/api/v1/models/churn/versions", admin, map[string]any{
			"source": fmt.Sprintf("s3://models/churn/%d/model.onnx", i), "checksum": "sha256:" + strings.Repeat(fmt.Sprint(i), 64), "format": "onnx",
		}); st != 201 {
			t.Fatalf("version %d: %d %v", i, st, out)
		}
	}

	// The pipeline's step, as the guide writes it.
	if err := os.Mkdir(filepath.Join(work, "build"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, "build", "model.onnx"), "onnx bytes of churn run 88")
	writeFile(t, filepath.Join(work, "metrics.json"), guideBlock(t, guide, section, "json"))
	script := guideBlock(t, guide, section, "shell")
	wantOut := guideBlock(t, guide, script, "text")
	for range 2 { // a re-run of the step prints the same version
		if got := run(pipeline, "sh", "-ec", script); got != wantOut {
			t.Errorf("the guide's commands print %q, the guide says %q", got, wantOut)
		}
	}
	v := decodeJSON[registry.ModelVersion](t, cliEnv(t, []string{"MLREGISTRY_ADDR=" + srv.url, "MLREGISTRY_TOKEN=" + admin}, "versions", "churn", "8", "-o", "json").stdout)
	if v.CreatedBy != "train-pipeline" || v.Metrics["f1"] != 0.71 || v.Parameters["lr"] != "0.05" {
		t.Errorf("registered version: %+v", v)
	}

	// The import, as the guide writes it: the plan imports and changes nothing.
	hcl := guideBlock(t, guide, section, "terraform")
	writeFile(t, filepath.Join(work, "main.tf"), base+"\n"+hcl)
	plan := run(admin, "terraform", "plan", "-no-color")
	for _, l := range strings.Split(strings.TrimRight(guideBlock(t, guide, "terraform plan\n```", "text"), "\n"), "\n") {
		if l != "..." && !strings.Contains(plan, l) {
			t.Errorf("terraform plan does not print the guide's line %q:\n%s", l, plan)
		}
	}
	run(admin, "terraform", "apply", "-auto-approve", "-no-color")
	if out := run(admin, "terraform", "plan", "-no-color", "-detailed-exitcode"); !strings.Contains(out, "No changes") {
		t.Errorf("plan after the import's apply:\n%s", out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
