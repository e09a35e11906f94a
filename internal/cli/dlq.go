package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/sluicemq/sluice/internal/api"
)

// filterFlags adds the browse/redrive filter flags.
func filterFlags(fs *flag.FlagSet, f *api.Filter) {
	fs.StringVar(&f.Reason, "reason", "", "dead-letter reason: rejected, expired, maxlen, delivery_limit, invalid")
	fs.StringVar(&f.Source, "source", "", "the queue the message died in")
	fs.StringVar(&f.Header, "header", "", "header `name` or name=value")
	fs.StringVar(&f.Body, "body-contains", "", "substring of the body")
	fs.StringVar(&f.Since, "since", "", "died at or after (RFC 3339)")
	fs.StringVar(&f.Until, "until", "", "died before (RFC 3339)")
}

func dlqCommands() []*command {
	var (
		f                        api.Filter
		limit                    int
		after                    uint64
		body, file, routingKey   string
		setHeaders               = keyValues{}
		delHeaders               stringList
		ids                      string
		target, targetExchange   string
		rate                     float64
		dryRun, noWait, allPages bool
	)
	return []*command{
		{
			usage: "dlq ls",
			help:  "List the queues that hold dead letters (messages with x-death), with their depth.",
			run: func(e *env, _ []string) error {
				qs, err := e.client.Queues(e.ctx, e.vhost)
				if err != nil {
					return err
				}
				type row struct {
					Queue    string `json:"queue"`
					Messages int    `json:"messages"`
					Oldest   string `json:"oldest_reason"`
					Source   string `json:"oldest_source"`
				}
				var rows []row
				for _, q := range qs {
					if q.Messages == 0 {
						continue
					}
					p, err := e.client.Browse(e.ctx, e.vhost, q.Name, 0, 1, api.Filter{})
					if err != nil || len(p.Messages) == 0 || p.Messages[0].Death == nil {
						continue
					}
					d := p.Messages[0].Death
					rows = append(rows, row{q.Name, q.Messages, d.Reason, d.Queue})
				}
				return e.out(rows, func() {
					tr := make([][]string, 0, len(rows))
					for _, r := range rows {
						tr = append(tr, []string{r.Queue, strconv.Itoa(r.Messages), r.Oldest, r.Source})
					}
					e.table([]string{"QUEUE", "MESSAGES", "OLDEST REASON", "OLDEST SOURCE"}, tr)
				})
			},
		},
		{
			usage: "dlq show QUEUE [ID]",
			help:  "Browse a queue's messages without consuming them, or show one message in full.",
			flags: func(fs *flag.FlagSet) {
				filterFlags(fs, &f)
				fs.IntVar(&limit, "limit", 50, "messages per page")
				fs.Uint64Var(&after, "after", 0, "start after this message id")
				fs.BoolVar(&allPages, "all", false, "page through the whole queue")
			},
			run: func(e *env, a []string) error {
				switch len(a) {
				case 1:
				case 2:
					id, err := strconv.ParseUint(a[1], 10, 64)
					if err != nil {
						return usagef("message id %q is not a number", a[1])
					}
					m, err := e.client.Message(e.ctx, e.vhost, a[0], id)
					if err != nil {
						return err
					}
					return e.printJSON(m)
				default:
					return usagef("want a queue and optionally a message id")
				}
				var all []api.Message
				for {
					p, err := e.client.Browse(e.ctx, e.vhost, a[0], after, limit, f)
					if err != nil {
						return err
					}
					all = append(all, p.Messages...)
					after = p.Next
					if !allPages || !p.More {
						if p.More && !e.json {
							defer fmt.Fprintf(e.stderr, "more: sluice dlq show %s --after %d\n", a[0], p.Next)
						}
						break
					}
				}
				if all == nil {
					all = []api.Message{}
				}
				return e.out(all, func() { messageTable(e, all) })
			},
		},
		{
			usage: "dlq edit QUEUE ID",
			help: "Replace a message's body, routing key or headers in place (it keeps its id and place).\n" +
				"Example: sluice dlq edit orders.dlq 42 --file fixed.json --header retry=true",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&body, "body", "", "new body")
				fs.StringVar(&file, "file", "", "read the new body from `path` (- for stdin)")
				fs.StringVar(&routingKey, "routing-key", "", "new routing key")
				fs.Var(setHeaders, "header", "set header `name=value` (repeatable)")
				fs.Var(&delHeaders, "remove-header", "remove header `name` (repeatable)")
			},
			run: func(e *env, a []string) error {
				if len(a) != 2 {
					return usagef("want a queue and a message id")
				}
				id, err := strconv.ParseUint(a[1], 10, 64)
				if err != nil {
					return usagef("message id %q is not a number", a[1])
				}
				var edit api.MessageEdit
				if body != "" || file != "" {
					data, err := readBody(e, body, file)
					if err != nil {
						return err
					}
					s := string(data)
					edit.Payload = &s
				}
				if routingKey != "" {
					edit.RoutingKey = &routingKey
				}
				if len(setHeaders) > 0 || len(delHeaders) > 0 {
					cur, err := e.client.Message(e.ctx, e.vhost, a[0], id)
					if err != nil {
						return err
					}
					props := cur.Properties
					if props.Headers == nil {
						props.Headers = map[string]any{}
					}
					for k, v := range setHeaders {
						props.Headers[k] = typed(v)
					}
					for _, k := range delHeaders {
						delete(props.Headers, k)
					}
					edit.Properties = &props
				}
				if edit.Payload == nil && edit.RoutingKey == nil && edit.Properties == nil {
					return usagef("nothing to change: give --body, --file, --routing-key, --header or --remove-header")
				}
				m, err := e.client.EditMessage(e.ctx, e.vhost, a[0], id, edit)
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(m)
				}
				return e.done("message %d of %s edited", id, a[0])
			},
		},
		{
			usage: "dlq delete QUEUE ID",
			help:  "Delete one message.",
			run: func(e *env, a []string) error {
				if len(a) != 2 {
					return usagef("want a queue and a message id")
				}
				id, err := strconv.ParseUint(a[1], 10, 64)
				if err != nil {
					return usagef("message id %q is not a number", a[1])
				}
				if err := e.client.DeleteMessage(e.ctx, e.vhost, a[0], id); err != nil {
					return err
				}
				return e.done("message %d of %s deleted", id, a[0])
			},
		},
		{
			usage: "dlq redrive QUEUE",
			help: "Move dead letters back to the queue each died in (from x-death), or to --target.\n" +
				"Select with --ids or the filter flags; nothing selected means all. Ctrl-C cancels the task.\n" +
				"Example: sluice dlq redrive orders.dlq --reason rejected --rate 100",
			flags: func(fs *flag.FlagSet) {
				filterFlags(fs, &f)
				fs.StringVar(&ids, "ids", "", "comma-separated message ids")
				fs.StringVar(&target, "target", "", "move to this queue instead")
				fs.StringVar(&targetExchange, "target-exchange", "", "publish to this exchange instead")
				fs.Float64Var(&rate, "rate", 0, "messages per second (0: as fast as possible)")
				fs.BoolVar(&dryRun, "dry-run", false, "report what would move, move nothing")
				fs.BoolVar(&noWait, "no-wait", false, "print the task and return at once")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one queue name")
				}
				r := api.Redrive{Target: target, TargetExchange: targetExchange, Rate: rate, DryRun: dryRun}
				if ids != "" {
					for _, s := range strings.Split(ids, ",") {
						id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
						if err != nil {
							return usagef("--ids: %q is not a message id", s)
						}
						r.IDs = append(r.IDs, id)
					}
				} else if f != (api.Filter{}) {
					r.Filter = &f
				}
				task, err := e.client.Redrive(e.ctx, e.vhost, a[0], r)
				if err != nil {
					return err
				}
				if !noWait {
					task, err = waitTask(e, task)
					if err != nil {
						return err
					}
				}
				if e.json {
					return e.printJSON(task)
				}
				printTask(e, task)
				if task.State == "failed" || task.State == "cancelled" {
					return fmt.Errorf("task %s %s", task.ID, task.State)
				}
				if task.Failed > 0 {
					return fmt.Errorf("%d of %d messages could not be moved", task.Failed, task.Total)
				}
				return nil
			},
		},
	}
}

// waitTask polls a task, drawing a progress bar on stderr when that is a
// terminal; when the command's context ends (Ctrl-C) it cancels the task.
func waitTask(e *env, task api.Task) (api.Task, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	bar := !e.json && isTerminal(e.stderr)
	for task.State == "running" {
		if bar {
			fmt.Fprintf(e.stderr, "\r%s", progressBar(task.Done, task.Total, 30))
		}
		select {
		case <-e.ctx.Done():
			fmt.Fprintln(e.stderr, "\ncancelling…")
			cancelled, err := e.client.CancelTask(contextWithoutCancel(e), task.ID)
			if err != nil {
				return task, err
			}
			return cancelled, nil
		case <-tick.C:
		}
		var err error
		if task, err = e.client.Task(e.ctx, task.ID); err != nil {
			if errors.Is(err, e.ctx.Err()) {
				continue
			}
			return task, err
		}
	}
	if bar {
		fmt.Fprintf(e.stderr, "\r%s\n", progressBar(task.Done, task.Total, 30))
	}
	return task, nil
}

// isTerminal reports whether w is a terminal: a progress bar drawn with
// carriage returns into a file or a pipe is only noise there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func progressBar(done, total, width int) string {
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * float64(width))
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
}

func printTask(e *env, t api.Task) {
	verb := "moved"
	if t.DryRun {
		verb = "would move"
	}
	fmt.Fprintf(e.stdout, "task %s %s: %s %d of %d messages from %s", t.ID, t.State, verb, t.Moved, t.Total, t.Queue)
	if t.Failed > 0 {
		fmt.Fprintf(e.stdout, ", %d failed", t.Failed)
	}
	fmt.Fprintln(e.stdout)
	for _, m := range t.Moves {
		fmt.Fprintf(e.stdout, "  %d -> %s\n", m.ID, m.To)
	}
	for _, er := range t.Errors {
		fmt.Fprintf(e.stdout, "  %d: %s\n", er.ID, er.Reason)
	}
}
