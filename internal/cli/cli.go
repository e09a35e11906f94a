// Package cli is Sluice's command line client: every `sluice` subcommand
// except serve and bench. It is a thin client of the HTTP API (package
// api): one file per command group, tables by default and JSON with
// --json, errors with hints, and exit codes a script can test.
//
// Main runs on its caller's goroutine and starts none of its own.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1 // anything else (a 5xx, a failed task)
	ExitUsage       = 2 // bad flags or arguments
	ExitNotFound    = 3 // 404: no such queue, exchange, message, user
	ExitAccess      = 4 // 401 or 403
	ExitConflict    = 5 // 409: in use, unacked, inequivalent
	ExitUnreachable = 6 // the server did not answer
)

const usage = `Usage: sluice <command> [flags]

Commands that talk to a running broker over its HTTP API:
  queue ls|declare|delete|purge|peek   queues
  queue grow|shrink NODE QUEUE|--all   a quorum queue's members
  exchange ls|declare|delete           exchanges
  bind EXCHANGE QUEUE                  bind a queue to an exchange
  publish                              publish a message (body from --body, --file or stdin)
  consume QUEUE                        take messages off a queue
  dlq ls|show|edit|delete|redrive      dead letters: browse, fix, send back
  user ls|add|delete                   users
  permissions ls|set|delete            per-vhost permissions
  schema ls|get|put|delete             JSON Schemas for x-schema
  policy ls|set|delete                 policies (--operator: operator policies)
  definitions export|import            the topology as RabbitMQ's definitions file
  limits ls|set|delete                 user and vhost limits (max-connections, …)
  health [CHECK]                       a health check (default virtual-hosts; 0 when ok)
  cluster status                       nodes, and which quorum queues each leads
  cluster add NAME=HOST:PORT|remove NAME   change the cluster's nodes
  completion bash|zsh                  a shell completion script

Every command takes, anywhere on the line, --server (env SLUICE_SERVER, default
http://127.0.0.1:15672; host:port alone means http://host:port), --user (SLUICE_USER,
default guest), --password (SLUICE_PASSWORD, default guest), --vhost (default /),
--json, and for https: --tls-ca FILE (SLUICE_TLS_CA) or --insecure.
Run "sluice <command> --help" for more.

Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 access refused,
5 conflict, 6 server unreachable.
`

// env is one command's context: where to talk to and where to write.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
	client *api.Client
	vhost  string
	json   bool
}

// command is a subcommand: its flags are added to fs, run gets the
// arguments left after flags.
type command struct {
	usage string // "queue ls"
	help  string
	flags func(fs *flag.FlagSet)
	run   func(e *env, args []string) error
}

// Main runs the command line args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, os.Stdin, stdout, stderr)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	args, globals := hoistGlobals(args) // globals.go
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	cmds := commands()
	name := args[0]
	rest := args[1:]
	if _, ok := cmds[name]; !ok && len(args) > 1 {
		name = args[0] + " " + args[1]
		rest = args[2:]
	}
	cmd, ok := cmds[name]
	if !ok {
		return unknownCommand(cmds, args, stdout, stderr) // suggest.go
	}
	rest = append(rest, globals...)
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, stdin: stdin}
	fs := flag.NewFlagSet("sluice "+cmd.usage, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g := globalFlags(fs, e) // globals.go
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s\n\n%s\n\nFlags:\n", cmd.usage, cmd.help)
		fs.PrintDefaults()
	}
	if err := fs.Parse(interleave(fs, rest)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		suggestFlag(fs, err, stderr) // suggest.go
		return ExitUsage
	}
	server := serverURL(*g.server)
	client, err := g.client(server)
	if err != nil {
		fmt.Fprintf(stderr, "sluice %s: %v\n", cmd.usage, err)
		return ExitUsage
	}
	e.client = client
	if err := cmd.run(e, fs.Args()); err != nil {
		return report(stderr, cmd.usage, server, err)
	}
	return ExitOK
}

// interleave moves flags that follow positional arguments ahead of them,
// so "sluice queue declare orders --durable=false" works.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, pos...)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func groupHelp(cmds map[string]*command, group string) string {
	var b strings.Builder
	for _, name := range sortedKeys(cmds) {
		if strings.HasPrefix(name, group+" ") {
			fmt.Fprintf(&b, "  sluice %-28s %s\n", cmds[name].usage, firstLine(cmds[name].help))
		}
	}
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// report prints err with a hint and returns its exit code.
func report(w io.Writer, cmd, server string, err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "sluice %s: %s (see: sluice %s --help)\n", cmd, ue.msg, firstWord(cmd))
		return ExitUsage
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(w, "sluice %s: %s\n", cmd, ae.Reason)
		switch ae.Status {
		case 404:
			return ExitNotFound
		case 401:
			fmt.Fprintln(w, "hint: check --user and --password (or SLUICE_USER, SLUICE_PASSWORD); guest may log in from localhost only")
			return ExitAccess
		case 403:
			return ExitAccess
		case 409:
			return ExitConflict
		case 400, 422:
			return ExitUsage
		}
		return ExitFailure
	}
	var ne net.Error
	var ue2 *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue2) {
		fmt.Fprintf(w, "sluice %s: %v\nhint: is the broker running with its HTTP API at %s? (--server, SLUICE_SERVER)\n", cmd, err, server)
		return ExitUnreachable
	}
	fmt.Fprintf(w, "sluice %s: %v\n", cmd, err)
	return ExitFailure
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

func commands() map[string]*command {
	m := map[string]*command{}
	for _, group := range [][]*command{queueCommands(), exchangeCommands(), messageCommands(), dlqCommands(), userCommands(),
		schemaCommands(), policyCommands(), limitsCommands(), healthCommands(), clusterCommands(), memberCommands(), {completionCommand()}} {
		for _, c := range group {
			name := c.usage
			if i := strings.Index(name, " ["); i >= 0 {
				name = name[:i]
			}
			fields := strings.Fields(name)
			key := fields[0]
			if len(fields) > 1 && strings.ToLower(fields[1]) == fields[1] && !strings.HasPrefix(fields[1], "-") {
				key += " " + fields[1]
			}
			m[key] = c
		}
	}
	return m
}
