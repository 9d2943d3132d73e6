// Command pgmigrate-proxy is a PostgreSQL wire-protocol proxy that routes
// each client to its tenant's schema. Run it with --help for its options.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pgmigrate-proxy:", err)
		os.Exit(1)
	}
}
