// Package amqpserver is Sluice's AMQP 0-9-1 front door: it accepts TCP
// connections, runs the protocol handshake, heartbeats, channels, content
// assembly and publisher confirms, and maps every AMQP method onto the
// broker (internal/broker), and every broker error onto an AMQP reply code
// in one table (errors.go).
//
// Goroutines: Serve runs the accept loop on its caller's goroutine. Each
// connection has two goroutines owned by the Server: a reader that decodes
// frames and dispatches methods (it owns the connection's channels and
// calls the broker), and a writer that owns the buffered amqp.Writer, is fed
// by an unbounded queue (deliveries are bounded by the broker's prefetch
// and outlet window), flushes when its queue drains and sends heartbeats.
// Close stops the accept loops, closes every connection with
// 320 CONNECTION_FORCED and waits for all of these goroutines.
//
// A Server is safe for concurrent use; its connections and channels are
// internal and each has one written synchronization strategy next to its
// fields.
package amqpserver
