// Command mlregistry is the model registry server and its tooling:
//
//	mlregistry serve     run the registry API and gateway
//	mlregistry migrate   apply database migrations and exit
//	mlregistry token     create, list and revoke API tokens (works on the database directly)
//	mlregistry version   print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `mlregistry - model registry server and tools

Usage:
  mlregistry serve   [--listen ADDR] [--db DSN] [--public-url URL] [--insecure-no-auth] [--log-format text|json] [--log-level LEVEL]
  mlregistry migrate [--db DSN]
  mlregistry token create --name NAME --scope read|write|admin [--stages s1,s2] [--db DSN]
  mlregistry token list   [--db DSN]
  mlregistry token revoke NAME [--db DSN]
  mlregistry version

Environment: MLREGISTRY_LISTEN, MLREGISTRY_DB (defaults for --listen, --db).
DSN: sqlite://./mlregistry.db (default), sqlite:///abs/path.db or postgres://user:pass@host:5432/db
`

// errUsage marks errors that should print the usage text.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = cmdMigrate(ctx, args[1:], stdout, stderr)
	case "token":
		err = cmdToken(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "mlregistry", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mlregistry: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintf(stderr, "mlregistry: %v\n\n%s", err, usage)
		return 2
	}
	fmt.Fprintf(stderr, "mlregistry: %v\n", err)
	return 1
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mlregistry "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
