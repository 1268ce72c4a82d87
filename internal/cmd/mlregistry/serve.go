package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
)

func cmdServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	listen := fs.String("listen", envOr("MLREGISTRY_LISTEN", app.DefaultListen), "TCP address to listen on (env MLREGISTRY_LISTEN)")
	db := fs.String("db", envOr("MLREGISTRY_DB", app.DefaultDB), "database DSN: sqlite://PATH or postgres://... (env MLREGISTRY_DB)")
	publicURL := fs.String("public-url", "", "base URL clients use to reach this server (default http://LISTEN)")
	insecure := fs.Bool("insecure-no-auth", false, "disable authentication (loopback listen addresses only)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, fs.Args())
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *insecure {
		logger.Warn("authentication is DISABLED (--insecure-no-auth); every request acts as admin")
	}
	m := app.New(app.Config{
		Listen:         *listen,
		DB:             *db,
		PublicURL:      *publicURL,
		InsecureNoAuth: *insecure,
		Logger:         logger,
		Version:        version,
	})
	if err := m.Run(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-m.Err():
		_ = m.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if err := m.Close(); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q must be debug, info, warn or error", errUsage, level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q must be text or json", errUsage, format)
}
