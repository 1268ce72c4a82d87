package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

func newBackupCmd() *cobra.Command {
	var db, out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Take a consistent online backup of a SQLite registry",
		Long: `Write a consistent copy of a SQLite registry database to a new file while
the server keeps running and taking writes (SQLite's VACUUM INTO reads one
snapshot). The copy is checked with PRAGMA integrity_check before the
command succeeds. Restore it with 'mlregistry restore'.

PostgreSQL registries are backed up with pg_dump (pg_dump -Fc DSN > FILE)
and restored with pg_restore.`,
		Example: `  mlregistry backup --db sqlite:///var/lib/mlregistry/registry.db --out /backups/registry-$(date +%F).db`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("%w: --out FILE is required", errUsage)
			}
			if err := sqlstore.Backup(cmd.Context(), dsn(cmd, db), out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s\n", out)
			return nil
		},
	}
	addDBFlag(cmd, &db)
	cmd.Flags().StringVar(&out, "out", "", "file to write the backup to (must not exist)")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var db string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a SQLite registry from a backup",
		Long: `Put a backup made by 'mlregistry backup' in place as the database named by
--db. The backup is checked first: its integrity, and that its schema is
exactly the registry's at its version (the same tables, indexes, triggers
and views as the migrations make; a backup with an object added, changed or
removed is refused, naming the object). An existing database is replaced only with --force; stop the server
first. The restore writes a new file and renames it into place, so a failed
restore leaves the old database as it was.`,
		Example: `  mlregistry restore /backups/registry-2026-12-01.db --db sqlite:///var/lib/mlregistry/registry.db --force`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sqlstore.Restore(cmd.Context(), args[0], dsn(cmd, db), force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s\n", args[0])
			return nil
		},
	}
	addDBFlag(cmd, &db)
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing database")
	return cmd
}
