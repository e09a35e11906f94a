package broker

// This file holds the broker's configuration and the value types of its
// surface as the front doors (amqpserver, later httpapi) use it. The
// methods live with their concepts: broker.go, connection.go, channel.go,
// consumer.go, tx.go.

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
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
	// BodyCacheBytes bounds the records of freshly published messages kept
	// in memory until their first delivery (0: 64 MiB). A backlog beyond
	// it is read back from the store.
	BodyCacheBytes int
	// NoPoisonQueue turns off the poison queue: a message past its
	// x-delivery-limit on a queue without a dead-letter exchange is then
	// dropped (as RabbitMQ does) instead of moved to sluice.dead-letters.
	NoPoisonQueue bool
	// Cluster replicates quorum queues (quorum.go); nil for a single node.
	// The store the broker is opened on must then be the cluster's.
	Cluster Cluster
	// Node is this node's name in the cluster: the placement recorded
	// with the classic queues declared here (metasync.go).
	Node string
	// PasswordCost is the bcrypt cost of new passwords
	// (access.DefaultCost; tests lower it to save time).
	PasswordCost int
	// LoginThrottle slows down sources that fail to log in.
	LoginThrottle access.ThrottleConfig
}

// DefaultConfig returns the configuration `sluice serve` starts with.
func DefaultConfig() Config {
	return Config{
		Logger:          slog.Default(),
		Now:             time.Now,
		DefaultUser:     "guest",
		DefaultPassword: "guest",
		OutletWindow:    2000,
		BodyCacheBytes:  defaultCacheBytes,
		PasswordCost:    access.DefaultCost,
		LoginThrottle:   access.DefaultThrottleConfig(),
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.OutletWindow < 1 {
		return fmt.Errorf("broker config: OutletWindow %d, want at least 1", c.OutletWindow)
	}
	if c.BodyCacheBytes < 0 {
		return fmt.Errorf("broker config: BodyCacheBytes %d is negative", c.BodyCacheBytes)
	}
	if c.PasswordCost < access.MinCost || c.PasswordCost > access.MaxCost {
		return fmt.Errorf("broker config: PasswordCost %d, want %d to %d", c.PasswordCost, access.MinCost, access.MaxCost)
	}
	if err := c.LoginThrottle.Validate(); err != nil {
		return fmt.Errorf("broker config: %w", err)
	}
	if c.DefaultUser != "" && c.DefaultPassword == "" {
		return fmt.Errorf("broker config: default user %q has an empty password", c.DefaultUser)
	}
	return nil
}

// ConnInfo describes a client connection for ownership and for listings.
type ConnInfo struct {
	Name             string // "127.0.0.1:50123 -> 127.0.0.1:5672"
	User             string
	VHost            string
	RemoteAddr       string
	ClientProperties message.Table
}

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
	ConsumerTag string // empty for basic.get
	DeliveryTag uint64
	Redelivered bool
	Exchange    string
	RoutingKey  string
	// RawProperties, when not nil, are the message's properties encoded as
	// stored (what the publisher sent), to be written as they are, and
	// Properties is zero; else Properties are the properties to send
	// (the broker changed them). Props gives them decoded either way.
	RawProperties []byte
	Properties    message.Properties
	Body          []byte
	MessageCount  uint32 // basic.get only: messages left in the queue

	seq uint64 // the message's seq in its queue (remote_follower.go)
}

// Props returns the delivery's properties, decoding RawProperties when
// set. An error means the stored bytes are damaged.
func (d *Delivery) Props() (message.Properties, error) {
	if d.RawProperties == nil {
		return d.Properties, nil
	}
	return records.DecodeProperties(d.RawProperties)
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
