package bench

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// Scenario names accepted by Config.Scenario.
const (
	ScenarioPublish = "publish"
	ScenarioBacklog = "backlog"
	ScenarioChurn   = "churn"
	// ScenarioRequeue fills the queue like backlog, then drains it with
	// consumers that nack every message Requeues times with requeue before
	// they ack it: the redelivery path on its own, without publishers.
	ScenarioRequeue = "requeue"
)

// Client names accepted by Config.Client: the library the publishers use.
const (
	// ClientAMQP091 publishes through rabbitmq/amqp091-go, one write system
	// call per message.
	ClientAMQP091 = "amqp091-go"
	// ClientBatching publishes through the bench's own pipelining client,
	// which writes only when it must (see batching.go).
	ClientBatching = "batching"
)

// minMessageSize is the smallest body that holds the send timestamp and the
// message id the bench writes at the start of every body.
const minMessageSize = 16

// maxHeaders bounds Config.Headers.
const maxHeaders = 64

// Limits that keep a mistyped flag from turning into an unbounded run.
const (
	maxWorkers     = 1000
	maxMessageSize = 128 << 20
	maxOutstanding = 1 << 20
)

// Config is one bench run. Build it with DefaultConfig and change fields (or
// register it with Flags), then call Validate.
type Config struct {
	// URL is the broker, amqp:// or amqps://.
	URL string
	// TLSCA (PEM; empty: the system's roots) verifies an amqps:// broker;
	// TLSCert and TLSKey are a client certificate for mutual TLS;
	// TLSInsecure skips verification.
	TLSCA, TLSCert, TLSKey string
	TLSInsecure            bool
	// Scenario is ScenarioPublish, ScenarioBacklog or ScenarioChurn.
	Scenario string
	// Queue is the durable queue the bench declares and, unless Keep, deletes
	// at the end. It must be empty when the run starts.
	Queue string
	// QueueType, when set, is sent as the x-queue-type argument.
	QueueType string
	// Keep leaves the queue in place at the end.
	Keep bool
	// Client is the publishers' client, ClientAMQP091 or ClientBatching.
	// Consumers always use amqp091-go.
	Client string

	// Publishers is the number of publishing connections.
	Publishers int
	// Consumers is the number of consuming connections. publish runs
	// without consumers when it is 0; backlog and churn use at least 1.
	Consumers int
	// MessageSize is the body size in bytes (at least 16).
	MessageSize int
	// Persistent publishes with delivery-mode 2.
	Persistent bool
	// Headers is how many headers (string values of 16 bytes) each message
	// carries, as a traced or header-routed message would (amqp091-go
	// client only).
	Headers int
	// Confirms is the most unconfirmed messages a publisher may have
	// outstanding; 0 publishes without confirm mode.
	Confirms int
	// Prefetch is each consumer's basic.qos prefetch count (0: unlimited).
	Prefetch int
	// MultiAck acks with multiple=true once this many deliveries are
	// waiting to be acked; 0 or 1 acks each delivery.
	MultiAck int
	// Requeues is how many times the churn (and requeue) consumers nack
	// each message with requeue before they ack it.
	Requeues int
	// Fanout, when above 1, makes publish publish to a fanout exchange
	// (Queue + ".fanout") bound to Fanout queues (Queue + ".1" …), each
	// consumed by its own consumers (at least one per queue).
	Fanout int
	// Rate, when positive, paces the publishers to this many messages per
	// second in all (a steady load for latency), instead of as fast as the
	// confirm window allows.
	Rate int

	// Messages bounds the messages published in publish and churn, summed
	// over publishers; 0 leaves only the time bound.
	Messages int
	// Backlog is the number of messages backlog fills the queue with.
	Backlog int
	// Duration bounds the run; in backlog it bounds the fill and the drain
	// each.
	Duration time.Duration

	// PID, when not 0, is the broker's process id on this machine; the
	// bench then reports its resident memory from /proc/PID/status.
	PID int
	// JSON writes the result as JSON instead of the human summary.
	JSON bool
}

// DefaultConfig returns the configuration of a plain `sluice bench`: one
// persistent publisher of 1 KiB messages with 256 confirms outstanding, for
// 10 seconds, against a broker on localhost.
func DefaultConfig() Config {
	return Config{
		URL:         "amqp://guest:guest@127.0.0.1:5672/",
		Scenario:    ScenarioPublish,
		Queue:       "sluice-bench",
		Client:      ClientAMQP091,
		Publishers:  1,
		Consumers:   0,
		MessageSize: 1024,
		Persistent:  true,
		Confirms:    256,
		Prefetch:    256,
		MultiAck:    0,
		Requeues:    3,
		Messages:    0,
		Backlog:     1_000_000,
		Duration:    10 * time.Second,
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if u, err := url.Parse(c.URL); err != nil {
		bad("url: %w", err)
	} else if u.Scheme != "amqp" && u.Scheme != "amqps" {
		bad("url %q: scheme must be amqp or amqps", redactURL(c.URL))
	} else if u.Host == "" {
		bad("url %q: no host", redactURL(c.URL))
	}
	switch c.Scenario {
	case ScenarioPublish, ScenarioBacklog, ScenarioChurn, ScenarioRequeue:
	default:
		bad("scenario %q: want %s, %s, %s or %s", c.Scenario, ScenarioPublish, ScenarioBacklog, ScenarioChurn, ScenarioRequeue)
	}
	switch c.Client {
	case ClientAMQP091, ClientBatching:
	default:
		bad("client %q: want %s or %s", c.Client, ClientAMQP091, ClientBatching)
	}
	if c.Queue == "" || len(c.Queue) > 255 {
		bad("queue name must be 1 to 255 bytes")
	}
	if c.Publishers < 1 || c.Publishers > maxWorkers {
		bad("publishers %d: want 1 to %d", c.Publishers, maxWorkers)
	}
	if c.Consumers < 0 || c.Consumers > maxWorkers {
		bad("consumers %d: want 0 to %d", c.Consumers, maxWorkers)
	}
	if c.MessageSize < minMessageSize || c.MessageSize > maxMessageSize {
		bad("message size %d: want %d to %d bytes", c.MessageSize, minMessageSize, maxMessageSize)
	}
	if c.Headers < 0 || c.Headers > maxHeaders {
		bad("headers %d: want 0 to %d", c.Headers, maxHeaders)
	}
	if c.Headers > 0 && c.Client != ClientAMQP091 {
		bad("headers: only with the %s client", ClientAMQP091)
	}
	if c.Confirms < 0 || c.Confirms > maxOutstanding {
		bad("confirms %d: want 0 (no confirm mode) to %d", c.Confirms, maxOutstanding)
	}
	if c.Prefetch < 0 || c.Prefetch > 65535 {
		bad("prefetch %d: want 0 to 65535", c.Prefetch)
	}
	if c.MultiAck < 0 {
		bad("multi-ack %d: must not be negative", c.MultiAck)
	} else if c.Prefetch > 0 && c.MultiAck > c.Prefetch {
		// The consumer would wait for deliveries the prefetch window
		// never lets through.
		bad("multi-ack %d exceeds prefetch %d", c.MultiAck, c.Prefetch)
	}
	if c.Requeues < 0 {
		bad("requeues %d: must not be negative", c.Requeues)
	}
	if (c.Scenario == ScenarioChurn || c.Scenario == ScenarioRequeue) && c.Requeues < 1 {
		bad("%s needs requeues of at least 1", c.Scenario)
	}
	if c.Fanout < 0 || c.Fanout > maxWorkers {
		bad("fanout %d: want 0 to %d", c.Fanout, maxWorkers)
	} else if c.Fanout > 1 && c.Scenario != ScenarioPublish {
		bad("fanout works with scenario %s only", ScenarioPublish)
	}
	if c.Rate < 0 {
		bad("rate %d: must not be negative", c.Rate)
	}
	if c.Messages < 0 {
		bad("messages %d: must not be negative", c.Messages)
	}
	if (c.Scenario == ScenarioBacklog || c.Scenario == ScenarioRequeue) && c.Backlog < 1 {
		bad("backlog %d: must be at least 1", c.Backlog)
	}
	if c.Duration <= 0 {
		bad("duration %v: must be positive", c.Duration)
	}
	if c.PID < 0 {
		bad("pid %d: must not be negative", c.PID)
	}
	return errors.Join(errs...)
}

// consumers is the number of consumers the scenario runs.
func (c Config) consumers() int {
	if c.Scenario != ScenarioPublish && c.Consumers < 1 {
		return 1
	}
	if c.Fanout > 1 && c.Consumers > 0 && c.Consumers < c.Fanout {
		return c.Fanout
	}
	return c.Consumers
}

// queues returns the queues the bench declares: Queue, or the fanout's.
func (c Config) queues() []string {
	if c.Fanout <= 1 {
		return []string{c.Queue}
	}
	qs := make([]string, c.Fanout)
	for i := range qs {
		qs[i] = fmt.Sprintf("%s.%d", c.Queue, i+1)
	}
	return qs
}

// exchange is where publishers publish: the fanout exchange, or the
// default exchange ("") with Queue as the routing key.
func (c Config) exchange() (exchange, key string) {
	if c.Fanout <= 1 {
		return "", c.Queue
	}
	return c.Queue + ".fanout", ""
}

// Flags registers c's fields as flags on fs, with c's current values as the
// defaults; parsing fs then fills c.
func Flags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.URL, "url", c.URL, "broker `URL` (amqps:// for TLS)")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "amqps: CA certificate `file` (PEM) that signed the broker's certificate")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "amqps: client certificate `file` (PEM), for mutual TLS")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "amqps: client key `file` (PEM)")
	fs.BoolVar(&c.TLSInsecure, "tls-insecure", c.TLSInsecure, "amqps: do not verify the broker's certificate")
	fs.StringVar(&c.Scenario, "scenario", c.Scenario, "publish, backlog, churn or requeue")
	fs.StringVar(&c.Queue, "queue", c.Queue, "durable queue the bench declares (must be empty)")
	fs.StringVar(&c.QueueType, "queue-type", c.QueueType, "x-queue-type of the queue (classic, quorum; empty: broker default)")
	fs.StringVar(&c.Client, "client", c.Client, "publishers' client: amqp091-go, or batching (the bench's own, which writes many publishes per system call)")
	fs.BoolVar(&c.Keep, "keep", c.Keep, "keep the queue at the end instead of deleting it")
	fs.IntVar(&c.Publishers, "publishers", c.Publishers, "publishing connections")
	fs.IntVar(&c.Consumers, "consumers", c.Consumers, "consuming connections (backlog and churn use at least 1)")
	fs.IntVar(&c.MessageSize, "size", c.MessageSize, "message body size in `bytes` (at least 16)")
	fs.BoolVar(&c.Persistent, "persistent", c.Persistent, "publish persistent messages (delivery-mode 2)")
	fs.IntVar(&c.Headers, "headers", c.Headers, "headers (16-byte strings) on each message (amqp091-go client)")
	fs.IntVar(&c.Confirms, "confirms", c.Confirms, "unconfirmed messages outstanding per publisher (0: no confirm mode)")
	fs.IntVar(&c.Prefetch, "prefetch", c.Prefetch, "consumer prefetch count (0: unlimited)")
	fs.IntVar(&c.MultiAck, "multi-ack", c.MultiAck, "ack with multiple=true every `N` deliveries (0 or 1: ack each)")
	fs.IntVar(&c.Requeues, "requeues", c.Requeues, "churn and requeue: nacks with requeue per message before its ack")
	fs.IntVar(&c.Fanout, "fanout", c.Fanout, "publish: publish to a fanout exchange bound to `N` queues, each with its own consumer")
	fs.IntVar(&c.Rate, "rate", c.Rate, "publish at a steady `N` messages/s in all (0: as fast as confirms allow)")
	fs.IntVar(&c.Messages, "messages", c.Messages, "publish and churn: messages to publish in all (0: only --duration bounds the run)")
	fs.IntVar(&c.Backlog, "backlog", c.Backlog, "backlog and requeue: messages to fill the queue with")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "time bound of the run (backlog: of the fill and of the drain each)")
	fs.IntVar(&c.PID, "pid", c.PID, "broker process id on this machine, to report its resident memory")
	fs.BoolVar(&c.JSON, "json", c.JSON, "write the result as JSON")
}

// redactURL hides the password of u for printing.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	return p.Redacted()
}
