// Package plansummary turns the JSON of `terraform show -json PLANFILE`
// into a review summary of what a plan does to the registry: stage moves
// with metric deltas and stage policy verdicts (the registry's dry run,
// and a whole-plan check that counts the plan's own earlier moves),
// versions added, changed, replaced and destroyed, endpoint weight shifts,
// warnings, and the drift Terraform found at refresh joined with the
// registry's stage history and audit log. It prints Markdown (for a pull
// request comment) or JSON.
//
// It reads the registry through internal/client and uses internal/registry
// for the wire types and the stage policy rules; it must not import the
// server, the store, the provider or app.
package plansummary

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
)

// Exit codes of Main, the mlregistry CLI's: a --fail-on gate is its
// "refused" (5).
const (
	ExitOK     = 0
	ExitError  = 1
	ExitUsage  = 2
	ExitFailOn = 5
)

// Usage is the command's help text.
const Usage = `Usage: mlregistry plan-summary [--format markdown|json] [--fail-on error|warning|drift] [FILE]

Summarises the JSON of ` + "`terraform show -json PLANFILE`" + ` (FILE, or stdin when FILE
is absent or -) for review: stage moves with metric deltas and stage policy
verdicts, versions added/changed/replaced/destroyed, endpoint weight shifts,
warnings, and drift joined with the registry's history.

With MLREGISTRY_ADDR and MLREGISTRY_TOKEN set (a read token is enough) it
asks the registry for metrics, dry runs and history; without them it says
what it could not fetch.

The summary gives a whole-plan verdict: an error when the plan cannot
apply as Terraform orders it (a version destroyed before its stage or
route moves away, a stage left empty by a renamed assignment, a move the
stage policy or a flag refuses), each with the fix.

Exit status: 0, or 5 when a --fail-on condition holds (error: any error;
warning: any warning or error; drift: anything changed outside Terraform;
the flag may repeat or take a comma list), 1 on errors (unreadable or
foreign input), 2 on usage errors.
`

// Options configures Run.
type Options struct {
	// Format is markdown (default) or json.
	Format string
	// Address and Token reach the registry; empty Address: no registry.
	Address, Token string
	// Now is the clock the whole-plan policy check uses (default time.Now).
	Now func() time.Time
	// HTTPTimeout bounds each registry request (default 15s).
	HTTPTimeout time.Duration
}

// Main runs `mlregistry plan-summary` and returns its exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	fs := flag.NewFlagSet("mlregistry plan-summary", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("format", "markdown", "markdown or json")
	var failOn []string
	fs.Func("fail-on", "error, warning or drift (repeatable, or a comma list)", func(v string) error {
		conds, err := ParseFailOn(v)
		failOn = append(failOn, conds...)
		return err
	})
	var files []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, Usage)
				return ExitOK
			}
			fmt.Fprintf(stderr, "mlregistry plan-summary: %v\n\n%s", err, Usage)
			return ExitUsage
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		files = append(files, rest[0])
		rest = rest[1:]
	}
	if *format != "markdown" && *format != "json" {
		fmt.Fprintf(stderr, "mlregistry plan-summary: --format takes markdown or json, not %q\n\n%s", *format, Usage)
		return ExitUsage
	}
	if len(files) > 1 {
		fmt.Fprintf(stderr, "mlregistry plan-summary: one plan JSON file at a time (got %d)\n\n%s", len(files), Usage)
		return ExitUsage
	}
	in, name := stdin, "stdin"
	if len(files) == 1 && files[0] != "-" {
		f, err := os.Open(files[0])
		if err != nil {
			fmt.Fprintf(stderr, "mlregistry plan-summary: %v\n", err)
			return ExitError
		}
		defer func() { _ = f.Close() }()
		in, name = f, files[0]
	}
	if env == nil {
		env = func(string) string { return "" }
	}
	s, err := Run(ctx, in, stdout, Options{Format: *format, Address: env("MLREGISTRY_ADDR"), Token: env("MLREGISTRY_TOKEN")})
	if err != nil {
		fmt.Fprintf(stderr, "mlregistry plan-summary: %s: %v\n", name, err)
		return ExitError
	}
	if hit := FailOnHits(s, failOn); len(hit) > 0 {
		fmt.Fprintf(stderr, "mlregistry plan-summary: failing (--fail-on): %s\n", strings.Join(hit, " and "))
		return ExitFailOn
	}
	return ExitOK
}

// ParseFailOn reads a --fail-on value: error, warning or drift, or a
// comma list.
func ParseFailOn(v string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(v, ",") {
		switch c = strings.TrimSpace(c); c {
		case "error", "errors", "warning", "warnings", "drift":
			out = append(out, strings.TrimSuffix(c, "s"))
		default:
			return out, fmt.Errorf("--fail-on takes error, warning or drift, not %q", c)
		}
	}
	return out, nil
}

// FailOnHits says which --fail-on conditions the summary meets. An error
// is worse than a warning, so "warning" fails on errors too.
func FailOnHits(s *Summary, failOn []string) []string {
	var hit []string
	if (slices.Contains(failOn, "error") || slices.Contains(failOn, "warning")) && len(s.Errors) > 0 {
		hit = append(hit, fmt.Sprintf("%d error(s) (%s)", len(s.Errors), errorCodes(s.Errors)))
	}
	if slices.Contains(failOn, "warning") && len(s.Warnings) > 0 {
		hit = append(hit, fmt.Sprintf("%d warning(s)", len(s.Warnings)))
	}
	if slices.Contains(failOn, "drift") && len(s.Drift) > 0 {
		hit = append(hit, fmt.Sprintf("drift in %d object(s)", len(s.Drift)))
	}
	return hit
}

// Run reads plan JSON from in, summarises it and writes the summary to
// out in opts.Format.
func Run(ctx context.Context, in io.Reader, out io.Writer, opts Options) (*Summary, error) {
	p, err := ParsePlan(in)
	if err != nil {
		return nil, err
	}
	f := registryFacts(ctx, opts)
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	s, err := build(p, f, now())
	if err != nil {
		return nil, err
	}
	if opts.Format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return s, enc.Encode(s)
	}
	return s, WriteMarkdown(out, s)
}

// registryFacts connects to the registry when the options name one, and
// checks once that it answers, so an unreachable registry costs one
// timeout rather than one per look-up.
func registryFacts(ctx context.Context, opts Options) *facts {
	switch {
	case opts.Address == "":
		return newFacts(ctx, nil, "MLREGISTRY_ADDR is not set")
	case opts.Token == "":
		return newFacts(ctx, nil, "MLREGISTRY_TOKEN is not set")
	}
	timeout := opts.HTTPTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	c, err := client.New(client.Options{Address: opts.Address, Token: opts.Token, Timeout: timeout, MaxRetries: 2, UserAgent: "mlregistry-plan-summary"})
	if err != nil {
		return newFacts(ctx, nil, err.Error())
	}
	if err := c.Ping(ctx); err != nil {
		return newFacts(ctx, nil, "the registry did not answer: "+errText(err))
	}
	return newFacts(ctx, c, "")
}
