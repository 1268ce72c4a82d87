package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	db := fs.String("db", envOr("MLREGISTRY_DB", app.DefaultDB), "database DSN (env MLREGISTRY_DB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := sqlstore.Open(ctx, *db, sqlstore.Options{NoMigrate: true})
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
		fmt.Fprintf(stdout, "schema is up to date (version %d)\n", v)
		return nil
	}
	fmt.Fprintf(stdout, "applied migrations %v; schema version %d\n", applied, v)
	return nil
}
