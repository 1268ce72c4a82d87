package docstest

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	md := strings.Join([]string{
		"# Title",
		"<!-- docs-test: setup",
		"cd examples/quickstart",
		"-->",
		`<!-- docs-test: omit "mlregistry serve" "make build" — long-running -->`,
		"<!-- docs-test: fails \"plan\" -- refused by policy -->",
		"```shell",
		"make build",
		"mlregistry serve",
		"```",
		"",
		"<!-- docs-test: output -->",
		"  ```text",
		"  NAME  VERSION",
		"  ```",
	}, "\n")
	blocks, err := Parse(md)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 {
		t.Fatalf("got %d blocks: %+v", len(blocks), blocks)
	}
	if !blocks[0].Hidden || blocks[0].Text != "cd examples/quickstart\n" || blocks[0].Line != 2 {
		t.Errorf("setup block: %+v", blocks[0])
	}
	sh := blocks[1]
	if sh.Lang != "shell" || sh.Line != 7 || len(sh.Directives) != 2 {
		t.Fatalf("shell block: %+v", sh)
	}
	if d := sh.Directives[0]; d.Verb != "omit" || len(d.Args) != 2 || d.Args[1] != "make build" || d.Reason != "long-running" {
		t.Errorf("omit directive: %+v", d)
	}
	if d := sh.Directives[1]; d.Verb != "fails" || d.Args[0] != "plan" || d.Reason != "refused by policy" {
		t.Errorf("fails directive: %+v", d)
	}
	if b := blocks[2]; b.Lang != "text" || !b.Has("output") || b.Text != "NAME  VERSION\n" {
		t.Errorf("indented text block: %+v", b)
	}
}

func TestParseErrors(t *testing.T) {
	for name, md := range map[string]string{
		"skip without reason":     "<!-- docs-test: skip -->\n```sh\nx\n```",
		"omit without argument":   "<!-- docs-test: omit — why -->\n```sh\nx\n```",
		"unknown verb":            "<!-- docs-test: ignore — why -->\n```sh\nx\n```",
		"directive before prose":  "<!-- docs-test: skip — why -->\ntext\n```sh\nx\n```",
		"directive at the end":    "text\n<!-- docs-test: skip — why -->",
		"unclosed fence":          "```sh\nx\n",
		"unclosed setup":          "<!-- docs-test: setup\nx\n",
		"output with an argument": "<!-- docs-test: output \"x\" -->\n```text\nx\n```",
	} {
		if _, err := Parse(md); err == nil {
			t.Errorf("%s: Parse accepted\n%s", name, md)
		}
	}
}

func TestLogicalLines(t *testing.T) {
	got := LogicalLines("a \\\n  b\nc\n")
	if len(got) != 2 || got[0] != "a \\\n  b" || got[1] != "c" {
		t.Fatalf("%q", got)
	}
}

func TestMatchOutput(t *testing.T) {
	got := `created token
HTTP/1.1 200 OK
X-Route: stable
Content-Type: application/json
X-Model-Version: 3

{"auc":0.91}
Routes:
  NAME    VERSION  CONFIGURED  OBSERVED  UPSTREAM
  stable  3        50%         100%      http://127.0.0.1:41831
`
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"numbers are free, words are not", "NAME VERSION CONFIGURED OBSERVED UPSTREAM\nstable 1 90% 10% http://127.0.0.1:8501", true},
		{"a renamed column fails", "NAME VERSION WEIGHT UPSTREAM", false},
		{"a different word fails", "canary 3 50% 100% http://x:1", false},
		{"an extra word fails", "stable 3 50% 100% http://x:1 extra", false},
		{"order matters", "Routes:\n...\ncreated token", false},
		{"headers in any order", "HTTP/1.1 200 OK\nX-Model-Version: 1\nContent-Type: application/json\nX-Route: stable\n\n{\"auc\":0.5}", true},
		{"a missing header fails", "HTTP/1.1 200 OK\nX-Request-Id: 1", false},
	} {
		err := MatchOutput(tc.want, got)
		if (err == nil) != tc.ok {
			t.Errorf("%s: MatchOutput = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestWithoutComment(t *testing.T) {
	for in, want := range map[string]string{
		"mlregistry serve   # 127.0.0.1:8080":           "mlregistry serve",
		"mlregistry serve &":                            "mlregistry serve",
		`mlregistry serve --db "a#b" # c`:               `mlregistry serve --db "a#b"`,
		"mlregistry serve --listen x \\\n  --tls-key k": "mlregistry serve --listen x \\\n  --tls-key k",
		"curl http://x/#anchor":                         "curl http://x/#anchor",
	} {
		if got := WithoutComment(in); got != want {
			t.Errorf("WithoutComment(%q) = %q, want %q", in, got, want)
		}
	}
}
