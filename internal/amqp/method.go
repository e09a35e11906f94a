package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/sluicemq/sluice/internal/message"
)

// Method is one AMQP method with its arguments: a pointer to one of the
// generated structs (*ConnectionStart, *BasicPublish, …). The interface is
// sealed; only this package's types implement it.
type Method interface {
	ClassID() uint16
	MethodID() uint16
	Name() string      // "basic.publish"
	Synchronous() bool // the spec marks it as expecting a reply
	HasContent() bool  // basic.publish, basic.return, basic.deliver, basic.get-ok

	appendArgs(b []byte) ([]byte, error)
	readArgs(d *decoder)
}

// ProtocolError is a decoding failure, carrying the reply code the server
// must close the connection with: FrameError (bad frame end, unknown frame
// type, frame larger than the negotiated maximum, bad protocol header),
// SyntaxError (malformed method arguments, field tables or content headers),
// CommandInvalid (unknown class or method id).
type ProtocolError struct {
	Code   uint16
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("amqp %d %s: %s", e.Code, ReplyText(e.Code), e.Reason)
}

func syntaxError(format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: SyntaxError, Reason: fmt.Sprintf(format, args...)}
}

// ReadMethod decodes a method frame's payload (class id, method id,
// arguments) into a fresh method struct. The payload must hold exactly the
// method's arguments; nothing of it is retained.
func ReadMethod(payload []byte) (Method, error) {
	if len(payload) < 4 {
		return nil, syntaxError("method frame payload of %d bytes is shorter than its class and method ids", len(payload))
	}
	classID := binary.BigEndian.Uint16(payload)
	methodID := binary.BigEndian.Uint16(payload[2:])
	m, classKnown := newMethod(classID, methodID)
	if m == nil {
		if classKnown {
			return nil, &ProtocolError{Code: CommandInvalid, Reason: fmt.Sprintf("unknown method %d of class %d", methodID, classID)}
		}
		return nil, &ProtocolError{Code: CommandInvalid, Reason: fmt.Sprintf("unknown class %d (method %d)", classID, methodID)}
	}
	d := decoder{b: payload, off: 4}
	m.readArgs(&d)
	if d.err != nil {
		return nil, syntaxError("%s: %v", m.Name(), d.err)
	}
	if d.off != len(payload) {
		return nil, syntaxError("%s: %d unexpected bytes after the arguments at offset %d", m.Name(), len(payload)-d.off, d.off)
	}
	return m, nil
}

// AppendMethod appends m's method frame payload (class id, method id,
// arguments) to dst. It fails if an argument does not fit its wire type: a
// short string over 255 bytes or a table value of an unsupported Go type.
func AppendMethod(dst []byte, m Method) ([]byte, error) {
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, m.ClassID())
	dst = binary.BigEndian.AppendUint16(dst, m.MethodID())
	out, err := m.appendArgs(dst)
	if err != nil {
		return dst[:start], fmt.Errorf("encode %s: %w", m.Name(), err)
	}
	return out, nil
}

// ContentHeader is a content header frame's payload.
type ContentHeader struct {
	ClassID    uint16
	Weight     uint16 // always 0 in AMQP 0-9-1
	BodySize   uint64
	Properties message.Properties
}

// ReadContentHeader decodes a content header frame's payload. It decodes the
// properties with the basic class's layout whatever ClassID says (basic is
// the only class with content); the caller checks ClassID against the method
// the content belongs to.
func ReadContentHeader(payload []byte) (ContentHeader, error) {
	if len(payload) < 14 {
		return ContentHeader{}, syntaxError("content header of %d bytes is shorter than its 14 fixed bytes", len(payload))
	}
	h := ContentHeader{
		ClassID:  binary.BigEndian.Uint16(payload),
		Weight:   binary.BigEndian.Uint16(payload[2:]),
		BodySize: binary.BigEndian.Uint64(payload[4:]),
	}
	p, n, err := message.ReadProperties(payload[12:])
	if err != nil {
		return ContentHeader{}, syntaxError("content header: %v (offsets after byte 12)", err)
	}
	if 12+n != len(payload) {
		return ContentHeader{}, syntaxError("content header: %d unexpected bytes after the properties", len(payload)-12-n)
	}
	h.Properties = p
	return h, nil
}

// PropertyBytes returns the property list of a content header's payload
// that ReadContentHeader accepted, as the peer sent it (aliasing payload),
// so that it can be passed on without being encoded again. It returns nil
// when the flags carry a bit that names no property (the continuation bit
// with further flag words, or the reserved bit): such a list is passed on
// only as ReadContentHeader decoded it.
func PropertyBytes(payload []byte) []byte {
	if len(payload) < 14 || binary.BigEndian.Uint16(payload[12:])&^message.KnownFlags != 0 {
		return nil
	}
	return payload[12:]
}

// AppendContentHeader appends h as a content header frame's payload to dst.
func AppendContentHeader(dst []byte, h *ContentHeader) ([]byte, error) {
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, h.ClassID)
	dst = binary.BigEndian.AppendUint16(dst, h.Weight)
	dst = binary.BigEndian.AppendUint64(dst, h.BodySize)
	out, err := message.AppendProperties(dst, &h.Properties)
	if err != nil {
		return dst[:start], fmt.Errorf("encode content header: %w", err)
	}
	return out, nil
}

// Encoding helpers for the generated appendArgs methods.

func appendShortstr(b []byte, s, field string) ([]byte, error) {
	if len(s) > math.MaxUint8 {
		return nil, fmt.Errorf("%s: short string of %d bytes, longer than 255", field, len(s))
	}
	return append(append(b, byte(len(s))), s...), nil
}

func appendLongstr(b []byte, s, field string) ([]byte, error) {
	if uint64(len(s)) > math.MaxUint32 {
		return nil, fmt.Errorf("%s: long string of %d bytes, longer than 4 GiB", field, len(s))
	}
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...), nil
}

func appendTable(b []byte, t message.Table, field string) ([]byte, error) {
	out, err := message.AppendTable(b, t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return out, nil
}

// decoder reads method arguments from b at off. The first error sticks:
// later reads return zero values, so generated readArgs need no checks.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) take(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.err = fmt.Errorf("%s: truncated at offset %d: need %d bytes, have %d", field, d.off, n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) octet(field string) uint8 {
	if p := d.take(1, field); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) short(field string) uint16 {
	if p := d.take(2, field); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) long(field string) uint32 {
	if p := d.take(4, field); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) longlong(field string) uint64 {
	if p := d.take(8, field); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) timestamp(field string) time.Time {
	if p := d.take(8, field); p != nil {
		return time.Unix(int64(binary.BigEndian.Uint64(p)), 0).UTC()
	}
	return time.Time{}
}

func (d *decoder) shortstr(field string) string {
	n := d.octet(field)
	return string(d.take(int(n), field))
}

func (d *decoder) longstr(field string) string {
	n := d.long(field)
	if d.err == nil && uint64(n) > uint64(len(d.b)-d.off) {
		d.err = fmt.Errorf("%s: long string length %d at offset %d exceeds the %d bytes left", field, n, d.off-4, len(d.b)-d.off)
		return ""
	}
	return string(d.take(int(n), field))
}

func (d *decoder) table(field string) message.Table {
	if d.err != nil {
		return nil
	}
	t, n, err := message.ReadTable(d.b[d.off:])
	if err != nil {
		d.err = fmt.Errorf("%s (offsets from %d): %w", field, d.off, err)
		return nil
	}
	d.off += n
	return t
}
