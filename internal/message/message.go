// Package message is the message model every layer shares: the fourteen basic
// properties, header tables of AMQP 0-9-1 field values, and their one binary
// encoding.
//
// The encoding is AMQP 0-9-1's content-header and field-table format (with
// RabbitMQ's field type letters). The wire codec (internal/amqp) uses it for
// frames, and the broker uses it for its stored records, so a message's
// properties round-trip byte for byte from publisher to disk to consumer and
// there is one encoder to fuzz. The package has no state and is safe for
// concurrent use.
package message

import "time"

// Table is an AMQP field table. Its values are nil or one of the Go types
// below, each read from and written as one AMQP field type (RabbitMQ's letters):
//
//	bool 't'     int8 'b'     uint8 'B'    int16 's'    uint16 'u'
//	int32 'I'    uint32 'i'   int64 'l'    float32 'f'  float64 'd'
//	Decimal 'D'  string 'S'   []byte 'x'   []any 'A'    time.Time 'T'
//	Table 'F'    nil 'V'
//
// Arrays ([]any) hold the same value types. Decoding yields exactly these
// types, so decode-then-encode reproduces the input bytes.
type Table map[string]any

// Decimal is AMQP's decimal-value: Value × 10^-Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// Property flags, as the content header's property-flags word numbers them.
// Flags on Properties records which properties are present, so that an empty
// string that was sent stays distinct from one that was not.
const (
	FlagContentType     uint16 = 1 << 15
	FlagContentEncoding uint16 = 1 << 14
	FlagHeaders         uint16 = 1 << 13
	FlagDeliveryMode    uint16 = 1 << 12
	FlagPriority        uint16 = 1 << 11
	FlagCorrelationID   uint16 = 1 << 10
	FlagReplyTo         uint16 = 1 << 9
	FlagExpiration      uint16 = 1 << 8
	FlagMessageID       uint16 = 1 << 7
	FlagTimestamp       uint16 = 1 << 6
	FlagType            uint16 = 1 << 5
	FlagUserID          uint16 = 1 << 4
	FlagAppID           uint16 = 1 << 3
	FlagClusterID       uint16 = 1 << 2
)

// Persistent is the delivery mode of a message that must survive a restart.
const Persistent uint8 = 2

// Properties are the basic class's content-header properties.
type Properties struct {
	Flags           uint16 // which fields below are present (Flag… bits)
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       time.Time // whole seconds, UTC
	Type            string
	UserID          string
	AppID           string
	ClusterID       string
}

// Message is a published message as the broker routes and stores it.
type Message struct {
	Exchange   string
	RoutingKey string
	Properties Properties
	Body       []byte
}

// Persistent reports whether the publisher asked for the message to survive a restart.
func (m *Message) Persistent() bool {
	return m.Properties.Flags&FlagDeliveryMode != 0 && m.Properties.DeliveryMode == Persistent
}
