package amqpserver

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/broker"
)

// amqpError is a failure that closes a channel (channel exception) or the
// whole connection (connection exception) with a reply code and text.
type amqpError struct {
	code       uint16
	text       string // full reply text: "NOT_FOUND - no queue 'x' in vhost '/'"
	classID    uint16 // the method that failed, 0 when none
	methodID   uint16
	connection bool
}

// wireText is the reply text as sent: AMQP's short string holds at most
// 255 bytes, and a longer one (a reason quoting a long name) would make
// the close unencodable, so the client would get a dropped socket instead
// of the error. It is cut on a UTF-8 boundary; logs keep the whole text.
func (e *amqpError) wireText() string { return cutShortstr(e.text) }

// cutShortstr cuts s to at most 255 bytes without splitting a UTF-8
// sequence.
func cutShortstr(s string) string {
	const max = 255
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (e *amqpError) Error() string {
	kind := "channel"
	if e.connection {
		kind = "connection"
	}
	return fmt.Sprintf("%s exception %d %s", kind, e.code, e.text)
}

func newError(code uint16, m amqp.Method, format string, args ...any) *amqpError {
	e := &amqpError{code: code, connection: hardCode(code)}
	e.text = amqp.ReplyText(code)
	if format != "" {
		e.text += " - " + fmt.Sprintf(format, args...)
	}
	if m != nil {
		e.classID, e.methodID = m.ClassID(), m.MethodID()
	}
	return e
}

// hardCode reports whether a reply code is a connection exception in AMQP
// 0-9-1 (RabbitMQ's "hard errors").
func hardCode(code uint16) bool {
	switch code {
	case amqp.ContentTooLarge, amqp.NoRoute, amqp.NoConsumers,
		amqp.AccessRefused, amqp.NotFound, amqp.ResourceLocked, amqp.PreconditionFailed:
		return false
	}
	return true
}

// brokerCodes is the one table from broker error codes to AMQP reply codes.
// The reply code decides channel versus connection exception (hardCode).
var brokerCodes = [...]uint16{
	broker.Internal:           amqp.InternalError,
	broker.NotFound:           amqp.NotFound,
	broker.AccessRefused:      amqp.AccessRefused,
	broker.ResourceLocked:     amqp.ResourceLocked,
	broker.PreconditionFailed: amqp.PreconditionFailed,
	broker.InvalidArgument:    amqp.PreconditionFailed,
	broker.NotAllowed:         amqp.NotAllowed,
	broker.NotImplemented:     amqp.NotImplemented,
	broker.CommandInvalid:     amqp.CommandInvalid,
	broker.ResourceError:      amqp.ResourceError,
}

// fromBroker maps a broker error to the exception it causes.
func fromBroker(err error, m amqp.Method) *amqpError {
	code := uint16(amqp.InternalError)
	if c := broker.CodeOf(err); int(c) < len(brokerCodes) {
		code = brokerCodes[c]
	}
	reason := err.Error()
	var be *broker.Error
	if errors.As(err, &be) {
		reason = be.Reason
	}
	return newError(code, m, "%s", reason)
}

// fromCodec maps a decode failure: the codec's *ProtocolError carries the
// code to close the connection with; anything else is a frame error.
func fromCodec(err error) *amqpError {
	var pe *amqp.ProtocolError
	if errors.As(err, &pe) {
		e := newError(pe.Code, nil, "%s", pe.Reason)
		e.connection = true
		return e
	}
	e := newError(amqp.FrameError, nil, "%s", err.Error())
	e.connection = true
	return e
}
