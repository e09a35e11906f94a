// Command sluice is the Sluice message broker and, later, its CLI.
//
// `sluice serve` runs the broker; every other subcommand will be a thin
// client of the broker's HTTP API (internal/cli). main only wires signals
// to a context and hands over to run, which tests call directly.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is the product version reported to clients and by `sluice version`.
const version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Sluice is a message broker that speaks AMQP 0-9-1.

Usage:
  sluice <command> [flags]

Commands:
  serve      run the broker (see: sluice serve --help)
  bench      generate AMQP load and measure it (see: sluice bench --help)
  version    print the version
  help       print this help

Other commands (queues, exchanges, dead letters) talk to a running broker
over its HTTP API; they are not built yet.
`

// run runs the command line args and returns the process exit code:
// 0 success, 1 failure, 2 usage error. It returns when ctx ends (serve) or
// the command is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "sluice %s\n", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
