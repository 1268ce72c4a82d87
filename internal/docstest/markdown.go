// Package docstest runs the documentation: every shell example in README.md
// and in the guides' templates (templates/guides/*.md.tmpl, from which
// docs/guides is generated) runs against a real registry, every complete HCL
// example is validated by Terraform, and marked outputs are compared with
// what the commands print. A wrong example therefore fails the tests.
//
// This file reads Markdown into fenced blocks and the docs-test directives
// attached to them; the tests hold the runner. The package imports nothing of
// the project outside its tests.
//
// A directive is an HTML comment on the line(s) right before a fence, so it
// stays invisible in rendered Markdown:
//
//	<!-- docs-test: skip — why -->          the block is not run (a reason is required)
//	<!-- docs-test: fragment — why -->      HCL that is not a whole configuration: checked by terraform fmt only
//	<!-- docs-test: output -->              a text block: the previous shell block printed it (compared loosely)
//	<!-- docs-test: omit "cmd" — why -->    the shell lines containing "cmd" are not run
//	<!-- docs-test: fails "cmd" — why -->   the shell lines containing "cmd" must exit non-zero
//	<!-- docs-test: flags "cmd" — why -->   the lines containing "cmd" (a server that runs until
//	                                        stopped) run with --help instead: their flags are checked
//	<!-- docs-test: file "name" -->         the block is what the prose says to save as name: the
//	                                        script writes it there (relative to its directory then)
//
// and, standing alone, a hidden shell block the reader is told about in prose
// (e.g. "with the quickstart applied"):
//
//	<!-- docs-test: setup
//	cd examples/quickstart && terraform apply
//	-->
package docstest

import (
	"fmt"
	"regexp"
	"strings"
)

var httpHeader = regexp.MustCompile(`^[A-Z][A-Za-z0-9-]*: `)

// Block is one fenced code block, or a hidden setup block.
type Block struct {
	// Line is the 1-based line of the opening fence (or of the setup comment).
	Line int
	// Lang is the fence's info word ("shell", "hcl", "text", ...); "" when the
	// fence has none. Setup blocks are "shell".
	Lang string
	// Text is the block's content, without the fences, with the fence's
	// indentation removed, ending with a newline.
	Text string
	// Hidden marks a setup block: not shown to readers.
	Hidden bool
	// Directives are the docs-test comments right before the fence.
	Directives []Directive
}

// Directive is one docs-test comment.
type Directive struct {
	Line   int
	Verb   string
	Args   []string
	Reason string
}

// Has reports whether the block carries a directive with this verb.
func (b Block) Has(verb string) bool {
	for _, d := range b.Directives {
		if d.Verb == verb {
			return true
		}
	}
	return false
}

const directivePrefix = "<!-- docs-test:"

// Parse splits Markdown into its fenced blocks and hidden setup blocks, in
// document order. A directive that is not directly followed by a fence (or
// another directive), an unknown verb, a missing reason or an unclosed fence
// is an error: a directive that silently attaches to nothing would leave a
// block untested without anyone noticing.
func Parse(md string) ([]Block, error) {
	lines := strings.Split(md, "\n")
	var blocks []Block
	var pending []Directive
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, directivePrefix):
			body := strings.TrimSpace(strings.TrimPrefix(trimmed, directivePrefix))
			start := i
			if !strings.HasSuffix(body, "-->") {
				// Only setup spans lines: its body is the script.
				if strings.TrimSpace(body) != "setup" {
					return nil, fmt.Errorf("line %d: docs-test directive must end with --> on the same line (only setup spans lines)", i+1)
				}
				var script []string
				for i++; ; i++ {
					if i >= len(lines) {
						return nil, fmt.Errorf("line %d: docs-test setup is not closed with -->", start+1)
					}
					if strings.TrimSpace(lines[i]) == "-->" {
						break
					}
					script = append(script, lines[i])
				}
				if len(pending) > 0 {
					return nil, fmt.Errorf("line %d: docs-test directive before a setup block, not a fence", pending[0].Line)
				}
				blocks = append(blocks, Block{Line: start + 1, Lang: "shell", Hidden: true, Text: strings.Join(script, "\n") + "\n"})
				continue
			}
			d, err := parseDirective(strings.TrimSpace(strings.TrimSuffix(body, "-->")))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			d.Line = i + 1
			pending = append(pending, d)
		case strings.HasPrefix(trimmed, "```"):
			indent := len(line) - len(strings.TrimLeft(line, " "))
			info := strings.Fields(strings.TrimLeft(trimmed, "`"))
			b := Block{Line: i + 1, Directives: pending}
			pending = nil
			if len(info) > 0 {
				b.Lang = info[0]
			}
			var content []string
			for i++; ; i++ {
				if i >= len(lines) {
					return nil, fmt.Errorf("line %d: fence is not closed", b.Line)
				}
				if strings.TrimSpace(lines[i]) == "```" {
					break
				}
				l := lines[i]
				for n := 0; n < indent && strings.HasPrefix(l, " "); n++ {
					l = l[1:]
				}
				content = append(content, l)
			}
			b.Text = strings.Join(content, "\n") + "\n"
			blocks = append(blocks, b)
		default:
			if len(pending) > 0 {
				return nil, fmt.Errorf("line %d: docs-test directive is not directly followed by a fence", pending[0].Line)
			}
		}
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("line %d: docs-test directive at the end of the file", pending[0].Line)
	}
	return blocks, nil
}

// verbs lists each directive with whether it takes quoted arguments and
// whether it needs a reason.
var verbs = map[string]struct{ args, reason bool }{
	"skip":     {false, true},
	"fragment": {false, true},
	"output":   {false, false},
	"omit":     {true, true},
	"fails":    {true, true},
	"flags":    {true, true},
	"file":     {true, false},
}

func parseDirective(s string) (Directive, error) {
	verb, rest, _ := strings.Cut(s, " ")
	spec, ok := verbs[verb]
	if !ok {
		return Directive{}, fmt.Errorf("unknown docs-test directive %q (want skip, fragment, output, omit, fails, flags, file or setup)", verb)
	}
	d := Directive{Verb: verb}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, `"`) {
		end := strings.Index(rest[1:], `"`)
		if end < 0 {
			return Directive{}, fmt.Errorf("docs-test %s: unclosed quote", verb)
		}
		d.Args = append(d.Args, rest[1:end+1])
		rest = strings.TrimSpace(rest[end+2:])
	}
	for _, dash := range []string{"—", "--", "-"} {
		rest = strings.TrimSpace(strings.TrimPrefix(rest, dash))
	}
	d.Reason = rest
	switch {
	case spec.args && len(d.Args) == 0:
		return Directive{}, fmt.Errorf(`docs-test %s needs at least one quoted argument: %s "text of the line"`, verb, verb)
	case !spec.args && len(d.Args) > 0:
		return Directive{}, fmt.Errorf("docs-test %s takes no arguments", verb)
	case spec.reason && d.Reason == "":
		return Directive{}, fmt.Errorf("docs-test %s needs a reason after the arguments: say why", verb)
	}
	return d, nil
}

// LogicalLines joins backslash-continued lines, so a directive's text matches
// a whole command however it is wrapped.
func LogicalLines(text string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.HasSuffix(l, `\`) {
			cur.WriteString(l + "\n")
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// WithoutComment cuts a shell line's trailing comment and background
// operator, so that arguments can be appended to its command.
func WithoutComment(line string) string {
	var quote rune
	prev := ' '
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return trimBackground(line[:i])
		}
		prev = r
	}
	return trimBackground(line)
}

func trimBackground(line string) string {
	line = strings.TrimRight(line, " \t")
	return strings.TrimRight(strings.TrimSuffix(line, "&"), " \t")
}

// MatchOutput compares an output shown in the docs with what a command
// printed, loosely: each non-empty line of want (a line "..." stands for
// anything) must equal a line of got, in order, word for word, where a word
// of want that contains a digit matches any word. Times, version numbers,
// counts, ports and checksums may therefore differ; column headers, labels,
// names and the shape of each line may not. The header lines after an HTTP
// status line match in any order within their header block, as HTTP allows.
func MatchOutput(want, got string) error {
	gotLines := strings.Split(got, "\n")
	j := 0
	headers, headersEnd := -1, 0
	afterStatus := false
	for _, w := range strings.Split(want, "\n") {
		wf := strings.Fields(w)
		if len(wf) == 0 || (len(wf) == 1 && wf[0] == "...") {
			afterStatus = false
			continue
		}
		if afterStatus && httpHeader.MatchString(w) {
			if headers < 0 {
				headers, headersEnd = j, j
			}
			found := false
			for k := headers; k < len(gotLines) && strings.TrimSpace(gotLines[k]) != ""; k++ {
				if wordsMatch(wf, strings.Fields(gotLines[k])) {
					found, headersEnd = true, max(headersEnd, k+1)
					break
				}
			}
			if !found {
				return fmt.Errorf("no header line of the output reads like %q", strings.TrimSpace(w))
			}
			continue
		}
		if headers >= 0 {
			j, headers = headersEnd, -1
		}
		afterStatus = strings.HasPrefix(w, "HTTP/")
		found := false
		for ; j < len(gotLines); j++ {
			if wordsMatch(wf, strings.Fields(gotLines[j])) {
				found = true
				j++
				break
			}
		}
		if !found {
			return fmt.Errorf("no line of the output (after the previous match) reads like %q", strings.TrimSpace(w))
		}
	}
	return nil
}

func wordsMatch(want, got []string) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if want[i] != got[i] && !strings.ContainsAny(want[i], "0123456789") {
			return false
		}
	}
	return true
}
