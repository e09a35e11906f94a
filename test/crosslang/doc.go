// Package crosslang checks Sluice with AMQP clients of other languages: the
// smoke scripts smoke.py (pika, Debian's python3-pika) and smoke.js (npm's
// amqplib, pinned in package-lock.json) each declare, bind, publish with
// confirms, consume, ack, nack with requeue, basic.get, receive a
// basic.return and close, and exit non-zero on any difference from RabbitMQ.
// prefetch.py (pika) checks a channel-wide basic.qos: a full limit holds the
// channel's no-ack consumers, and freed credit is shared among the queues.
//
// The runner (crosslang_test.go, build tag integration) starts Sluice with
// internal/sluicetest and runs both scripts against it:
//
//	make deps                                     # python3-pika, npm ci
//	go test -tags integration -count=1 -v ./test/crosslang/
//
// By hand against any broker: AMQP_URL=amqp://guest:guest@127.0.0.1:5681/
// python3 smoke.py (or node smoke.js). SLUICE_TEST_AMQP_URL points the Go
// runner at another broker instead of starting Sluice.
//
// Outside CI a missing python3 or node skips that script with a message; with
// CI set, it fails. The package has no non-test code.
package crosslang
