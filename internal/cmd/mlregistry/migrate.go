package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

func newMigrateCmd() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Long: `Apply the pending database migrations and exit. serve applies them on
start too; run migrate first when several replicas share a PostgreSQL
database, or to upgrade the schema ahead of a deploy.`,
		Example: `  mlregistry migrate --db sqlite:///var/lib/mlregistry/registry.db
  MLREGISTRY_DB=postgres://mlr@db:5432/mlr mlregistry migrate`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := sqlstore.Open(ctx, dsn(cmd, db), sqlstore.Options{NoMigrate: true})
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(ctx)
			if err != nil {
				return err
			}
			v, err := st.SchemaVersion(ctx)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "schema is up to date (version %d)\n", v)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied migrations %v; schema version %d\n", applied, v)
			return nil
		},
	}
	addDBFlag(cmd, &db)
	return cmd
}

// addDBFlag adds --db. Its help shows the built-in default, never the
// environment's value (a PostgreSQL DSN may hold a password).
func addDBFlag(cmd *cobra.Command, db *string) {
	cmd.Flags().StringVar(db, "db", app.DefaultDB, "database DSN: sqlite://PATH or postgres://... (env MLREGISTRY_DB)")
}

// dsn is --db when given, else MLREGISTRY_DB, else the default.
func dsn(cmd *cobra.Command, db string) string {
	if cmd.Flags().Changed("db") {
		return db
	}
	return envOr("MLREGISTRY_DB", db)
}
