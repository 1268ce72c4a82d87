package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// cliActor is who the audit log names for changes made on the database
// directly (through the API, it is the token's name).
func cliActor() registry.Actor { return registry.Actor{Name: "cli"} }

const tokenLong = `Create, list and revoke API tokens.

Two ways to reach the tokens:
  remote    through the registry's API with an admin token: when --addr or
            --token is given, or MLREGISTRY_ADDR is set (and --db is not given).
  database  on the database directly: with --db, or when none of the above is
            set (MLREGISTRY_DB, default sqlite://./mlregistry.db). This is how
            the first admin token is made.

A secret is printed once, by create, on stdout (the message goes to stderr,
so secret=$(mlregistry token create ...) captures just the secret). Only its
SHA-256 is stored. Scopes: read (every GET), write (changes; --stages limits
which stages it may assign), admin (tokens and force deletes too), serve
(calls /serve/ and nothing else; --endpoints limits which endpoints). Every
scope may call /serve/. An expired
token is refused like a revoked one. Every change is in the audit log
(token.create, token.revoke).`

// tokenFlags select remote or database and hold the shared flags.
type tokenFlags struct {
	remote
	db string
}

func newTokenCmd() *cobra.Command {
	tf := &tokenFlags{}
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (remote or on the database)",
		Long:  tokenLong,
		Example: `  mlregistry token create --name me --scope admin                 # first token, on ./mlregistry.db
  export MLREGISTRY_ADDR=https://registry.example.com MLREGISTRY_TOKEN=mlr_...
  mlregistry token create --name ci --scope write --stages staging --expires-in 90d
  mlregistry token list
  mlregistry token revoke ci`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Usage()
			return errShownUsage
		},
	}
	addRemoteFlags(cmd, &tf.remote)
	cmd.PersistentFlags().StringVar(&tf.db, "db", app.DefaultDB, "work on this database directly: sqlite://PATH or postgres://... (env MLREGISTRY_DB)")
	cmd.AddCommand(newTokenCreateCmd(tf), newTokenListCmd(tf), newTokenRevokeCmd(tf))
	return cmd
}

// tokenBackend is what token commands do, remotely or on the database.
type tokenBackend interface {
	create(ctx context.Context, in registry.TokenCreate) (*registry.TokenCreated, error)
	list(ctx context.Context) ([]registry.Token, error)
	revokeByID(ctx context.Context, id int64) (*registry.Token, error)
	close()
}

// backend picks remote or database (see tokenLong).
func (tf *tokenFlags) backend(cmd *cobra.Command) (tokenBackend, error) {
	pf := cmd.Flags()
	dbGiven := pf.Changed("db")
	remoteGiven := pf.Changed("addr") || pf.Changed("token")
	if dbGiven && remoteGiven {
		return nil, usageErrorf("--db works on the database directly; --addr and --token talk to a registry: give one or the other")
	}
	if remoteGiven || (!dbGiven && envOr("MLREGISTRY_ADDR", "") != "") {
		c, err := tf.client()
		if err != nil {
			return nil, err
		}
		return &remoteTokens{c: c, r: &tf.remote}, nil
	}
	st, err := sqlstore.Open(cmd.Context(), dsn(cmd, tf.db), sqlstore.Options{})
	if err != nil {
		return nil, err
	}
	return &localTokens{st: st, closer: st}, nil
}

type remoteTokens struct {
	c *client.Client
	r *remote
}

func (b *remoteTokens) create(ctx context.Context, in registry.TokenCreate) (*registry.TokenCreated, error) {
	out, err := b.c.CreateToken(ctx, in)
	return out, b.r.wrap(err)
}

func (b *remoteTokens) list(ctx context.Context) ([]registry.Token, error) {
	out, err := b.c.ListTokens(ctx)
	return out, b.r.wrap(err)
}

func (b *remoteTokens) revokeByID(ctx context.Context, id int64) (*registry.Token, error) {
	out, err := b.c.RevokeToken(ctx, id)
	return out, b.r.wrap(err)
}

func (b *remoteTokens) close() {}

// localTokens works on the database; it needs its tokens and, to close it,
// the store itself.
type localTokens struct {
	st     registry.TokenStore
	closer io.Closer
}

func (b *localTokens) create(ctx context.Context, in registry.TokenCreate) (*registry.TokenCreated, error) {
	return registry.IssueToken(ctx, b.st, cliActor(), in, time.Now())
}

func (b *localTokens) list(ctx context.Context) ([]registry.Token, error) {
	return b.st.ListTokens(ctx)
}

func (b *localTokens) revokeByID(ctx context.Context, id int64) (*registry.Token, error) {
	return b.st.RevokeTokenByID(ctx, cliActor(), id)
}

func (b *localTokens) close() { _ = b.closer.Close() }

func newTokenCreateCmd(tf *tokenFlags) *cobra.Command {
	var (
		name, scope, stages, endpoints, expiresIn, expiresAt string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --scope read|write|admin|serve [--stages s1,s2] [--endpoints e1,e2] [--expires-in 90d | --expires-at TIME]",
		Short: "Create a token and print its secret (once)",
		Example: `  mlregistry token create --name me --scope admin --db sqlite://./mlregistry.db
  mlregistry token create --name ci --scope write --stages staging --expires-in 2160h
  mlregistry token create --name grafana --scope read --expires-at 2027-01-01T00:00:00Z -o json
  mlregistry token create --name churn-app --scope serve --endpoints churn`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || scope == "" {
				return usageErrorf("token create needs --name and --scope")
			}
			asJSON, err := tf.json()
			if err != nil {
				return err
			}
			in := registry.TokenCreate{Name: name, Scope: registry.Scope(scope)}
			for _, s := range strings.Split(stages, ",") {
				if s = strings.TrimSpace(s); s != "" {
					in.Stages = append(in.Stages, s)
				}
			}
			for _, e := range strings.Split(endpoints, ",") {
				if e = strings.TrimSpace(e); e != "" {
					in.Endpoints = append(in.Endpoints, e)
				}
			}
			if len(in.Stages) > 0 && !in.Scope.Allows(registry.ScopeWrite) {
				return usageErrorf("--stages limits which stages a write (or admin) token may assign; a %s token assigns none: drop --stages or use --scope write", scope)
			}
			if len(in.Endpoints) > 0 && in.Scope != registry.ScopeServe {
				return usageErrorf("--endpoints limits which endpoints a serve token may call; a %s token may call every endpoint: drop --endpoints or use --scope serve", scope)
			}
			if in.ExpiresAt, err = expiry(expiresIn, expiresAt, time.Now()); err != nil {
				return err
			}
			b, err := tf.backend(cmd)
			if err != nil {
				return err
			}
			defer b.close()
			out, err := b.create(cmd.Context(), in)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Secret)
			var extra []string
			if len(out.Token.Stages) > 0 {
				extra = append(extra, "stages "+strings.Join(out.Token.Stages, ","))
			}
			if len(out.Token.Endpoints) > 0 {
				extra = append(extra, "endpoints "+strings.Join(out.Token.Endpoints, ","))
			}
			if out.Token.ExpiresAt != nil {
				extra = append(extra, "expires "+fmtTime(*out.Token.ExpiresAt))
			}
			more := ""
			if len(extra) > 0 {
				more = ", " + strings.Join(extra, ", ")
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created token %q (id %d, scope %s%s). It is shown once; store it now.\n", out.Token.Name, out.Token.ID, out.Token.Scope, more)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "token name (shown in the audit log as the actor)")
	f.StringVar(&scope, "scope", "", "read, write, admin or serve")
	f.StringVar(&stages, "stages", "", "comma-separated stages this write token may assign (default: all)")
	f.StringVar(&endpoints, "endpoints", "", "comma-separated endpoints a serve token may call (default: all)")
	f.StringVar(&expiresIn, "expires-in", "", "expire after this long: a duration (720h), days (90d) or both (1d12h)")
	f.StringVar(&expiresAt, "expires-at", "", "expire at this RFC 3339 time")
	_ = cmd.RegisterFlagCompletionFunc("scope", cobra.FixedCompletions([]string{"read", "write", "admin", "serve"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// expiry reads --expires-in / --expires-at.
func expiry(in, at string, now time.Time) (*time.Time, error) {
	switch {
	case in != "" && at != "":
		return nil, usageErrorf("give --expires-in or --expires-at, not both")
	case in != "":
		d, ok := registry.ParseAge(in)
		if !ok {
			return nil, usageErrorf("--expires-in %q must be a duration such as 720h or 90d", in)
		}
		if d <= 0 {
			return nil, usageErrorf("--expires-in %q must be positive", in)
		}
		t := now.Add(d).UTC().Truncate(time.Second)
		return &t, nil
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return nil, usageErrorf("--expires-at %q must be an RFC 3339 time such as 2027-01-01T00:00:00Z", at)
		}
		return &t, nil
	}
	return nil, nil
}

func newTokenListCmd(tf *tokenFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tokens with their ids and state (active, revoked, expired); never secrets",
		Example: `  mlregistry token list
  mlregistry token list -o json | jq '.[] | select(.state == "active") | .name'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := tf.json()
			if err != nil {
				return err
			}
			b, err := tf.backend(cmd)
			if err != nil {
				return err
			}
			defer b.close()
			toks, err := b.list(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if toks == nil {
					toks = []registry.Token{}
				}
				return writeJSON(cmd.OutOrStdout(), toks)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "NAME", "SCOPE", "STAGES", "STATE", "CREATED", "LAST USED", "EXPIRES", "REVOKED")
			for _, tok := range toks {
				stages := "*"
				if len(tok.Stages) > 0 {
					stages = strings.Join(tok.Stages, ",")
				}
				scope := string(tok.Scope)
				if len(tok.Endpoints) > 0 {
					scope += "(" + strings.Join(tok.Endpoints, ",") + ")"
				}
				t.row(plain(strconv.FormatInt(tok.ID, 10)), plain(tok.Name), plain(scope), plain(stages), stateCell(tok.State),
					plain(fmtTime(tok.CreatedAt)), plain(fmtTimePtr(tok.LastUsedAt)), plain(fmtTimePtr(tok.ExpiresAt)), plain(fmtTimePtr(tok.RevokedAt)))
			}
			return t.flush()
		},
	}
}

func stateCell(state string) cell {
	switch state {
	case registry.TokenActive:
		return cell{text: state, color: colorGreen}
	case registry.TokenExpired:
		return cell{text: state, color: colorYellow}
	}
	return cell{text: state, color: colorRed}
}

func newTokenRevokeCmd(tf *tokenFlags) *cobra.Command {
	var id int64
	cmd := &cobra.Command{
		Use:   "revoke NAME | --id ID",
		Short: "Revoke a token by name (the one not yet revoked) or by id",
		Long: `Revoke a token. By NAME, the token of that name that is not revoked yet
(expired ones included); by --id, exactly that token (see 'token list').
Through the API, the registry that answers refuses the token at once and
other replicas within seconds.`,
		Example: `  mlregistry token revoke ci
  mlregistry token revoke --id 7`,
		Args: rangeArgs(0, 1, "a token NAME or --id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == cmd.Flags().Changed("id") {
				return usageErrorf("token revoke needs a token NAME or --id ID (one of them)")
			}
			asJSON, err := tf.json()
			if err != nil {
				return err
			}
			b, err := tf.backend(cmd)
			if err != nil {
				return err
			}
			defer b.close()
			ctx := cmd.Context()
			if len(args) == 1 {
				if id, err = liveTokenID(ctx, b, args[0]); err != nil {
					return err
				}
			}
			tok, err := b.revokeByID(ctx, id)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), tok)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %q (id %d)\n", tok.Name, tok.ID)
			return nil
		},
	}
	cmd.Flags().Int64Var(&id, "id", 0, "revoke the token with this id")
	return cmd
}

// liveTokenID finds the id of the unrevoked token called name.
func liveTokenID(ctx context.Context, b tokenBackend, name string) (int64, error) {
	toks, err := b.list(ctx)
	if err != nil {
		return 0, err
	}
	for _, t := range toks {
		if t.Name == name && t.RevokedAt == nil {
			return t.ID, nil
		}
	}
	return 0, registry.Errorf(registry.CodeNotFound, "no token %q that is not revoked already (see 'mlregistry token list')", name)
}
