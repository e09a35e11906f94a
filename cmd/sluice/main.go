// Command sluice is the Sluice message broker and its CLI.
//
// `sluice serve` runs the broker and `sluice bench` generates load; every
// other subcommand is a thin client of the broker's HTTP API (internal/cli). main only wires signals
// to a context and hands over to run, which tests call directly.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicemq/sluice/internal/cli"
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
  serve        run the broker (see: sluice serve --help)
  bench        generate AMQP load and measure it (see: sluice bench --help)
  version      print the version
  help         print this help

Commands that talk to a running broker over its HTTP API
(--server, --user, --password or SLUICE_SERVER, SLUICE_USER, SLUICE_PASSWORD):
  queue        ls | declare | delete | purge | peek
  exchange     ls | declare | delete
  bind         bind a queue to an exchange
  publish      publish a message (--delay for a delayed one)
  consume      take messages from a queue
  dlq          ls | show | edit | delete | redrive: the dead-letter workflow
  schema       ls | get | put | delete: JSON Schemas for x-schema
  user         ls | add | delete
  permissions  ls | set | delete

Run "sluice <command> --help" for a command's flags.
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
		return cli.Main(ctx, args, stdout, stderr)
	}
}
