package plansummary

// The golden tests run the terraform binary from PATH against the
// provider built from main.go (go build into a temp directory, installed
// through a dev_overrides CLI configuration) and a real registry
// (apptest: app.Main on 127.0.0.1:0 over SQLite), so the plan JSON they
// summarise is what Terraform really writes. TF_ACC=1 gates them.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
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

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// repoRoot is the module root.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var binaries struct {
	once sync.Once
	dir  string
	err  error
}

// buildBinaries builds the provider and the mlregistry CLI once per test
// binary run.
func buildBinaries(t *testing.T) string {
	t.Helper()
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "plansummary-bin-")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		for out, pkg := range map[string]string{"terraform-provider-mlregistry": ".", "mlregistry": "./internal/cmd/mlregistry"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Dir = repoRoot()
			if b, err := cmd.CombinedOutput(); err != nil {
				binaries.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

func needTerraform(t *testing.T) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform not on PATH")
	}
}

// env is one registry plus one Terraform working directory.
type env struct {
	t   *testing.T
	r   *apptest.Registry
	dir string
	// tfToken is what Terraform uses (admin scope, named "terraform"),
	// readToken what the summary uses.
	tfToken, readToken string
	vars               map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	needTerraform(t)
	bin := buildBinaries(t)
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.ShutdownTimeout = 15 * time.Second }))
	dir := t.TempDir()
	cli := filepath.Join(dir, "dev.tfrc")
	if err := os.WriteFile(cli, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"mlregistry/mlregistry\" = %q\n  }\n  direct {}\n}\n", bin)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, r: r, dir: filepath.Join(dir, "work"),
		tfToken:   r.Token(t, "terraform", registry.ScopeAdmin),
		readToken: r.Token(t, "reviewer", registry.ScopeRead),
	}
	if err := os.Mkdir(e.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.vars = map[string]string{
		"TF_CLI_CONFIG_FILE": cli,
		"TF_IN_AUTOMATION":   "1",
		"CHECKPOINT_DISABLE": "1",
		"MLREGISTRY_ADDR":    r.URL,
		"MLREGISTRY_TOKEN":   e.tfToken,
	}
	return e
}

// client is an API client with the given token (admin when empty).
func (e *env) client(token string) *client.Client {
	e.t.Helper()
	if token == "" {
		token = e.r.AdminToken
	}
	c, err := client.New(client.Options{Address: e.r.URL, Token: token, MaxRetries: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

const providerHCL = `
terraform {
  required_providers {
    mlregistry = { source = "mlregistry/mlregistry" }
  }
}
provider "mlregistry" {}
`

func (e *env) write(hcl string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, "main.tf"), []byte(providerHCL+hcl), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) terraform(args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "terraform", append(args, "-no-color")...)
	cmd.Dir = e.dir
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TF_") || strings.HasPrefix(k, "MLREGISTRY_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *env) mustTerraform(args ...string) string {
	e.t.Helper()
	out, err := e.terraform(args...)
	if err != nil {
		e.t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *env) apply(hcl string) {
	e.t.Helper()
	e.write(hcl)
	e.mustTerraform("apply", "-auto-approve", "-input=false")
}

// planJSON writes hcl, runs terraform plan -out and returns the JSON of
// terraform show -json for the saved plan.
func (e *env) planJSON(hcl string, planArgs ...string) []byte {
	e.t.Helper()
	e.write(hcl)
	e.mustTerraform(append([]string{"plan", "-input=false", "-out=review.tfplan"}, planArgs...)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "terraform", "show", "-json", "review.tfplan")
	cmd.Dir = e.dir
	cmd.Env = os.Environ()
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("terraform show -json: %v\n%s", err, stderr.String())
	}
	return out
}

// summarise runs the summary against the registry with the read token,
// on the registry's clock.
func (e *env) summarise(planJSON []byte, format string) string {
	e.t.Helper()
	return summariseWith(e.t, planJSON, Options{Format: format, Address: e.r.URL, Token: e.readToken, Now: e.r.Clock.Now})
}

func summariseWith(t *testing.T, planJSON []byte, opts Options) string {
	t.Helper()
	var out bytes.Buffer
	if _, err := Run(context.Background(), bytes.NewReader(planJSON), &out, opts); err != nil {
		t.Fatalf("summary: %v", err)
	}
	return out.String()
}

var (
	portRE    = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	tfVerRE   = regexp.MustCompile(`"terraform_version": "[^"]*"`)
	tempDirRE = regexp.MustCompile(`/tmp/[^\s"']+`)
	stampRE   = regexp.MustCompile(`"timestamp":"[^"]*"`)
)

// normalise replaces what changes from run to run: ports, the Terraform
// version, temporary paths.
func normalise(s string) string {
	s = portRE.ReplaceAllString(s, "127.0.0.1:PORT")
	s = tfVerRE.ReplaceAllString(s, `"terraform_version": "X.Y.Z"`)
	s = tempDirRE.ReplaceAllString(s, "/TMP")
	s = stampRE.ReplaceAllString(s, `"timestamp":"2026-01-02T03:04:05Z"`)
	return s
}

// seed keeps a real plan as a seed of FuzzSummary (with -update).
func seed(t *testing.T, name string, planJSON []byte) {
	t.Helper()
	if !*update {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzSummary")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(normalise(string(planJSON))) + ")\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// summaryHas reports each of wants that the summary md lacks.
func summaryHas(t *testing.T, md string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}

// golden compares got (normalised) with testdata/name, or rewrites it
// with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = normalise(got)
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}
