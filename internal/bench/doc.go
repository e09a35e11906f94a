// Package bench is Sluice's AMQP 0-9-1 load generator, run as `sluice bench`,
// in the spirit of rabbitmq-perf-test and `nats bench`. It talks to any AMQP
// 0-9-1 broker (Sluice or RabbitMQ), only at the URL it is given. Consumers
// and setup use rabbitmq/amqp091-go; publishers use the client --client
// names (Config.Client):
//   - amqp091-go (the default): rabbitmq/amqp091-go, which writes and
//     flushes every publish with its own write system call. On a 2-core VM
//     one such publisher spends about 17 µs of wall time per 1 KiB publish
//     (7.5 µs in Go, 9.5 µs in the write), so it cannot exceed about
//     55-59k msg/s even against an infinitely fast broker, and it takes that
//     CPU from the broker it measures.
//   - batching: a minimal AMQP 0-9-1 publisher on Sluice's own codec
//     (internal/amqp), in batching.go. It buffers publishes and writes only
//     when it must: when no confirm window token is free (it flushes, then
//     waits for one), when 64 KiB are buffered, or when the phase ends. No
//     timers and no added latency: a burst of confirms becomes a burst of
//     publishes in one system call, as a pipelining client sends them. It
//     counts confirms, nacks and latencies exactly as the amqp091-go
//     publisher does. It speaks PLAIN only and no heartbeats.
//
// Figures from the two clients measure different things once the client is
// the bottleneck; a comparison of brokers (Sluice against RabbitMQ) should
// use the same client for both and say which (the summary's header and the
// JSON's "client" field name it).
//
// Scenarios:
//   - publish: publishers with publisher confirms (a bounded number
//     outstanding) into a durable queue the bench declares, optionally with
//     consumers draining it at the same time;
//   - backlog: fill a queue with a fixed number of messages, report the fill
//     rate and the broker's resident memory (from /proc/PID/status when a pid
//     is given), then drain it and report the drain rate;
//   - churn: consumers nack every message a fixed number of times with
//     requeue before they ack it.
//
// Every message body starts with the time it was sent (nanoseconds since the
// run began, on this process's monotonic clock), so the latency from publish
// to confirm and from publish to delivery is measured in one process.
//
// Goroutines: Run owns all of them. In each phase, each publisher has one
// goroutine that publishes and one that reads its confirms (amqp091-go's
// own connection reader besides, with that client), each consumer has
// one, one more waits for the publishers to tell the consumers how much to
// expect, and in human mode one prints progress every 5 s; an optional
// sampler reads the broker's RSS for the whole run. Run waits for all of them
// and closes every connection it opened before it returns. When a phase
// overruns its duration by more than stopGrace (a broker that stopped
// answering), Run closes its connections to unblock the workers. Config, Result and
// Histogram are plain values and not safe for concurrent mutation; Run itself
// may be called concurrently with different configurations.
package bench
