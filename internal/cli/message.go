package cli

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluicemq/sluice/internal/api"
)

func messageCommands() []*command {
	var (
		exchange, key, body, file, contentType, messageID string
		delay                                             time.Duration
		persistent                                        bool
		headers                                           = keyValues{}
		count                                             int
		requeue                                           bool
	)
	return []*command{
		{
			usage: "publish",
			help: "Publish a message. The body comes from --body, --file, or stdin.\n" +
				"Example: echo '{\"id\":1}' | sluice publish --routing-key orders --content-type application/json --delay 30s",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&exchange, "exchange", "", "exchange (default: the default exchange)")
				fs.StringVar(&key, "routing-key", "", "routing key (for the default exchange: the queue)")
				fs.StringVar(&body, "body", "", "message body")
				fs.StringVar(&file, "file", "", "read the body from `path` (- for stdin)")
				fs.StringVar(&contentType, "content-type", "", "content type property")
				fs.StringVar(&messageID, "message-id", "", "message id property")
				fs.BoolVar(&persistent, "persistent", true, "delivery mode 2 (survives a restart)")
				fs.DurationVar(&delay, "delay", 0, "deliver after this delay (x-delay), e.g. 30s")
				fs.Var(headers, "header", "header `name=value` (repeatable; numbers and booleans typed)")
			},
			run: func(e *env, a []string) error {
				if len(a) != 0 {
					return usagef("unexpected argument %q", a[0])
				}
				data, err := readBody(e, body, file)
				if err != nil {
					return err
				}
				p := api.Publish{RoutingKey: key, Delay: delay.Milliseconds(),
					Properties: api.Properties{ContentType: contentType, MessageID: messageID}}
				if persistent {
					p.Properties.DeliveryMode = 2
				}
				if len(headers) > 0 {
					p.Properties.Headers = map[string]any{}
					for k, v := range headers {
						p.Properties.Headers[k] = typed(v)
					}
				}
				if utf8.Valid(data) {
					p.Payload, p.PayloadEncoding = string(data), "string"
				} else {
					p.Payload, p.PayloadEncoding = base64.StdEncoding.EncodeToString(data), "base64"
				}
				r, err := e.client.Publish(e.ctx, e.vhost, exchange, p)
				if err != nil {
					return err
				}
				if !r.Routed {
					if e.json {
						return e.printJSON(r)
					}
					fmt.Fprintln(e.stderr, "warning: the message was not routed to any queue")
					return nil
				}
				return e.done("published %d bytes", len(data))
			},
		},
		{
			usage: "consume QUEUE",
			help:  "Take messages off a queue (acknowledged, so they are gone) and print them.",
			flags: func(fs *flag.FlagSet) {
				fs.IntVar(&count, "count", 1, "how many messages at most")
				fs.BoolVar(&requeue, "requeue", false, "put them back (like peek, but they count as redelivered)")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one queue name")
				}
				mode := "ack_requeue_false"
				if requeue {
					mode = "ack_requeue_true"
				}
				ms, err := e.client.Get(e.ctx, e.vhost, a[0], api.Get{Count: count, AckMode: mode, Encoding: "auto"})
				if err != nil {
					return err
				}
				return e.out(ms, func() {
					rows := make([][]string, 0, len(ms))
					for _, m := range ms {
						rows = append(rows, []string{m.RoutingKey, strconv.FormatBool(m.Redelivered),
							strconv.Itoa(m.PayloadBytes), truncate(m.Payload, 60)})
					}
					e.table([]string{"ROUTING KEY", "REDELIVERED", "BYTES", "BODY"}, rows)
				})
			},
		},
	}
}

// readBody returns the message body from --body, --file or stdin.
func readBody(e *env, body, file string) ([]byte, error) {
	switch {
	case body != "" && file != "":
		return nil, usagef("give --body or --file, not both")
	case body != "":
		return []byte(body), nil
	case file == "" || file == "-":
		return io.ReadAll(e.stdin)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}
