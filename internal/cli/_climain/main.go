// Command climain runs internal/cli as a binary, for the test that runs the
// built CLI (cmd/sluice is wired by the integrator; this stands in for it
// until then). The leading underscore keeps it out of ./... .
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/sluicemq/sluice/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
