package docstest

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocSnippetsCompile checks the application-side snippets the docs
// cannot run (they talk to an application's own code): every Go block
// parses as the statements of a function body (or as a whole file when it
// starts with package), and every Python block compiles with python3
// -m py_compile. A snippet with a syntax error fails here, not in a
// reader's editor.
func TestDocSnippetsCompile(t *testing.T) {
	root := repoRoot(t)
	python, _ := exec.LookPath("python3")
	checked := map[string]int{}
	for _, doc := range documents(t, root) {
		md, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Parse(string(md))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		for _, b := range blocks {
			if b.Has("skip") {
				continue
			}
			switch b.Lang {
			case "go":
				checked["go"]++
				src := b.Text
				if !strings.HasPrefix(strings.TrimSpace(src), "package ") {
					src = "package snippet\n\nfunc _() error {\n" + src + "\nreturn nil\n}\n"
				}
				if _, err := parser.ParseFile(token.NewFileSet(), "snippet.go", src, parser.AllErrors); err != nil {
					t.Errorf("%s:%d: the Go block does not parse (as a function body): %v\n%s", doc, b.Line, err, indent(b.Text))
				}
			case "python":
				checked["python"]++
				if python == "" {
					continue
				}
				f := filepath.Join(t.TempDir(), "snippet.py")
				if err := os.WriteFile(f, []byte(b.Text), 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(python, "-m", "py_compile", f).CombinedOutput(); err != nil {
					t.Errorf("%s:%d: the Python block does not compile: %v\n%s\n%s", doc, b.Line, err, indent(b.Text), indent(string(out)))
				}
			}
		}
	}
	if checked["go"] == 0 || checked["python"] == 0 {
		t.Fatalf("found %v snippets; the monitoring guide has Go and Python ones", checked)
	}
	if python == "" {
		t.Log("python3 not on PATH: Python snippets were not compiled")
	}
}
