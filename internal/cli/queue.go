package cli

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/sluicemq/sluice/internal/api"
)

func queueCommands() []*command {
	var (
		durable, autoDelete, ifEmpty, ifUnused bool
		args                                   = keyValues{}
		limit                                  int
	)
	return []*command{
		{
			usage: "queue ls",
			help:  "List the queues of the vhost with their depth by state.",
			run: func(e *env, _ []string) error {
				qs, err := e.client.Queues(e.ctx, e.vhost)
				if err != nil {
					return err
				}
				return e.out(qs, func() {
					rows := make([][]string, 0, len(qs))
					for _, q := range qs {
						rows = append(rows, []string{q.Name, strconv.Itoa(q.Messages), strconv.Itoa(q.MessagesReady),
							strconv.Itoa(q.MessagesUnacknowledged), strconv.Itoa(q.MessagesDelayed), strconv.Itoa(q.Consumers),
							strconv.FormatBool(q.Durable)})
					}
					e.table([]string{"NAME", "MESSAGES", "READY", "UNACKED", "DELAYED", "CONSUMERS", "DURABLE"}, rows)
				})
			},
		},
		{
			usage: "queue declare NAME",
			help:  "Declare a queue. Arguments with --arg x-max-length=100 (numbers and booleans typed).",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&durable, "durable", true, "survive a restart")
				fs.BoolVar(&autoDelete, "auto-delete", false, "delete when the last consumer leaves")
				fs.Var(args, "arg", "queue argument `name=value` (repeatable)")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one queue name")
				}
				d := api.QueueDeclare{Durable: &durable, AutoDelete: autoDelete, Arguments: map[string]any{}}
				for k, v := range args {
					d.Arguments[k] = typed(v)
				}
				if err := e.client.DeclareQueue(e.ctx, e.vhost, a[0], d); err != nil {
					return err
				}
				return e.done("queue %s declared", a[0])
			},
		},
		{
			usage: "queue delete NAME",
			help:  "Delete a queue and its messages.",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&ifEmpty, "if-empty", false, "only if it holds no messages")
				fs.BoolVar(&ifUnused, "if-unused", false, "only if it has no consumers")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one queue name")
				}
				if err := e.client.DeleteQueue(e.ctx, e.vhost, a[0], ifEmpty, ifUnused); err != nil {
					return err
				}
				return e.done("queue %s deleted", a[0])
			},
		},
		{
			usage: "queue purge NAME",
			help:  "Remove a queue's ready messages.",
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one queue name")
				}
				p, err := e.client.Purge(e.ctx, e.vhost, a[0])
				if err != nil {
					return err
				}
				return e.done("queue %s purged: %d messages removed", a[0], p.MessageCount)
			},
		},
		{
			usage: "queue peek NAME",
			help:  "Show the first messages of a queue without consuming them.",
			flags: func(fs *flag.FlagSet) { fs.IntVar(&limit, "limit", 10, "how many messages") },
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one queue name")
				}
				p, err := e.client.Browse(e.ctx, e.vhost, a[0], 0, limit, api.Filter{})
				if err != nil {
					return err
				}
				return e.out(p, func() { messageTable(e, p.Messages) })
			},
		},
	}
}

func exchangeCommands() []*command {
	var (
		kind                       string
		durable, autoDelete, inter bool
		key                        string
		args                       = keyValues{}
	)
	return []*command{
		{
			usage: "exchange ls",
			help:  "List the exchanges of the vhost.",
			run: func(e *env, _ []string) error {
				xs, err := e.client.Exchanges(e.ctx, e.vhost)
				if err != nil {
					return err
				}
				return e.out(xs, func() {
					rows := make([][]string, 0, len(xs))
					for _, x := range xs {
						name := x.Name
						if name == "" {
							name = "(default)"
						}
						rows = append(rows, []string{name, x.Type, strconv.FormatBool(x.Durable), strconv.FormatBool(x.Internal)})
					}
					e.table([]string{"NAME", "TYPE", "DURABLE", "INTERNAL"}, rows)
				})
			},
		},
		{
			usage: "exchange declare NAME",
			help:  "Declare an exchange.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&kind, "type", "direct", "direct, fanout, topic or headers")
				fs.BoolVar(&durable, "durable", true, "survive a restart")
				fs.BoolVar(&autoDelete, "auto-delete", false, "delete when its last binding goes")
				fs.BoolVar(&inter, "internal", false, "refuse publishes from clients")
				fs.Var(args, "arg", "exchange argument `name=value` (repeatable)")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one exchange name")
				}
				d := api.ExchangeDeclare{Type: kind, Durable: &durable, AutoDelete: autoDelete, Internal: inter, Arguments: map[string]any{}}
				for k, v := range args {
					d.Arguments[k] = typed(v)
				}
				if err := e.client.DeclareExchange(e.ctx, e.vhost, a[0], d); err != nil {
					return err
				}
				return e.done("exchange %s declared", a[0])
			},
		},
		{
			usage: "exchange delete NAME",
			help:  "Delete an exchange and its bindings.",
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one exchange name")
				}
				if err := e.client.DeleteExchange(e.ctx, e.vhost, a[0]); err != nil {
					return err
				}
				return e.done("exchange %s deleted", a[0])
			},
		},
		{
			usage: "bind EXCHANGE QUEUE",
			help:  "Bind a queue to an exchange.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&key, "key", "", "routing key")
				fs.Var(args, "arg", "binding argument `name=value` (repeatable)")
			},
			run: func(e *env, a []string) error {
				if len(a) != 2 {
					return usagef("want an exchange and a queue")
				}
				b := api.BindingCreate{RoutingKey: key, Arguments: map[string]any{}}
				for k, v := range args {
					b.Arguments[k] = typed(v)
				}
				if err := e.client.Bind(e.ctx, e.vhost, a[0], a[1], b); err != nil {
					return err
				}
				return e.done("queue %s bound to exchange %s with key %q", a[1], a[0], key)
			},
		},
	}
}

// messageTable prints browsed messages.
func messageTable(e *env, ms []api.Message) {
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		reason, source, died := "", "", ""
		if m.Death != nil {
			reason, source = m.Death.Reason, m.Death.Queue
			died = m.Death.Time.Format("2006-01-02 15:04:05")
		}
		body := m.Payload
		if m.PayloadEncoding == "base64" {
			body = "base64:" + body
		}
		rows = append(rows, []string{strconv.FormatUint(m.ID, 10), m.State, strconv.Itoa(m.DeliveryCount),
			reason, source, died, fmt.Sprintf("%d", m.PayloadBytes), truncate(body, 50)})
	}
	e.table([]string{"ID", "STATE", "DELIVERIES", "REASON", "SOURCE", "DIED", "BYTES", "BODY"}, rows)
}
