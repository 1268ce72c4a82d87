package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// cliActor is who the audit log names for changes made with the CLI.
func cliActor() registry.Actor { return registry.Actor{Name: "cli"} }

func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: token needs a subcommand: create, list or revoke", errUsage)
	}
	switch args[0] {
	case "create":
		return cmdTokenCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return cmdTokenList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return cmdTokenRevoke(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown token subcommand %q", errUsage, args[0])
}

func openStore(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	return sqlstore.Open(ctx, dsn, sqlstore.Options{})
}

func cmdTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token create", stderr)
	db := fs.String("db", envOr("MLREGISTRY_DB", app.DefaultDB), "database DSN (env MLREGISTRY_DB)")
	name := fs.String("name", "", "token name (shown in the audit log)")
	scope := fs.String("scope", "", "read, write or admin")
	stages := fs.String("stages", "", "comma-separated stages this token may assign (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *scope == "" {
		return fmt.Errorf("%w: token create needs --name and --scope", errUsage)
	}
	var stageList []string
	for _, s := range strings.Split(*stages, ",") {
		if s = strings.TrimSpace(s); s != "" {
			stageList = append(stageList, s)
		}
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, tok, err := app.CreateToken(ctx, st, cliActor(), *name, registry.Scope(*scope), stageList)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	restricted := ""
	if len(tok.Stages) > 0 {
		restricted = ", stages " + strings.Join(tok.Stages, ",")
	}
	fmt.Fprintf(stderr, "created token %q (scope %s%s). It is shown once; store it now.\n", tok.Name, tok.Scope, restricted)
	return nil
}

func cmdTokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token list", stderr)
	db := fs.String("db", envOr("MLREGISTRY_DB", app.DefaultDB), "database DSN (env MLREGISTRY_DB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	toks, err := st.ListTokens(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tSTAGES\tCREATED\tLAST USED\tREVOKED")
	for _, t := range toks {
		stages := "*"
		if len(t.Stages) > 0 {
			stages = strings.Join(t.Stages, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Scope, stages, t.CreatedAt.Format(time.RFC3339), fmtTime(t.LastUsedAt), fmtTime(t.RevokedAt))
	}
	return tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func cmdTokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token revoke", stderr)
	db := fs.String("db", envOr("MLREGISTRY_DB", app.DefaultDB), "database DSN (env MLREGISTRY_DB)")
	// Accept the name before or after the flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	}
	if name == "" {
		return fmt.Errorf("%w: token revoke needs a token NAME", errUsage)
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RevokeToken(ctx, cliActor(), name); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked token %q\n", name)
	return nil
}
