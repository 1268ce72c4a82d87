// Command mlregistry is the model registry server, its tooling and its
// command-line client:
//
//	mlregistry serve      run the registry API and gateway
//	mlregistry gateway    run the gateway alone, reading the registry's database
//	mlregistry migrate    apply database migrations and exit
//	mlregistry token      create, list and revoke API tokens (remote or on the database)
//	mlregistry models     list and show registered models        } client commands:
//	mlregistry versions   list a model's versions; create one     } talk to a registry
//	mlregistry stages     stage assignments and history; assign   } through
//	mlregistry endpoints  list and show serving endpoints         } internal/client
//	mlregistry events     the audit log, optionally followed      }
//	mlregistry flag/unflag  flag a version (no promotion) or clear the flag
//	mlregistry plan-summary  review summary of a saved Terraform plan (internal/plansummary)
//	mlregistry completion shell completion scripts
//	mlregistry version    print the version
//
// Subcommands, flags, help and completion are spf13/cobra's.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes, for scripts. They are listed in the root command's help.
const (
	exitOK          = 0
	exitError       = 1 // anything else
	exitUsage       = 2 // bad command line, or a request the registry found invalid
	exitNotFound    = 3 // the model, version, endpoint, stage or token does not exist
	exitAuth        = 4 // no valid token (unauthenticated), or its scope does not allow it
	exitConflict    = 5 // already exists, conflict, If-Match failed, stage policy refused
	exitUnavailable = 6 // the registry could not be reached or is unavailable
)

const exitCodesHelp = `Exit codes:
  0  success
  1  error
  2  usage: bad arguments or flags, or a request the registry found invalid
  3  not found: the model, version, stage, endpoint or token does not exist
  4  not allowed: missing, invalid, revoked or expired token, or too narrow a scope
  5  refused: already exists, conflict, precondition or stage policy failed
  6  registry unreachable or unavailable`

const rootLong = `mlregistry is the model registry server and its command-line client.

Server and database commands (serve, gateway, migrate, token --db) read
MLREGISTRY_LISTEN (gateway: MLREGISTRY_GATEWAY_LISTEN) and MLREGISTRY_DB.
Client commands (models, versions, stages, endpoints, events, flag, unflag,
token) talk to a registry at MLREGISTRY_ADDR (default http://127.0.0.1:8080)
with the token in MLREGISTRY_TOKEN; --addr and --token override them.

DSN: sqlite://./mlregistry.db (default), sqlite:///abs/path.db or
postgres://user:pass@host:5432/db

` + exitCodesHelp

// errUsage marks errors that are the caller's misuse of the command line.
var errUsage = errors.New("usage")

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "mlregistry",
		Short:         "Model registry server and command-line client",
		Long:          rootLong,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// No arguments: the usage, and exit code 2 (as before cobra).
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Usage()
			return errShownUsage
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("mlregistry {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v\nRun '%s --help' for usage", errUsage, err, cmd.CommandPath())
	})
	root.AddGroup(
		&cobra.Group{ID: "client", Title: "Registry client commands:"},
		&cobra.Group{ID: "server", Title: "Server and database commands:"},
	)
	for _, c := range []*cobra.Command{newServeCmd(), newGatewayCmd(), newMigrateCmd(), newBackupCmd(), newRestoreCmd()} {
		c.GroupID = "server"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newModelsCmd(), newVersionsCmd(), newStagesCmd(), newEndpointsCmd(), newEventsCmd(), newFlagCmd(), newUnflagCmd(), newTokenCmd(), newPlanSummaryCmd()} {
		c.GroupID = "client"
		root.AddCommand(c)
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "mlregistry", version)
			return nil
		},
	})
	return root
}

// errShownUsage: the usage was printed already; exit 2 without a message.
var errShownUsage = fmt.Errorf("%w (shown)", errUsage)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errShownUsage) {
		return exitUsage
	}
	if strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(stderr, "mlregistry: %v\nRun 'mlregistry --help' for usage.\n", err)
		return exitUsage
	}
	// An interrupted follow or serve is a normal end.
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "mlregistry: %v\n", err)
	if h := hint(err); h != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h)
	}
	return exitCode(err)
}

// exitCode maps an error to the documented exit codes, by the registry
// error code it carries (the client's and the store's errors both do).
func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return exitUsage
	}
	var te *client.TransportError
	if errors.As(err, &te) {
		return exitUnavailable
	}
	switch registry.ErrorCode(err) {
	case registry.CodeInvalidArgument, registry.CodeTooLarge:
		return exitUsage
	case registry.CodeNotFound:
		return exitNotFound
	case registry.CodeUnauthenticated, registry.CodePermissionDenied:
		return exitAuth
	case registry.CodeAlreadyExists, registry.CodeConflict, registry.CodePreconditionFailed,
		registry.CodePolicyViolation, registry.CodeIdempotencyMismatch:
		return exitConflict
	case registry.CodeUnavailable:
		return exitUnavailable
	}
	return exitError
}

// remoteHint is attached to errors of client commands: what to check.
type remoteHint struct {
	err      error
	addr     string
	hasToken bool
}

func (h *remoteHint) Error() string { return h.err.Error() }
func (h *remoteHint) Unwrap() error { return h.err }

func hint(err error) string {
	var h *remoteHint
	if !errors.As(err, &h) {
		return ""
	}
	var te *client.TransportError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("is a registry running at %s? Set MLREGISTRY_ADDR or --addr.", h.addr)
	case registry.ErrorCode(err) == registry.CodeUnauthenticated && !h.hasToken:
		return "no token given: set MLREGISTRY_TOKEN or --token (an admin makes one with 'mlregistry token create')."
	case registry.ErrorCode(err) == registry.CodeUnauthenticated:
		return "the token in MLREGISTRY_TOKEN or --token was refused; ask an admin for a new one."
	}
	return ""
}

// noArgs, exactArgs and rangeArgs are cobra's argument checks with usage
// errors (exit code 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s needs %s, got %d argument(s)\nUsage: %s", cmd.CommandPath(), names, len(args), cmd.UseLine())
		}
		return nil
	}
}

func rangeArgs(lo, hi int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageErrorf("%s takes %s, got %d argument(s)\nUsage: %s", cmd.CommandPath(), names, len(args), cmd.UseLine())
		}
		return nil
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
