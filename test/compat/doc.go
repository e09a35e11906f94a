// Package compat runs the integration suite that ships inside the AMQP client
// github.com/rabbitmq/amqp091-go (its files tagged `integration`, which read
// AMQP_URL) against a Sluice broker, as a check that Sluice behaves as RabbitMQ
// does for that client.
//
// The runner (compat_test.go, build tag integration) starts Sluice with
// internal/sluicetest, copies the module's source from the Go module cache
// into a temporary directory, runs `go test -tags integration -json` there and
// judges the result: every test must pass except those on a documented skip
// list (tests that need RabbitMQ's management plugin on localhost:15672 or
// rabbitmqctl). It prints pass/skip/fail counts.
//
//	make deps                                     # caches the module
//	go test -tags integration -count=1 -v ./test/compat/
//
// SLUICE_TEST_AMQP_URL points the suite at another broker instead of starting
// Sluice (for example a RabbitMQ from scripts/rabbitmq-local.sh), and
// SLUICE_COMPAT_RUN_ALL=1 runs the skip list too (for a RabbitMQ with its
// management plugin on localhost:15672 and RABBITMQ_RABBITMQCTL_PATH set).
//
// The package has no non-test code and starts no goroutines of its own
// beyond the test broker's, which sluicetest owns.
package compat
