// Package bench is Sluice's AMQP 0-9-1 load generator, run as `sluice bench`,
// in the spirit of rabbitmq-perf-test and `nats bench`. It talks to any AMQP
// 0-9-1 broker (Sluice or RabbitMQ) through rabbitmq/amqp091-go, only at the
// URL it is given.
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
// goroutine that publishes and one that reads its confirms, each consumer has
// one, one more waits for the publishers to tell the consumers how much to
// expect, and in human mode one prints progress every 5 s; an optional
// sampler reads the broker's RSS for the whole run. Run waits for all of them
// and closes every connection it opened before it returns. When a phase
// overruns its duration by more than stopGrace (a broker that stopped
// answering), Run closes its connections to unblock the workers. Config, Result and
// Histogram are plain values and not safe for concurrent mutation; Run itself
// may be called concurrently with different configurations.
package bench
