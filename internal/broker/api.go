package broker

// This file is the broker's surface as the front doors (amqpserver, later
// httpapi) use it. The bodies are placeholders to be replaced by the real
// implementation, which may move each method to the file of its concept.

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

// Config configures a Broker.
type Config struct {
	Logger *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
	// DefaultUser and DefaultPassword are created on first start; the
	// default user may log in from loopback only.
	DefaultUser     string
	DefaultPassword string
	// OutletWindow bounds no-ack deliveries handed to a channel's Outlet and
	// not yet reported written with Channel.Written.
	OutletWindow int
}

// DefaultConfig returns the configuration `sluice serve` starts with.
func DefaultConfig() Config {
	return Config{
		Logger:          slog.Default(),
		Now:             time.Now,
		DefaultUser:     "guest",
		DefaultPassword: "guest",
		OutletWindow:    2000,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error { return nil }

// Broker is the domain: vhosts, exchanges, queues, consumers.
type Broker struct{}

// Open recovers durable definitions and messages from st and starts the
// broker's goroutines. The broker does not own st: the caller closes it
// after Close.
func Open(cfg Config, st store.Store) (*Broker, error) {
	return nil, errorf(NotImplemented, "broker not implemented")
}

// Close stops the broker's goroutines, waiting for pending commits.
func (b *Broker) Close(ctx context.Context) error { return nil }

// Authenticate checks a user's password. A user restricted to loopback is
// refused when loopback is false. Failure is AccessRefused.
func (b *Broker) Authenticate(username, password string, loopback bool) error {
	return errorf(NotImplemented, "not implemented")
}

// ConnInfo describes a client connection for ownership and for listings.
type ConnInfo struct {
	Name             string // "127.0.0.1:50123 -> 127.0.0.1:5672"
	User             string
	VHost            string
	RemoteAddr       string
	ClientProperties message.Table
}

// Connect opens a session of one client connection with one vhost. It
// fails with NotAllowed when the vhost does not exist or the user may not
// use it.
func (b *Broker) Connect(info ConnInfo) (*Connection, error) {
	return nil, errorf(NotImplemented, "not implemented")
}

// Connection is one client connection: the owner of its exclusive queues
// and its channels.
type Connection struct{}

// Channel opens channel id of the connection. Deliveries and broker-sent
// cancellations go to out.
func (c *Connection) Channel(id uint16, out Outlet) *Channel { return nil }

// Close closes every channel (returning their unacked messages to their
// queues) and deletes the connection's exclusive queues.
func (c *Connection) Close() {}

// Outlet is where a channel's deliveries go: amqpserver's writer. Its
// methods are called from broker goroutines, possibly with broker locks
// held: they must not block and must not call back into the broker.
type Outlet interface {
	Deliver(d *Delivery)
	// ConsumerCancelled tells the client that the broker ended a consumer
	// (its queue was deleted): basic.cancel from the server.
	ConsumerCancelled(consumerTag string)
}

// Delivery is one message handed to a consumer or to basic.get.
type Delivery struct {
	ConsumerTag  string // empty for basic.get
	DeliveryTag  uint64
	Redelivered  bool
	Exchange     string
	RoutingKey   string
	Properties   message.Properties
	Body         []byte
	MessageCount uint32 // basic.get only: messages left in the queue
}

// ExchangeDecl is exchange.declare.
type ExchangeDecl struct {
	Name       string
	Type       string // direct, fanout, topic, headers
	Passive    bool
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       message.Table
}

// QueueDecl is queue.declare. An empty Name asks for a server-named queue.
type QueueDecl struct {
	Name       string
	Passive    bool
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       message.Table
}

// QueueStatus answers queue.declare.
type QueueStatus struct {
	Name      string
	Messages  uint32 // ready messages
	Consumers uint32
}

// Binding is a queue or exchange binding.
type Binding struct {
	Source      string // exchange
	Destination string // queue or exchange
	Key         string
	Args        message.Table
}

// ConsumeRequest is basic.consume. An empty Tag asks for a generated one.
type ConsumeRequest struct {
	Queue     string
	Tag       string
	NoLocal   bool
	NoAck     bool
	Exclusive bool
	Args      message.Table
}

// Channel is one AMQP channel's broker state: its consumers, its delivery
// tags and unacked messages, its prefetch limits, its tx or confirm mode.
// A channel's methods are called from one goroutine (the connection's
// reader); Outlet calls come from elsewhere.
type Channel struct{}

func (ch *Channel) DeclareExchange(d ExchangeDecl) error            { return notImpl() }
func (ch *Channel) DeleteExchange(name string, ifUnused bool) error { return notImpl() }
func (ch *Channel) BindExchange(b Binding) error                    { return notImpl() }
func (ch *Channel) UnbindExchange(b Binding) error                  { return notImpl() }
func (ch *Channel) DeclareQueue(d QueueDecl) (QueueStatus, error)   { return QueueStatus{}, notImpl() }
func (ch *Channel) BindQueue(b Binding) error                       { return notImpl() }
func (ch *Channel) UnbindQueue(b Binding) error                     { return notImpl() }
func (ch *Channel) PurgeQueue(name string) (uint32, error)          { return 0, notImpl() }
func (ch *Channel) DeleteQueue(name string, ifUnused, ifEmpty bool) (uint32, error) {
	return 0, notImpl()
}

// Qos sets prefetch limits: per consumer (global false, RabbitMQ's
// meaning: applies to consumers created after it) or shared by the channel.
func (ch *Channel) Qos(prefetchSize uint32, prefetchCount uint16, global bool) error {
	return notImpl()
}

// Consume starts a consumer and returns its tag.
func (ch *Channel) Consume(req ConsumeRequest) (string, error) { return "", notImpl() }

// Cancel ends a consumer. Its unacked messages stay unacked on the channel.
func (ch *Channel) Cancel(consumerTag string) error { return notImpl() }

// Get takes one message (basic.get); nil with no error means get-empty.
func (ch *Channel) Get(queue string, noAck bool) (*Delivery, error) { return nil, notImpl() }

// Ack acknowledges deliveries (multiple: every tag up to tag; tag 0 with
// multiple: all). An unknown tag is PreconditionFailed
// "unknown delivery tag 7".
func (ch *Channel) Ack(tag uint64, multiple bool) error { return notImpl() }

// Nack returns or discards deliveries (basic.nack; basic.reject is a Nack
// of one). Requeued messages go back to their original place in the queue
// and are delivered again with Redelivered set.
func (ch *Channel) Nack(tag uint64, multiple, requeue bool) error { return notImpl() }

// Recover redelivers (requeue false) or requeues (true) every unacked
// message of the channel.
func (ch *Channel) Recover(requeue bool) error { return notImpl() }

// Publish routes a message. done is called exactly once, from any
// goroutine, when the broker has taken the message: after its fsync for a
// persistent message routed to a durable queue, at once otherwise; a
// non-nil error means it could not be stored (the publisher gets
// basic.nack). routed is false when no queue took the message (the
// publisher gets basic.return when it set mandatory). A returned error is a
// channel or connection error (unknown exchange: NotFound) and done is not
// called.
func (ch *Channel) Publish(msg *message.Message, mandatory bool, done func(error)) (routed bool, err error) {
	return false, notImpl()
}

// Written reports that n no-ack deliveries handed to the Outlet reached the
// socket, returning their share of Config.OutletWindow.
func (ch *Channel) Written(n int) {}

// SetFlow pauses (false) or resumes deliveries to the channel's consumers
// (channel.flow from the client).
func (ch *Channel) SetFlow(active bool) {}

// SelectTx, CommitTx and RollbackTx are the tx class. Between commits a
// transactional channel's publishes, acks and nacks are held back.
func (ch *Channel) SelectTx() error   { return notImpl() }
func (ch *Channel) CommitTx() error   { return notImpl() }
func (ch *Channel) RollbackTx() error { return notImpl() }

// SelectConfirm notes confirm mode (a transactional channel cannot switch:
// PreconditionFailed).
func (ch *Channel) SelectConfirm() error { return notImpl() }

// Close cancels the channel's consumers and returns its unacked messages
// to their queues.
func (ch *Channel) Close() {}

func notImpl() error { return errorf(NotImplemented, "not implemented") }
