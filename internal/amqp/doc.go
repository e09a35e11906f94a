// Package amqp is Sluice's AMQP 0-9-1 wire codec: frames, the protocol
// header, every method of the spec (generated from RabbitMQ's JSON spec into
// methods_gen.go) and content headers. Field tables and properties are
// encoded by package message, which the broker shares for its records.
//
// Decoding never panics on malformed input; every failure is a
// *ProtocolError carrying the reply code a server closes the connection with.
// Network errors and io.EOF from the underlying reader pass through as they
// are.
//
// The package starts no goroutines and does no I/O of its own beyond the
// reader and writer it is given. Functions without a receiver are safe for
// concurrent use; a Reader or Writer belongs to one goroutine at a time.
package amqp

//go:generate go run ./internal/gen -spec ../../../shared/spec/amqp-rabbitmq-0.9.1.json -out methods_gen.go
