package plansummary

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimalPlan is the smallest JSON Terraform writes for an empty plan.
const minimalPlan = `{"format_version":"1.2","terraform_version":"1.11.4","planned_values":{"root_module":{}},"resource_changes":[],"configuration":{"root_module":{}}}`

func TestParsePlan_rejectsWhatIsNotAPlan(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"empty", "  \n", "the input is empty"},
		{"text", "not json at all", "expected a JSON object"},
		{"human plan", "Terraform will perform the following actions:\n  # x will be created\nPlan: 1 to add", "human-readable plan"},
		{"array", `[1,2]`, "expected a JSON object"},
		{"syntax", "{\n  \"format_version\": \"1.2\",\n  \"resource_changes\": [,]\n}", "invalid JSON at line 3"},
		{"truncated", minimalPlan[:40], "the JSON ends early"},
		{"streamed", minimalPlan + "\n" + minimalPlan, "more than one JSON value"},
		{"foreign object", `{"name":"package.json","version":"1.0.0"}`, "no format_version member"},
		{"future format", `{"format_version":"2.0","resource_changes":[]}`, `format_version "2.0" is not supported`},
		{"state", `{"format_version":"1.0","terraform_version":"1.11.4","values":{"root_module":{}}}`, "this is state JSON"},
		{"no changes member", `{"format_version":"1.2"}`, "no resource_changes or planned_values"},
		{"wrong type", `{"format_version":"1.2","resource_changes":"everything"}`, `member "resource_changes" at line 1`},
		{"no address", `{"format_version":"1.2","resource_changes":[{"type":"mlregistry_model"}]}`, "resource change 0 has no address"},
		{"bad values", `{"format_version":"1.2","resource_changes":[{"address":"mlregistry_stage_assignment.p","mode":"managed","type":"mlregistry_stage_assignment","change":{"actions":["update"],"before":{"model":"m","stage":"production","version":"one"},"after":{"model":"m","stage":"production","version":2}}}]}`, "before of mlregistry_stage_assignment.p"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), strings.NewReader(tt.in), io.Discard, Options{})
			if err == nil || !errors.Is(err, ErrNotPlan) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrNotPlan mentioning %q", err, tt.want)
			}
		})
	}
}

func TestParsePlan_tooLarge(t *testing.T) {
	r := io.MultiReader(strings.NewReader(`{"format_version":"1.2","x":"`), io.LimitReader(zeros{}, MaxInput+10))
	if _, err := ParsePlan(r); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error %v, want too large", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestRun_emptyPlan(t *testing.T) {
	var out bytes.Buffer
	s, err := Run(context.Background(), strings.NewReader(minimalPlan), &out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "No mlregistry changes.") || len(s.Warnings) != 0 {
		t.Fatalf("empty plan summary:\n%s", out.String())
	}
}

func TestMain_usageAndErrors(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(planFile, []byte(minimalPlan), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"--help"}, "", ExitOK, "Usage: mlregistry plan-summary", ""},
		{"file", []string{planFile}, "", ExitOK, "No mlregistry changes.", ""},
		{"stdin", nil, minimalPlan, ExitOK, "No mlregistry changes.", ""},
		{"dash", []string{"-", "--format", "json"}, minimalPlan, ExitOK, `"models": []`, ""},
		{"flags after file", []string{planFile, "--format=json", "--fail-on", "warning,drift"}, "", ExitOK, `"warnings": []`, ""},
		{"bad format", []string{"--format", "yaml"}, "", ExitUsage, "", "--format takes markdown or json"},
		{"fail-on error, none", []string{"--fail-on", "error", "-"}, minimalPlan, ExitOK, "No mlregistry changes.", ""},
		{"bad fail-on", []string{"--fail-on", "fatal"}, "", ExitUsage, "", `--fail-on takes error, warning or drift, not "fatal"`},
		{"two files", []string{planFile, planFile}, "", ExitUsage, "", "one plan JSON file at a time"},
		{"missing file", []string{filepath.Join(dir, "nope.json")}, "", ExitError, "", "no such file"},
		{"foreign", nil, `{"hello":"world"}`, ExitError, "", "stdin: not the JSON of `terraform show -json PLANFILE`: no format_version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), tt.args, strings.NewReader(tt.stdin), &out, &errb, func(string) string { return "" })
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
		})
	}
}

// FuzzSummary: whatever the input, the summary either renders or returns
// an error wrapping ErrNotPlan; it never panics. Seeds in
// testdata/fuzz/FuzzSummary include real plans the golden tests wrote.
func FuzzSummary(f *testing.F) {
	f.Add([]byte(minimalPlan))
	f.Add([]byte(`{"format_version":"1.2","resource_changes":[{"address":"mlregistry_endpoint.e","mode":"managed","type":"mlregistry_endpoint","change":{"actions":["update"],"before":{"name":"e","model":"m","route":[{"name":"a","version":1,"weight":100}],"guard":{"max_error_rate":0.1}},"after":{"name":"e","model":"m","route":[{"name":"a","weight":50},{"name":"b","version":2,"weight":50}]},"after_unknown":{"route":[{"version":true}]}}}],"resource_drift":[{"address":"mlregistry_stage_assignment.s","mode":"managed","type":"mlregistry_stage_assignment","change":{"actions":["update"],"before":{"model":"m","stage":"production","version":1},"after":{"model":"m","stage":"production","version":2}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []string{"markdown", "json"} {
			_, err := Run(context.Background(), bytes.NewReader(data), io.Discard, Options{Format: format})
			if err != nil && !errors.Is(err, ErrNotPlan) {
				t.Fatalf("error %v does not wrap ErrNotPlan", err)
			}
		}
	})
}
