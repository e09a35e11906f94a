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
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/sluicemq/sluice/internal/cli"
)

// version is the product version reported to clients and by `sluice
// version`; `make release` stamps it with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

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
(--server, --user, --password, anywhere on the line, or SLUICE_SERVER,
SLUICE_USER, SLUICE_PASSWORD; --tls-ca or --insecure for https):
  queue        ls | declare | delete | purge | peek | grow | shrink
  exchange     ls | declare | delete
  bind         bind a queue to an exchange
  publish      publish a message (--delay for a delayed one)
  consume      take messages from a queue
  dlq          ls | show | edit | delete | redrive: the dead-letter workflow
  schema       ls | get | put | delete: JSON Schemas for x-schema
  user         ls | add | delete
  permissions  ls | set | delete
  policy       ls | set | delete: policies and operator policies
  definitions  export | import: the topology as RabbitMQ's definitions file
  limits       ls | set | delete: user and vhost limits (max-connections, …)
  health       a health check; exit 0 when it passes
  completion   bash | zsh: a shell completion script

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
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		return cli.Main(ctx, args, stdout, stderr)
	}
}

// versionLine is `sluice version`'s answer: the version, the commit it
// was built from when the build recorded one, Go's version and the
// platform.
func versionLine() string {
	line := "sluice " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				line += " (" + s.Value[:12] + ")"
			}
		}
	}
	return fmt.Sprintf("%s %s %s/%s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
