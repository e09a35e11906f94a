package broker

import (
	"errors"
	"fmt"
)

// Code is the closed set of failure kinds the broker reports. Each front
// door maps a Code once: amqpserver to an AMQP reply code and a channel or
// connection exception, httpapi to an HTTP status.
type Code uint8

const (
	Internal           Code = iota // AMQP 541 INTERNAL_ERROR (connection), HTTP 500
	NotFound                       // AMQP 404 (channel), HTTP 404
	AccessRefused                  // AMQP 403 (channel), HTTP 403
	ResourceLocked                 // AMQP 405 (channel), HTTP 409
	PreconditionFailed             // AMQP 406 (channel), HTTP 409
	InvalidArgument                // AMQP 406 (channel), HTTP 400
	NotAllowed                     // AMQP 530 (connection), HTTP 403
	NotImplemented                 // AMQP 540 (connection), HTTP 501
	CommandInvalid                 // AMQP 503 (connection), HTTP 400
	ResourceError                  // AMQP 506 (connection), HTTP 503
)

var codeNames = [...]string{
	Internal:           "internal",
	NotFound:           "not found",
	AccessRefused:      "access refused",
	ResourceLocked:     "resource locked",
	PreconditionFailed: "precondition failed",
	InvalidArgument:    "invalid argument",
	NotAllowed:         "not allowed",
	NotImplemented:     "not implemented",
	CommandInvalid:     "command invalid",
	ResourceError:      "resource error",
}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", c)
}

// Error is a broker failure with its Code and a reason a person understands,
// written as RabbitMQ words it without the code prefix:
// "no queue 'orders' in vhost '/'".
type Error struct {
	Code   Code
	Reason string
	Err    error // underlying cause, if any
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error.
func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// internalError wraps an unexpected failure (a store error, say). A store
// fence (fence.go) keeps its ResourceError: the client should hear that the
// broker refuses writes, not that it broke.
func internalError(op string, err error) *Error {
	code := Internal
	if isFence(err) {
		code = ResourceError
	}
	return &Error{Code: code, Reason: op + ": " + err.Error(), Err: err}
}

// CodeOf returns the Code of err: that of the *Error in its chain, or
// Internal for any other non-nil error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
