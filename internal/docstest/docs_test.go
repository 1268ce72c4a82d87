//go:build unix

package docstest

// TestDocs runs each document's shell blocks, in document order, as one bash
// script (bash -euo pipefail, so the variables and the working directory of
// one block carry to the next, as in a reader's terminal) in a fresh copy of
// the repository, against a registry of its own on a free port whose SQLite
// file is ./mlregistry.db of that copy (so `mlregistry token create`, which
// opens the database, makes tokens that registry accepts).
//
// What the script finds around it:
//
//   - bin/ holds mlregistry and terraform-provider-mlregistry (built once
//     with go build, sharing go test's build cache), and is on PATH;
//   - MLREGISTRY_ADDR and MLREGISTRY_TOKEN (an admin token named ci-bot),
//     TOKEN (the same token) and SERVE_TOKEN (serve scope) are exported;
//   - TF_CLI_CONFIG_FILE has dev_overrides for bin/, TF_CLI_ARGS_apply and
//     TF_CLI_ARGS_destroy add -auto-approve, TF_INPUT=0, no colours;
//   - curl is a function that adds --fail-with-body: an example whose request
//     the registry refuses fails unless the line is marked `fails` (and a
//     `fails` line must be refused, not missing: exit 126 or 127 fails);
//   - after a line that starts something in the background with
//     `-listen ADDR ... &`, the script waits until ADDR accepts connections,
//     as a reader waits for the server to say it listens.
//
// The docs name fixed addresses and placeholders; the test substitutes them
// in every block (see substitutions): 127.0.0.1:8080 is the test's registry,
// 127.0.0.1:8501-8503 are free ports (also given to the quickstart through
// TF_VAR_model_servers), mlr_... is the admin token, ~/.terraformrc the
// dev-override configuration, https://registry.example.com the registry,
// /var/lib/mlregistry/ and /backups/ temporary directories.
//
// DOCSTEST_KEEP=dir keeps each document's script and its output there.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// documents are the files whose examples run, relative to the repository
// root: the README and every template docs/ is generated from by hand-written
// text (resource pages come from the schema and examples/, tested by the
// provider's example tests).
func documents(t *testing.T, root string) []string {
	t.Helper()
	docs := []string{"README.md", filepath.Join("templates", "index.md.tmpl")}
	guides, err := filepath.Glob(filepath.Join(root, "templates", "guides", "*.md.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(guides) == 0 {
		t.Fatal("no guide templates found")
	}
	for _, g := range guides {
		rel, err := filepath.Rel(root, g)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, rel)
	}
	return docs
}

var (
	shellLangs   = map[string]bool{"sh": true, "shell": true, "bash": true}
	hclLangs     = map[string]bool{"hcl": true, "terraform": true, "tf": true}
	outputLangs  = map[string]bool{"text": true, "console": true}
	passiveLangs = map[string]bool{"json": true, "yaml": true, "yml": true, "diff": true, "markdown": true, "md": true, "go": true, "python": true}
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestDocs(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("runs Terraform: set TF_ACC=1")
	}
	for _, tool := range []string{"terraform", "bash", "curl", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	root := repoRoot(t)
	bin := buildBinaries(t, root)
	goEnv := goEnvironment(t)
	for _, doc := range documents(t, root) {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			t.Parallel()
			md, err := os.ReadFile(filepath.Join(root, doc))
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := Parse(string(md))
			if err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			if err := classify(blocks); err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			runDocument(t, root, bin, goEnv, doc, blocks)
		})
	}
}

// classify fails on a block the test would not know what to do with, and
// on a directive that does not fit its block.
func classify(blocks []Block) error {
	for i, b := range blocks {
		lang := b.Lang
		switch {
		case lang == "":
			return fmt.Errorf("line %d: a fence without a language; name it (shell, hcl, text, json, ...) so the test knows whether to run it", b.Line)
		case shellLangs[lang], hclLangs[lang], outputLangs[lang], passiveLangs[lang]:
		default:
			return fmt.Errorf("line %d: fence language %q is not one the docs test knows", b.Line, lang)
		}
		for _, d := range b.Directives {
			ok := true
			switch d.Verb {
			case "fragment":
				ok = hclLangs[lang]
			case "output":
				ok = (outputLangs[lang] || lang == "markdown") && i > 0 && shellLangs[blocks[i-1].Lang] && !blocks[i-1].Hidden && !blocks[i-1].Has("skip")
			case "file":
				ok = len(d.Args) == 1 && !shellLangs[lang] && !b.Has("skip")
			case "omit", "fails", "flags":
				ok = shellLangs[lang]
				for _, arg := range d.Args {
					if !anyLineContains(b.Text, arg) {
						return fmt.Errorf("line %d: docs-test %s %q matches no line of the block", d.Line, d.Verb, arg)
					}
				}
			}
			if !ok {
				return fmt.Errorf("line %d: docs-test %s does not apply to this %s block", d.Line, d.Verb, lang)
			}
		}
	}
	return nil
}

func anyLineContains(text, s string) bool {
	for _, l := range LogicalLines(text) {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// buildBinaries builds both binaries once, without -trimpath, so the
// packages compiled for the tests are reused and only the link runs.
func buildBinaries(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []struct{ out, pkg string }{
		{"mlregistry", "./internal/cmd/mlregistry"},
		{"terraform-provider-mlregistry", "."},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir
}

// goEnvironment keeps the Go caches of the test run although HOME changes.
func goEnvironment(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", v, err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	return env
}

// copyRepo copies the files git knows of (tracked, or new and not ignored),
// so a reader's checkout is what the examples run in.
func copyRepo(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "-co", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// linkFile links (or, across file systems, copies) a built binary into a
// document's copy: each document gets its own bin/, not its own 40 MB.
func linkFile(t *testing.T, src, dst string) {
	t.Helper()
	if os.Link(src, dst) == nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

type substitution struct{ from, to string }

func substitute(text string, subs []substitution) string {
	for _, s := range subs {
		text = strings.ReplaceAll(text, s.from, s.to)
	}
	return text
}

var listenInBackground = regexp.MustCompile(`-listen\s+(\S+:\d+)\b.*&\s*(#.*)?$`)

// script turns the document's shell blocks into one bash script. Each block
// starts by printing a marker, so a failure and an output are traced back to
// their block.
func script(blocks []Block, subs []substitution) string {
	var s strings.Builder
	s.WriteString(`set -euo pipefail
curl() { command curl --fail-with-body "$@"; }
docs_test_wait() {
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; do
    if (( SECONDS >= deadline )); then echo "docs-test: nothing listens on $1 after 60s" >&2; return 1; fi
    sleep 0.1
  done
}
`)
	for i, b := range blocks {
		for _, d := range b.Directives {
			if d.Verb == "file" {
				fmt.Fprintf(&s, "echo '@@docs-test block %d@@'\nmkdir -p \"$(dirname %s)\"\ncat > %s <<'DOCS_TEST_EOF'\n%sDOCS_TEST_EOF\n",
					i, strconv.Quote(d.Args[0]), strconv.Quote(d.Args[0]), substitute(b.Text, subs))
			}
		}
		if !shellLangs[b.Lang] || b.Has("skip") {
			continue
		}
		fmt.Fprintf(&s, "echo '@@docs-test block %d@@'\n", i)
		var omit, fails, flags []string
		for _, d := range b.Directives {
			switch d.Verb {
			case "omit":
				omit = append(omit, d.Args...)
			case "fails":
				fails = append(fails, d.Args...)
			case "flags":
				flags = append(flags, d.Args...)
			}
		}
	lines:
		for _, l := range LogicalLines(substitute(b.Text, subs)) {
			for _, o := range omit {
				if strings.Contains(l, substitute(o, subs)) {
					continue lines
				}
			}
			for _, f := range flags {
				if strings.Contains(l, substitute(f, subs)) {
					fmt.Fprintf(&s, "%s --help > /dev/null\n", strings.TrimRight(WithoutComment(l), " \t"))
					continue lines
				}
			}
			for _, f := range fails {
				if strings.Contains(l, substitute(f, subs)) {
					// A missing command (126, 127) is not the refusal the docs show.
					fmt.Fprintf(&s, "if\n%s\nthen echo %s >&2; exit 1\nelse docs_test_code=$?; if (( docs_test_code >= 126 )); then echo \"docs-test: exit $docs_test_code is not a refusal\" >&2; exit 1; fi; fi\n",
						l, strconv.Quote("docs-test: this line should fail but exited 0: "+l))
					continue lines
				}
			}
			s.WriteString(l + "\n")
			if m := listenInBackground.FindStringSubmatch(l); m != nil {
				fmt.Fprintf(&s, "docs_test_wait %s\n", m[1])
			}
		}
	}
	s.WriteString("echo '@@docs-test block end@@'\n")
	return s.String()
}

var marker = regexp.MustCompile(`(?m)^@@docs-test block (\d+|end)@@$`)

// outputs splits the script's output by block.
func outputs(out string) (map[int]string, int, bool) {
	per := map[int]string{}
	last, done := -1, false
	locs := marker.FindAllStringSubmatchIndex(out, -1)
	for k, loc := range locs {
		end := len(out)
		if k+1 < len(locs) {
			end = locs[k+1][0]
		}
		name := out[loc[2]:loc[3]]
		if name == "end" {
			done = true
			continue
		}
		n, _ := strconv.Atoi(name)
		per[n] = out[loc[1]:end]
		last = n
	}
	return per, last, done
}

func runDocument(t *testing.T, root, bin string, goEnv []string, doc string, blocks []Block) {
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	copyRepo(t, root, repo)
	if err := os.MkdirAll(filepath.Join(repo, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"home", "var/lib/mlregistry", "backups"} {
		if err := os.MkdirAll(filepath.Join(work, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"mlregistry", "terraform-provider-mlregistry"} {
		linkFile(t, filepath.Join(bin, b), filepath.Join(repo, "bin", b))
	}
	cliConfig := filepath.Join(work, "terraformrc")
	if err := os.WriteFile(cliConfig, []byte(fmt.Sprintf(`provider_installation {
  dev_overrides {
    "mlregistry/mlregistry" = %q
  }
  direct {}
}
`, filepath.Join(repo, "bin"))), 0o644); err != nil {
		t.Fatal(err)
	}

	reg := apptest.Start(t,
		apptest.WithDB("sqlite://"+filepath.Join(repo, "mlregistry.db")),
		// The docs' clock is the reader's: tokens expire and soaks pass in real time.
		apptest.WithConfig(func(c *app.Config) { c.Now = time.Now }))
	hostport := strings.TrimPrefix(reg.URL, "http://")
	// Named like the CI token the guides' sample outputs show as the actor.
	adminToken := reg.Token(t, "ci-bot", registry.ScopeAdmin)
	serveToken := reg.Token(t, "docs-serve", registry.ScopeServe)
	servers := []string{freePort(t), freePort(t), freePort(t)}

	subs := []substitution{
		{"https://registry.example.com", reg.URL},
		{"127.0.0.1:8080", hostport},
		{"127.0.0.1:8501", servers[0]},
		{"127.0.0.1:8502", servers[1]},
		{"127.0.0.1:8503", servers[2]},
		{"mlr_...", adminToken},
		{"~/.terraformrc", cliConfig},
		{"/var/lib/mlregistry/", filepath.Join(work, "var/lib/mlregistry") + "/"},
		{"/backups/", filepath.Join(work, "backups") + "/"},
	}

	env := []string{
		"PATH=" + filepath.Join(repo, "bin") + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + filepath.Join(work, "home"),
		"TMPDIR=" + work,
		"LANG=C.UTF-8",
		"MLREGISTRY_ADDR=" + reg.URL,
		"MLREGISTRY_TOKEN=" + adminToken,
		"TOKEN=" + adminToken,
		"SERVE_TOKEN=" + serveToken,
		"TF_CLI_CONFIG_FILE=" + cliConfig,
		"TF_CLI_ARGS_apply=-auto-approve -no-color",
		"TF_CLI_ARGS_destroy=-auto-approve -no-color",
		"TF_CLI_ARGS_plan=-no-color",
		"TF_CLI_ARGS_show=-no-color",
		"TF_CLI_ARGS_validate=-no-color",
		"TF_INPUT=0",
		"TF_IN_AUTOMATION=1",
		"CHECKPOINT_DISABLE=1",
		fmt.Sprintf(`TF_VAR_model_servers={1="http://%s",2="http://%s",3="http://%s"}`, servers[0], servers[1], servers[2]),
	}
	for _, v := range []string{"GOFLAGS", "GOTOOLCHAIN", "GOPROXY", "CGO_ENABLED"} {
		if val, ok := os.LookupEnv(v); ok {
			env = append(env, v+"="+val)
		}
	}
	env = append(env, goEnv...)

	checkHCL(t, doc, blocks, cliConfig, env)

	scriptPath := filepath.Join(work, "docs.sh")
	if err := os.WriteFile(scriptPath, []byte(script(blocks, subs)), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(work, "docs.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", scriptPath)
	cmd.Dir = repo
	cmd.Env = env
	// A file, not a pipe: Wait must not wait for the model servers the
	// script leaves running in the background.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Whatever the blocks started in the background (model servers) is in
	// the script's process group; end it before the registry closes.
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	runErr := cmd.Wait()
	out, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("DOCSTEST_KEEP"); keep != "" {
		// For a reader debugging a failure: the script as run and its output.
		name := strings.ReplaceAll(filepath.Base(doc), ".", "_")
		_ = os.MkdirAll(keep, 0o755)
		_ = os.WriteFile(filepath.Join(keep, name+".sh"), []byte(script(blocks, subs)), 0o644)
		_ = os.WriteFile(filepath.Join(keep, name+".log"), out, 0o644)
	}
	per, last, done := outputs(string(out))

	if runErr != nil || !done {
		where := "before the first block"
		text := ""
		if last >= 0 {
			b := blocks[last]
			where = fmt.Sprintf("%s:%d (%s block)", doc, b.Line, b.Lang)
			if b.Hidden {
				where = fmt.Sprintf("%s:%d (docs-test setup)", doc, b.Line)
			}
			text = substitute(b.Text, subs)
		}
		t.Fatalf("%s failed: %v\nblock:\n%s\noutput of the block:\n%s", where, runErr, indent(text), indent(tail(per[last], 80)))
	}

	for i, b := range blocks {
		if !b.Has("output") {
			continue
		}
		got, ok := per[i-1]
		if !ok {
			t.Errorf("%s:%d: the shell block before this output did not run", doc, b.Line)
			continue
		}
		if err := MatchOutput(substitute(b.Text, subs), got); err != nil {
			t.Errorf("%s:%d: the output shown does not match what the command printed: %v\nshown:\n%s\nprinted:\n%s", doc, b.Line, err, indent(b.Text), indent(tail(got, 60)))
		}
	}
}

// checkHCL validates every HCL block that is a whole configuration with the
// dev-override provider, and checks fragments' syntax and formatting.
func checkHCL(t *testing.T, doc string, blocks []Block, cliConfig string, env []string) {
	t.Helper()
	for _, b := range blocks {
		if !hclLangs[b.Lang] || b.Has("skip") {
			continue
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(b.Text), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"validate", "-no-color"}
		// A block saved into a configuration is validated by the commands
		// that use it; on its own it is a fragment.
		if b.Has("fragment") || b.Has("file") {
			args = []string{"fmt", "-check", "-diff", "-no-color", "main.tf"}
		}
		cmd := exec.Command("terraform", args...)
		cmd.Dir = dir
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s:%d: terraform %s fails on this %s block (mark a block that is not a whole configuration <!-- docs-test: fragment — why -->):\n%s\n%s", doc, b.Line, args[0], b.Lang, indent(b.Text), indent(string(out)))
		}
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
