package broker

// A Draft lays a message's record out as it arrives (the record's layout
// is package records').

import (
	"encoding/binary"
	"slices"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
)

// Draft is a message being received whose body goes straight into the
// record the store keeps, sparing a copy of the body: NewDraft lays out the
// record's head from what is known before the body, Append adds the body's
// pieces, and Channel.PublishDraft publishes it. Msg is the message; its
// Body is set by PublishDraft. A Draft is not safe for concurrent use, and
// the broker keeps it once published.
type Draft struct {
	Msg     message.Message
	rec     []byte // the record's head, then the body so far; nil: no head
	head    int    // the head's length
	replyTo string // Msg.Properties.ReplyTo when the head was encoded
	recode  bool   // the headers changed since (BCC removed)
	size    int    // the body size announced
}

// draftRoomMax bounds the body room a Draft allocates before the body
// arrives: a header may announce a body as large as the maximum message
// size and then send nothing, on each of many channels, so a larger body
// is given room as its frames arrive (at most twice what arrived).
const draftRoomMax = 4 << 10

// NewDraft starts a message of bodySize bytes (bounded by the caller to the
// maximum message size). raw, when not nil, is the property list as the
// publisher sent it, which props was decoded from: the record keeps those
// bytes, so a consumer receives them as sent and nothing encodes them
// again; when nil, props is encoded. Room for up to draftRoomMax bytes of
// body is allocated up front.
func NewDraft(exchange, routingKey string, props *message.Properties, raw []byte, bodySize int) *Draft {
	d := &Draft{Msg: message.Message{Exchange: exchange, RoutingKey: routingKey, Properties: *props}, size: bodySize}
	room := min(bodySize, draftRoomMax)
	var head []byte
	if raw != nil {
		head = make([]byte, 0, records.RecordHeader+16+len(exchange)+len(routingKey)+len(raw)+room)
		head = records.AppendRecordHeadRaw(head, &d.Msg, raw, 0)
	} else {
		var err error
		head, err = records.AppendRecordHead(make([]byte, 0, records.RecordHeadEstimate(&d.Msg)+room), &d.Msg, 0)
		if err != nil {
			// Publish encodes the record again and reports the error.
			d.Msg.Body = make([]byte, 0, room)
			return d
		}
	}
	if cap(head)-len(head) < room {
		head = append(make([]byte, 0, len(head)+room), head...)
	}
	d.rec, d.head, d.replyTo = head, len(head), props.ReplyTo
	return d
}

// Append adds p, a piece of the body, copying it.
func (d *Draft) Append(p []byte) {
	if d.rec == nil {
		d.Msg.Body = appendBounded(d.Msg.Body, p, d.size)
		return
	}
	d.rec = appendBounded(d.rec, p, d.head+d.size)
}

// appendBounded appends p to b, doubling b's room when it must grow but
// never past limit bytes (unless p itself goes past them): room follows the
// bytes that arrived, and the last piece of a body does not leave a
// quarter of it unused as append's own growth would.
func appendBounded(b, p []byte, limit int) []byte {
	if need := len(b) + len(p); need > cap(b) {
		b = slices.Grow(b, max(min(2*cap(b), limit), need)-len(b))
	}
	return append(b, p...)
}

// Len returns the body bytes appended so far.
func (d *Draft) Len() int {
	if d.rec == nil {
		return len(d.Msg.Body)
	}
	return len(d.rec) - d.head
}

// seal sets Msg.Body to the body appended, aliasing the record.
func (d *Draft) seal() {
	if d.rec != nil {
		d.Msg.Body = d.rec[d.head:len(d.rec):len(d.rec)]
	}
}

// record returns the finished record published at publishedMs, or nil
// when it must be encoded anew: the properties changed since NewDraft
// (direct reply-to rewrites reply-to) or its head could not be encoded.
func (d *Draft) record(publishedMs int64) []byte {
	if d == nil || d.rec == nil || d.recode || d.Msg.Properties.ReplyTo != d.replyTo {
		return nil
	}
	binary.BigEndian.PutUint64(d.rec[2:records.RecordHeader], uint64(publishedMs))
	return d.rec
}
