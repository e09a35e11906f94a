package amqpserver

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
)

// Config configures a Server.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on.
	Addr   string
	Logger *slog.Logger
	// ChannelMax is the highest channel id a client may use (tune's
	// channel-max). A client may negotiate it down, never up.
	ChannelMax uint16
	// FrameMax is the largest frame the server accepts and offers in
	// connection.tune; a client may negotiate it down to 4096.
	FrameMax uint32
	// Heartbeat is the interval the server proposes; the client's tune-ok
	// value wins. Zero disables heartbeats unless the client asks for them.
	Heartbeat time.Duration
	// MaxMessageSize bounds a published message's body; a larger one is
	// refused with 406 PRECONDITION_FAILED (RabbitMQ's max_message_size).
	MaxMessageSize uint64
	// HandshakeTimeout bounds the time from accepting a socket to
	// connection.open.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds the wait for connection.close-ok after the server
	// sent connection.close.
	CloseTimeout time.Duration
	// MaxOutputBytes bounds the bytes a connection's writer holds for its
	// client. When they reach it, the connection's consumers get no more
	// deliveries (the messages stay ready for other consumers) and its
	// socket is not read until half of it has drained.
	MaxOutputBytes int
	// WriteTimeout closes a connection whose client takes less than 64
	// KiB (one write of its buffer) in this long while the server has
	// something to send: at most this long after its socket last took a
	// byte. Heartbeats from the client do not keep it open.
	WriteTimeout time.Duration
	// BodyMemory bounds the body bytes received of publishes not complete
	// yet, over all connections (0: no bound): past it, connections in the
	// middle of a body are not read until it drops below. sluice serve sets
	// it to the memory limit, so unfinished bodies count against it
	// before the memory alarm's next look.
	BodyMemory uint64
	// MemoryPoke, when set, is called each time the body bytes in
	// progress over all connections grow by another sixteenth of
	// BodyMemory (16 MiB without one), from a connection's reader; it must
	// not block. sluice serve pokes the memory alarm with it: bodies arrive
	// at network speed, faster than the alarm's timer looks.
	MemoryPoke func()
	// Product is the product name reported in server properties.
	Product string
	// Version is the product version reported in server properties.
	Version string
	// ClusterName is reported in server properties.
	ClusterName string
	// MaxConnections bounds the open connections of the whole server
	// (0: no bound); one more is refused at connection.open with 530
	// NOT_ALLOWED, as RabbitMQ's connection_max.
	MaxConnections int
}

// DefaultConfig returns the configuration `sluice serve` starts with.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:5672",
		Logger:           slog.Default(),
		ChannelMax:       2047,
		FrameMax:         131072,
		Heartbeat:        60 * time.Second,
		MaxMessageSize:   128 << 20,
		HandshakeTimeout: 10 * time.Second,
		CloseTimeout:     3 * time.Second,
		MaxOutputBytes:   1 << 20,
		WriteTimeout:     30 * time.Second,
		Product:          "Sluice",
		Version:          "0.1.0",
		ClusterName:      "sluice",
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Logger == nil {
		errs = append(errs, errors.New("logger is nil"))
	}
	if c.ChannelMax == 0 {
		errs = append(errs, errors.New("channel max is 0"))
	}
	if c.FrameMax < amqp.FrameMinSize {
		errs = append(errs, fmt.Errorf("frame max %d is below the minimum %d", c.FrameMax, amqp.FrameMinSize))
	}
	if c.Heartbeat < 0 || c.Heartbeat%time.Second != 0 || c.Heartbeat > 65535*time.Second {
		errs = append(errs, fmt.Errorf("heartbeat %v is not a whole number of seconds in 0..65535", c.Heartbeat))
	}
	if c.MaxMessageSize == 0 {
		errs = append(errs, errors.New("max message size is 0"))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, errors.New("handshake timeout must be positive"))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("max connections %d is negative", c.MaxConnections))
	}
	if c.CloseTimeout <= 0 {
		errs = append(errs, errors.New("close timeout must be positive"))
	}
	if c.MaxOutputBytes <= 0 {
		errs = append(errs, errors.New("max output bytes must be positive"))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("write timeout must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("amqpserver config: %w", err)
	}
	return nil
}
