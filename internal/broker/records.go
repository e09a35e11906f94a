package broker

// This file is the broker's own encoding of what it keeps in the store:
// message records, per-message state and definitions (exchanges, queues,
// bindings, users). Every encoding starts with a version byte; decoding
// checks every length and never panics on hostile or torn input.

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

const (
	recordV1 byte = 1

	// recPersistent marks a record of a persistent message (delivery-mode 2).
	recPersistent byte = 1 << 0
)

// errRecord is wrapped by every decoding error of this file; it is a
// store.ErrCorrupt.
var errRecord = fmt.Errorf("%w: broker record", store.ErrCorrupt)

func recordErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRecord, fmt.Sprintf(format, args...))
}

// encodeRecord encodes a message record:
//
//	version(1) flags(1) published(8, unix ms, big endian)
//	uvarint(len) exchange uvarint(len) routing-key
//	len(4, big endian) properties(message.AppendProperties) body(rest)
//
// The publish time lets recovery restore message TTLs.
func encodeRecord(m *message.Message, publishedMs int64) ([]byte, error) {
	b, err := appendRecordHead(make([]byte, 0, recordHeadEstimate(m)+len(m.Body)), m, publishedMs)
	if err != nil {
		return nil, err
	}
	return append(b, m.Body...), nil
}

// recordHeadEstimate is a capacity for a record's head that holds it
// unless the properties are large.
func recordHeadEstimate(m *message.Message) int {
	return 16 + len(m.Exchange) + len(m.RoutingKey) + 64
}

// appendRecordHead appends a record's fields before the body.
func appendRecordHead(b []byte, m *message.Message, publishedMs int64) ([]byte, error) {
	var flags byte
	if m.Persistent() {
		flags |= recPersistent
	}
	b = append(b, recordV1, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(publishedMs))
	b = appendString(b, m.Exchange)
	b = appendString(b, m.RoutingKey)
	lenAt := len(b)
	b = append(b, 0, 0, 0, 0) // fixed 4-byte properties length, patched below
	b, err := message.AppendProperties(b, &m.Properties)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	binary.BigEndian.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	return b, nil
}

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
// maximum message size). Room for up to draftRoomMax bytes of body is
// allocated up front.
func NewDraft(exchange, routingKey string, props *message.Properties, bodySize int) *Draft {
	d := &Draft{Msg: message.Message{Exchange: exchange, RoutingKey: routingKey, Properties: *props}, size: bodySize}
	room := min(bodySize, draftRoomMax)
	head, err := appendRecordHead(make([]byte, 0, recordHeadEstimate(&d.Msg)+room), &d.Msg, 0)
	if err != nil {
		// Publish encodes the record again and reports the error.
		d.Msg.Body = make([]byte, 0, room)
		return d
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
	binary.BigEndian.PutUint64(d.rec[2:recordHeader], uint64(publishedMs))
	return d.rec
}

const recordHeader = 10 // version, flags, published

// recordFlags returns the flags byte of a record without decoding it.
func recordFlags(rec []byte) (byte, error) {
	if len(rec) < recordHeader {
		return 0, recordErr("record of %d bytes", len(rec))
	}
	if rec[0] != recordV1 {
		return 0, recordErr("record version %d", rec[0])
	}
	return rec[1], nil
}

// recordPublished returns the publish time (unix ms) of a record whose
// header recordFlags accepted.
func recordPublished(rec []byte) int64 {
	return int64(binary.BigEndian.Uint64(rec[2:recordHeader]))
}

// recordBodySize returns the body size of a record without decoding its
// properties.
func recordBodySize(rec []byte) (int, error) {
	if _, err := recordFlags(rec); err != nil {
		return 0, err
	}
	r := reader{b: rec[recordHeader:]}
	r.string()
	r.string()
	r.take(int(r.uint32()))
	if r.err != nil {
		return 0, r.err
	}
	return len(r.b), nil
}

// decodeRecord decodes a message record. The message's body aliases rec.
func decodeRecord(rec []byte) (*message.Message, error) {
	m := &message.Message{}
	if err := decodeRecordTo(m, rec, nil); err != nil {
		return nil, err
	}
	return m, nil
}

// recordNames remembers the exchange and routing key a queue's last record
// named: consecutive messages of a queue mostly share them, and a match
// reuses the strings instead of allocating two per delivery.
type recordNames struct{ exchange, routingKey string }

// decodeRecordTo decodes rec into m; names, when not nil, is the caller's
// cache of the last names decoded (see recordNames).
func decodeRecordTo(m *message.Message, rec []byte, names *recordNames) error {
	if _, err := recordFlags(rec); err != nil {
		return err
	}
	r := reader{b: rec[recordHeader:]}
	if names != nil {
		m.Exchange = r.stringAs(&names.exchange)
		m.RoutingKey = r.stringAs(&names.routingKey)
	} else {
		m.Exchange = r.string()
		m.RoutingKey = r.string()
	}
	pl := r.uint32()
	props := r.take(int(pl))
	if r.err != nil {
		return r.err
	}
	p, n, err := message.ReadProperties(props)
	if err != nil {
		return fmt.Errorf("%w: %w", errRecord, err)
	}
	if n != len(props) {
		return recordErr("properties: %d trailing bytes", len(props)-n)
	}
	m.Properties = p
	m.Body = r.b
	return nil
}

// msgIndex is a message's index entry: what a restart needs to rebuild a
// queue's in-memory entry without reading the record (see
// store.Store.ScanIndex). It is the same for every queue the message was
// routed to; the queue-specific parts (queue TTL, priority level) are
// derived from it.
type msgIndex struct {
	persistent bool
	size       uint32 // body bytes
	pubMs      int64  // publish time, unix ms
	ttl        int64  // the message's own expiration in ms, -1 for none
	prio       uint8  // the priority property, 0 when absent
}

// encodeIndex encodes an index entry:
//
//	version(1) flags(1: recPersistent) uvarint(size) varint(published) varint(ttl) priority(1)
func encodeIndex(x msgIndex) []byte {
	return appendIndex(make([]byte, 0, maxIndexLen), x)
}

// maxIndexLen is the longest encoded index entry.
const maxIndexLen = 2 + binary.MaxVarintLen32 + 2*binary.MaxVarintLen64 + 1

// appendIndex appends x's encoding to b.
func appendIndex(b []byte, x msgIndex) []byte {
	var flags byte
	if x.persistent {
		flags |= recPersistent
	}
	b = append(b, recordV1, flags)
	b = binary.AppendUvarint(b, uint64(x.size))
	b = binary.AppendVarint(b, x.pubMs)
	b = binary.AppendVarint(b, x.ttl)
	return append(b, x.prio)
}

func decodeIndex(v []byte) (msgIndex, error) {
	r, err := versioned(v)
	if err != nil {
		return msgIndex{}, err
	}
	var x msgIndex
	x.persistent = r.byte()&recPersistent != 0
	x.size = uint32(min(r.uvarint(), 1<<32-1))
	x.pubMs = r.varint()
	x.ttl = r.varint()
	x.prio = r.byte()
	return x, r.done()
}

// indexOfRecord derives a message's index entry from its record.
func indexOfRecord(rec []byte) (msgIndex, error) {
	m, err := decodeRecord(rec)
	if err != nil {
		return msgIndex{}, err
	}
	x := msgIndex{persistent: rec[1]&recPersistent != 0, size: uint32(min(len(m.Body), 1<<32-1)),
		pubMs: recordPublished(rec), ttl: -1}
	if ttl, err := messageTTL(m); err == nil {
		x.ttl = ttl
	}
	if m.Properties.Flags&message.FlagPriority != 0 {
		x.prio = m.Properties.Priority
	}
	return x, nil
}

// Per-message state: version(1) uvarint(delivery count), and in version 2
// also varint(due, unix ms) for a message waiting out a retry backoff. It
// exists for a message that was delivered at least once, so that after a
// restart it comes back redelivered, with its count (and its wait).
const stateV2 byte = 2

func encodeState(deliveries uint32) []byte {
	return binary.AppendUvarint(append(make([]byte, 0, 1+binary.MaxVarintLen32), recordV1), uint64(deliveries))
}

func encodeStateDue(deliveries uint32, due int64) []byte {
	b := binary.AppendUvarint([]byte{stateV2}, uint64(deliveries))
	return binary.AppendVarint(b, due)
}

// The delivered mark of a durable queue is a state entry at markSeq, a seq
// no message has: version(1: markV) uvarint(mark). Every message of the
// queue below the mark that is still stored was delivered at least once,
// so the first delivery of a message taken in seq order writes no state of
// its own, only a higher mark (deliveredLocked); a restart brings such a
// message back redelivered with a count of 1. The entry goes with the
// queue's states (DropQueue) and lies above every range delete of an
// acked prefix.
const (
	markSeq      = ^uint64(0)
	markV   byte = 3
)

func encodeMark(mark uint64) []byte {
	return binary.AppendUvarint(append(make([]byte, 0, 1+binary.MaxVarintLen64), markV), mark)
}

// markBuf hands out encoded marks cut from a shared buffer: a mark is
// queued for the store at nearly every delivery, and one allocation each
// was a tenth of a delivery's. What it handed out is never written again.
type markBuf struct{ buf []byte }

func (m *markBuf) encode(mark uint64) []byte {
	const most = 1 + binary.MaxVarintLen64
	if cap(m.buf)-len(m.buf) < most {
		m.buf = make([]byte, 0, 64*most)
	}
	at := len(m.buf)
	m.buf = binary.AppendUvarint(append(m.buf, markV), mark)
	return m.buf[at:len(m.buf):len(m.buf)]
}

func decodeMark(b []byte) (uint64, error) {
	if len(b) < 2 || b[0] != markV {
		return 0, recordErr("delivered mark of %d bytes", len(b))
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return 0, recordErr("delivered mark: bad uvarint")
	}
	return v, nil
}

func decodeState(b []byte) (deliveries uint32, due int64, err error) {
	if len(b) < 1 || (b[0] != recordV1 && b[0] != stateV2) {
		return 0, 0, recordErr("state of %d bytes", len(b))
	}
	r := reader{b: b[1:]}
	n := r.uvarint()
	if b[0] == stateV2 && r.err == nil {
		v, k := binary.Varint(r.b)
		if k <= 0 {
			r.fail("varint")
		} else {
			due = v
		}
	}
	if r.err != nil {
		return 0, 0, r.err
	}
	return uint32(min(n, 1<<32-1)), due, nil
}

// Metadata keys. Names are joined with NUL, which AMQP short strings may
// contain in theory but no client sends; the value repeats every name, so a
// key is only an index.
const (
	metaExchange    = "x/"   // x/<vhost>\0<name>
	metaQueue       = "q/"   // q/<vhost>\0<name>
	metaBinding     = "b/"   // b/<vhost>\0<source>\0<kind><dest>\0<key>\0<args hex>
	metaQueueID     = "qid/" // qid/<16 hex digits> -> durable flag
	metaUser        = "u/"   // u/<name>
	metaNextQueueID = "next-queue-id"
)

func exchangeKey(vhost, name string) string { return metaExchange + vhost + "\x00" + name }
func queueKey(vhost, name string) string    { return metaQueue + vhost + "\x00" + name }
func queueIDKey(id store.QueueID) string    { return fmt.Sprintf("%s%016x", metaQueueID, uint64(id)) }
func userKey(name string) string            { return metaUser + name }

// exchangeDef is the stored form of a durable exchange.
type exchangeDef struct {
	VHost, Name, Type             string
	Durable, AutoDelete, Internal bool
	Args                          message.Table
}

func encodeExchangeDef(d exchangeDef) ([]byte, error) {
	b := []byte{recordV1}
	b = appendString(b, d.VHost)
	b = appendString(b, d.Name)
	b = appendString(b, d.Type)
	b = append(b, boolsByte(d.Durable, d.AutoDelete, d.Internal))
	return message.AppendTable(b, d.Args)
}

func decodeExchangeDef(v []byte) (exchangeDef, error) {
	r, err := versioned(v)
	if err != nil {
		return exchangeDef{}, err
	}
	var d exchangeDef
	d.VHost, d.Name, d.Type = r.string(), r.string(), r.string()
	f := r.byte()
	d.Durable, d.AutoDelete, d.Internal = f&1 != 0, f&2 != 0, f&4 != 0
	d.Args = r.table()
	return d, r.done()
}

// queueDef is the stored form of a durable queue.
type queueDef struct {
	VHost, Name string
	ID          store.QueueID
	AutoDelete  bool
	Args        message.Table
}

func encodeQueueDef(d queueDef) ([]byte, error) {
	b := []byte{recordV1}
	b = appendString(b, d.VHost)
	b = appendString(b, d.Name)
	b = binary.AppendUvarint(b, uint64(d.ID))
	b = append(b, boolsByte(d.AutoDelete))
	return message.AppendTable(b, d.Args)
}

func decodeQueueDef(v []byte) (queueDef, error) {
	r, err := versioned(v)
	if err != nil {
		return queueDef{}, err
	}
	var d queueDef
	d.VHost, d.Name = r.string(), r.string()
	d.ID = store.QueueID(r.uvarint())
	d.AutoDelete = r.byte()&1 != 0
	d.Args = r.table()
	return d, r.done()
}

// bindingDef is the stored form of a binding between durable ends.
type bindingDef struct {
	VHost      string
	Source     string
	ToExchange bool
	Dest, Key  string
	Args       message.Table
}

func encodeBindingDef(d bindingDef) ([]byte, error) {
	b := []byte{recordV1}
	b = appendString(b, d.VHost)
	b = appendString(b, d.Source)
	b = append(b, boolsByte(d.ToExchange))
	b = appendString(b, d.Dest)
	b = appendString(b, d.Key)
	return message.AppendTable(b, d.Args)
}

func decodeBindingDef(v []byte) (bindingDef, error) {
	r, err := versioned(v)
	if err != nil {
		return bindingDef{}, err
	}
	var d bindingDef
	d.VHost, d.Source = r.string(), r.string()
	d.ToExchange = r.byte()&1 != 0
	d.Dest, d.Key = r.string(), r.string()
	d.Args = r.table()
	return d, r.done()
}

// bindingKey is the metadata key of a binding: unique per (source,
// destination, routing key, arguments).
func bindingKey(vhost string, toExchange bool, src, dst, key string, args message.Table) string {
	kind := "q"
	if toExchange {
		kind = "e"
	}
	enc, _ := message.AppendTable(nil, args)
	return fmt.Sprintf("%s%s\x00%s\x00%s%s\x00%s\x00%x", metaBinding, vhost, src, kind, dst, key, enc)
}

// userDef is the stored form of a user.
type userDef struct {
	Name         string
	Salt, Hash   []byte
	Tags         []string
	LoopbackOnly bool
}

func encodeUserDef(u userDef) []byte {
	b := []byte{recordV1}
	b = appendString(b, u.Name)
	b = appendString(b, string(u.Salt))
	b = appendString(b, string(u.Hash))
	b = binary.AppendUvarint(b, uint64(len(u.Tags)))
	for _, t := range u.Tags {
		b = appendString(b, t)
	}
	return append(b, boolsByte(u.LoopbackOnly))
}

func decodeUserDef(v []byte) (userDef, error) {
	r, err := versioned(v)
	if err != nil {
		return userDef{}, err
	}
	var u userDef
	u.Name = r.string()
	u.Salt = []byte(r.string())
	u.Hash = []byte(r.string())
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		u.Tags = append(u.Tags, r.string())
	}
	u.LoopbackOnly = r.byte()&1 != 0
	return u, r.done()
}

func boolsByte(bs ...bool) byte {
	var f byte
	for i, b := range bs {
		if b {
			f |= 1 << i
		}
	}
	return f
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes the pieces above; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func versioned(v []byte) (*reader, error) {
	if len(v) < 1 || v[0] != recordV1 {
		return nil, recordErr("definition of %d bytes, unknown version", len(v))
	}
	return &reader{b: v[1:]}, nil
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = recordErr("truncated %s", what)
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("field")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	return string(r.take(int(n)))
}

// stringAs is string, returning *last (and keeping it) when the bytes are
// the same, else the new string, which it stores in *last.
func (r *reader) stringAs(last *string) string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	b := r.take(int(n))
	if string(b) != *last { // compared without a conversion
		*last = string(b)
	}
	return *last
}

func (r *reader) byte() byte {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) uint32() uint32 {
	v := r.take(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader) table() message.Table {
	if r.err != nil {
		return nil
	}
	t, n, err := message.ReadTable(r.b)
	if err != nil {
		r.err = fmt.Errorf("%w: %w", errRecord, err)
		return nil
	}
	r.b = r.b[n:]
	return t
}

func (r *reader) done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return recordErr("%d trailing bytes", len(r.b))
	}
	return nil
}
