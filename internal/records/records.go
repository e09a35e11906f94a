package records

// This file holds the message record, its index entry, the per-message
// state and the definitions of exchanges, queues, bindings and users; the
// layouts are drawn in doc.go.

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

const (
	V1 byte = 1

	// FlagPersistent marks a record of a persistent message (delivery-mode 2).
	FlagPersistent byte = 1 << 0
)

// ErrRecord is wrapped by every decoding error of this file; it is a
// store.ErrCorrupt.
var ErrRecord = fmt.Errorf("%w: broker record", store.ErrCorrupt)

func Corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRecord, fmt.Sprintf(format, args...))
}

// EncodeRecord encodes a message record:
//
//	version(1) flags(1) published(8, unix ms, big endian)
//	uvarint(len) exchange uvarint(len) routing-key
//	len(4, big endian) properties(message.AppendProperties) body(rest)
//
// The publish time lets recovery restore message TTLs.
func EncodeRecord(m *message.Message, publishedMs int64) ([]byte, error) {
	b, err := AppendRecordHead(make([]byte, 0, RecordHeadEstimate(m)+len(m.Body)), m, publishedMs)
	if err != nil {
		return nil, err
	}
	return append(b, m.Body...), nil
}

// RecordHeadEstimate is a capacity for a record's head that holds it
// unless the properties are large.
func RecordHeadEstimate(m *message.Message) int {
	return 16 + len(m.Exchange) + len(m.RoutingKey) + 64
}

// AppendRecordHead appends a record's fields before the body, encoding
// m's properties.
func AppendRecordHead(b []byte, m *message.Message, publishedMs int64) ([]byte, error) {
	b, lenAt := appendHeadStart(b, m, publishedMs)
	b, err := message.AppendProperties(b, &m.Properties)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	binary.BigEndian.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	return b, nil
}

// AppendRecordHeadRaw is AppendRecordHead with m's properties already
// encoded: props, a property list message.ReadProperties accepts (the
// bytes a publisher sent), is stored as is, so that a consumer receives
// them as they were sent. m.Properties must be what props decodes to (its
// delivery mode makes the record's flags).
func AppendRecordHeadRaw(b []byte, m *message.Message, props []byte, publishedMs int64) []byte {
	b, lenAt := appendHeadStart(b, m, publishedMs)
	b = append(b, props...)
	binary.BigEndian.PutUint32(b[lenAt:], uint32(len(props)))
	return b
}

// appendHeadStart appends a record's fields before its properties, with
// room for their length at lenAt.
func appendHeadStart(b []byte, m *message.Message, publishedMs int64) (_ []byte, lenAt int) {
	var flags byte
	if m.Persistent() {
		flags |= FlagPersistent
	}
	b = append(b, V1, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(publishedMs))
	b = appendString(b, m.Exchange)
	b = appendString(b, m.RoutingKey)
	lenAt = len(b)
	return append(b, 0, 0, 0, 0), lenAt // fixed 4-byte properties length, patched by the caller
}

const RecordHeader = 10 // version, flags, published

// RecordFlags returns the flags byte of a record without decoding it.
func RecordFlags(rec []byte) (byte, error) {
	if len(rec) < RecordHeader {
		return 0, Corruptf("record of %d bytes", len(rec))
	}
	if rec[0] != V1 {
		return 0, Corruptf("record version %d", rec[0])
	}
	return rec[1], nil
}

// RecordPublished returns the publish time (unix ms) of a record whose
// header RecordFlags accepted.
func RecordPublished(rec []byte) int64 {
	return int64(binary.BigEndian.Uint64(rec[2:RecordHeader]))
}

// RecordBodySize returns the body size of a record without decoding its
// properties.
func RecordBodySize(rec []byte) (int, error) {
	if _, err := RecordFlags(rec); err != nil {
		return 0, err
	}
	r := reader{b: rec[RecordHeader:]}
	r.string()
	r.string()
	r.take(int(r.uint32()))
	if r.err != nil {
		return 0, r.err
	}
	return len(r.b), nil
}

// DecodeRecord decodes a message record. The message's body aliases rec.
func DecodeRecord(rec []byte) (*message.Message, error) {
	m := &message.Message{}
	if err := DecodeRecordTo(m, rec, nil); err != nil {
		return nil, err
	}
	return m, nil
}

// Names remembers the exchange and routing key a queue's last record
// named: consecutive messages of a queue mostly share them, and a match
// reuses the strings instead of allocating two per delivery.
type Names struct{ exchange, routingKey string }

// DecodeRecordTo decodes rec into m; names, when not nil, is the caller's
// cache of the last names decoded (see Names).
func DecodeRecordTo(m *message.Message, rec []byte, names *Names) error {
	parts, err := SplitRecord(rec, names)
	if err != nil {
		return err
	}
	p, err := DecodeProperties(parts.Props)
	if err != nil {
		return err
	}
	m.Exchange, m.RoutingKey, m.Properties, m.Body = parts.Exchange, parts.RoutingKey, p, parts.Body
	return nil
}

// Parts are a message record's pieces, its properties still encoded.
type Parts struct {
	Exchange, RoutingKey string
	Props                []byte // the property list as stored; aliases the record
	Body                 []byte // aliases the record
}

// SplitRecord cuts rec into its parts without decoding the properties, for
// a delivery that sends them on as stored; names is as for DecodeRecordTo.
// The property bytes are only bounded, not checked: they were checked when
// the message was published (or encoded by AppendRecordHead), and the
// store checksums what it holds.
func SplitRecord(rec []byte, names *Names) (Parts, error) {
	if _, err := RecordFlags(rec); err != nil {
		return Parts{}, err
	}
	var p Parts
	r := reader{b: rec[RecordHeader:]}
	if names != nil {
		p.Exchange = r.stringAs(&names.exchange)
		p.RoutingKey = r.stringAs(&names.routingKey)
	} else {
		p.Exchange = r.string()
		p.RoutingKey = r.string()
	}
	pl := r.uint32()
	p.Props = r.take(int(pl))
	if r.err != nil {
		return Parts{}, r.err
	}
	p.Body = r.b
	return p, nil
}

// DecodeProperties decodes a record's property list (Parts.Props).
func DecodeProperties(props []byte) (message.Properties, error) {
	p, n, err := message.ReadProperties(props)
	if err != nil {
		return message.Properties{}, fmt.Errorf("%w: %w", ErrRecord, err)
	}
	if n != len(props) {
		return message.Properties{}, Corruptf("properties: %d trailing bytes", len(props)-n)
	}
	return p, nil
}

// Index is a message's index entry: what a restart needs to rebuild a
// queue's in-memory entry without reading the record (see
// store.Store.ScanIndex). It is the same for every queue the message was
// routed to; the queue-specific parts (queue TTL, priority level) are
// derived from it.
type Index struct {
	Persistent bool
	Size       uint32 // body bytes
	PubMs      int64  // publish time, unix ms
	TTL        int64  // the message's own expiration in ms, -1 for none
	Prio       uint8  // the priority property, 0 when absent
}

// EncodeIndex encodes an index entry:
//
//	version(1) flags(1: FlagPersistent) uvarint(Size) varint(published) varint(TTL) priority(1)
func EncodeIndex(x Index) []byte {
	return AppendIndex(make([]byte, 0, MaxIndexLen), x)
}

// MaxIndexLen is the longest encoded index entry.
const MaxIndexLen = 2 + binary.MaxVarintLen32 + 2*binary.MaxVarintLen64 + 1

// AppendIndex appends x's encoding to b.
func AppendIndex(b []byte, x Index) []byte {
	var flags byte
	if x.Persistent {
		flags |= FlagPersistent
	}
	b = append(b, V1, flags)
	b = binary.AppendUvarint(b, uint64(x.Size))
	b = binary.AppendVarint(b, x.PubMs)
	b = binary.AppendVarint(b, x.TTL)
	return append(b, x.Prio)
}

func DecodeIndex(v []byte) (Index, error) {
	r, err := versioned(v)
	if err != nil {
		return Index{}, err
	}
	var x Index
	x.Persistent = r.byte()&FlagPersistent != 0
	x.Size = uint32(min(r.uvarint(), 1<<32-1))
	x.PubMs = r.varint()
	x.TTL = r.varint()
	x.Prio = r.byte()
	return x, r.done()
}

// IndexOfRecord derives a message's index entry from its record.
func IndexOfRecord(rec []byte) (Index, error) {
	m, err := DecodeRecord(rec)
	if err != nil {
		return Index{}, err
	}
	x := Index{Persistent: rec[1]&FlagPersistent != 0, Size: uint32(min(len(m.Body), 1<<32-1)),
		PubMs: RecordPublished(rec), TTL: -1}
	if ttl, ok := expirationMs(m); ok {
		x.TTL = ttl
	}
	if m.Properties.Flags&message.FlagPriority != 0 {
		x.Prio = m.Properties.Priority
	}
	return x, nil
}

// Per-message state: version(1) uvarint(delivery count), and in version 2
// also varint(due, unix ms) for a message waiting out a retry backoff. It
// exists for a message that was delivered at least once, so that after a
// restart it comes back redelivered, with its count (and its wait).
const StateV2 byte = 2

func EncodeState(deliveries uint32) []byte {
	return binary.AppendUvarint(append(make([]byte, 0, 1+binary.MaxVarintLen32), V1), uint64(deliveries))
}

func EncodeStateDue(deliveries uint32, due int64) []byte {
	b := binary.AppendUvarint([]byte{StateV2}, uint64(deliveries))
	return binary.AppendVarint(b, due)
}

// The delivered mark of a durable queue is a state entry at MarkSeq, a seq
// no message has: version(1: MarkV) uvarint(mark). Every message of the
// queue below the mark that is still stored was delivered at least once,
// so the first delivery of a message taken in seq order writes no state of
// its own, only a higher mark (deliveredLocked); a restart brings such a
// message back redelivered with a count of 1. The entry goes with the
// queue's states (DropQueue) and lies above every range delete of an
// acked prefix.
const (
	MarkSeq      = ^uint64(0)
	MarkV   byte = 3
)

func EncodeMark(mark uint64) []byte {
	return binary.AppendUvarint(append(make([]byte, 0, 1+binary.MaxVarintLen64), MarkV), mark)
}

// MarkBuf hands out encoded marks cut from a shared buffer: a mark is
// queued for the store at nearly every delivery, and one allocation each
// was a tenth of a delivery's. What it handed out is never written again.
type MarkBuf struct{ buf []byte }

func (m *MarkBuf) Encode(mark uint64) []byte {
	const most = 1 + binary.MaxVarintLen64
	if cap(m.buf)-len(m.buf) < most {
		m.buf = make([]byte, 0, 64*most)
	}
	at := len(m.buf)
	m.buf = binary.AppendUvarint(append(m.buf, MarkV), mark)
	return m.buf[at:len(m.buf):len(m.buf)]
}

func DecodeMark(b []byte) (uint64, error) {
	if len(b) < 2 || b[0] != MarkV {
		return 0, Corruptf("delivered mark of %d bytes", len(b))
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return 0, Corruptf("delivered mark: bad uvarint")
	}
	return v, nil
}

func DecodeState(b []byte) (deliveries uint32, due int64, err error) {
	if len(b) < 1 || (b[0] != V1 && b[0] != StateV2) {
		return 0, 0, Corruptf("state of %d bytes", len(b))
	}
	r := reader{b: b[1:]}
	n := r.uvarint()
	if b[0] == StateV2 && r.err == nil {
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
	MetaExchange    = "x/"   // x/<vhost>\0<name>
	MetaQueue       = "q/"   // q/<vhost>\0<name>
	MetaBinding     = "b/"   // b/<vhost>\0<source>\0<kind><dest>\0<key>\0<args hex>
	MetaQueueID     = "qid/" // qid/<16 hex digits> -> durable flag
	MetaUser        = "u/"   // u/<name>
	MetaNextQueueID = "next-queue-id"
)

func ExchangeKey(vhost, name string) string { return MetaExchange + vhost + "\x00" + name }
func QueueKey(vhost, name string) string    { return MetaQueue + vhost + "\x00" + name }
func QueueIDKey(id store.QueueID) string    { return fmt.Sprintf("%s%016x", MetaQueueID, uint64(id)) }
func UserKey(name string) string            { return MetaUser + name }

// ExchangeDef is the stored form of a durable exchange.
type ExchangeDef struct {
	VHost, Name, Type             string
	Durable, AutoDelete, Internal bool
	Args                          message.Table
}

func EncodeExchangeDef(d ExchangeDef) ([]byte, error) {
	b := []byte{V1}
	b = appendString(b, d.VHost)
	b = appendString(b, d.Name)
	b = appendString(b, d.Type)
	b = append(b, BoolsByte(d.Durable, d.AutoDelete, d.Internal))
	return message.AppendTable(b, d.Args)
}

func DecodeExchangeDef(v []byte) (ExchangeDef, error) {
	r, err := versioned(v)
	if err != nil {
		return ExchangeDef{}, err
	}
	var d ExchangeDef
	d.VHost, d.Name, d.Type = r.string(), r.string(), r.string()
	f := r.byte()
	d.Durable, d.AutoDelete, d.Internal = f&1 != 0, f&2 != 0, f&4 != 0
	d.Args = r.table()
	return d, r.done()
}

// QueueDef is the stored form of a durable queue.
type QueueDef struct {
	VHost, Name string
	ID          store.QueueID
	AutoDelete  bool
	Args        message.Table
}

func EncodeQueueDef(d QueueDef) ([]byte, error) {
	b := []byte{V1}
	b = appendString(b, d.VHost)
	b = appendString(b, d.Name)
	b = binary.AppendUvarint(b, uint64(d.ID))
	b = append(b, BoolsByte(d.AutoDelete))
	return message.AppendTable(b, d.Args)
}

func DecodeQueueDef(v []byte) (QueueDef, error) {
	r, err := versioned(v)
	if err != nil {
		return QueueDef{}, err
	}
	var d QueueDef
	d.VHost, d.Name = r.string(), r.string()
	d.ID = store.QueueID(r.uvarint())
	d.AutoDelete = r.byte()&1 != 0
	d.Args = r.table()
	return d, r.done()
}

// BindingDef is the stored form of a binding between durable ends.
type BindingDef struct {
	VHost      string
	Source     string
	ToExchange bool
	Dest, Key  string
	Args       message.Table
}

func EncodeBindingDef(d BindingDef) ([]byte, error) {
	b := []byte{V1}
	b = appendString(b, d.VHost)
	b = appendString(b, d.Source)
	b = append(b, BoolsByte(d.ToExchange))
	b = appendString(b, d.Dest)
	b = appendString(b, d.Key)
	return message.AppendTable(b, d.Args)
}

func DecodeBindingDef(v []byte) (BindingDef, error) {
	r, err := versioned(v)
	if err != nil {
		return BindingDef{}, err
	}
	var d BindingDef
	d.VHost, d.Source = r.string(), r.string()
	d.ToExchange = r.byte()&1 != 0
	d.Dest, d.Key = r.string(), r.string()
	d.Args = r.table()
	return d, r.done()
}

// BindingKey is the metadata key of a binding: unique per (source,
// destination, routing key, arguments).
func BindingKey(vhost string, toExchange bool, src, dst, key string, args message.Table) string {
	kind := "q"
	if toExchange {
		kind = "e"
	}
	enc, _ := message.AppendTable(nil, args)
	return fmt.Sprintf("%s%s\x00%s\x00%s%s\x00%s\x00%x", MetaBinding, vhost, src, kind, dst, key, enc)
}

// UserDef is the stored form of a user.
type UserDef struct {
	Name         string
	Salt, Hash   []byte
	Tags         []string
	LoopbackOnly bool
}

func EncodeUserDef(u UserDef) []byte {
	b := []byte{V1}
	b = appendString(b, u.Name)
	b = appendString(b, string(u.Salt))
	b = appendString(b, string(u.Hash))
	b = binary.AppendUvarint(b, uint64(len(u.Tags)))
	for _, t := range u.Tags {
		b = appendString(b, t)
	}
	return append(b, BoolsByte(u.LoopbackOnly))
}

func DecodeUserDef(v []byte) (UserDef, error) {
	r, err := versioned(v)
	if err != nil {
		return UserDef{}, err
	}
	var u UserDef
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

func BoolsByte(bs ...bool) byte {
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
	if len(v) < 1 || v[0] != V1 {
		return nil, Corruptf("definition of %d bytes, unknown version", len(v))
	}
	return &reader{b: v[1:]}, nil
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = Corruptf("truncated %s", what)
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
		r.err = fmt.Errorf("%w: %w", ErrRecord, err)
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
		return Corruptf("%d trailing bytes", len(r.b))
	}
	return nil
}

// expirationMs returns a message's own expiration in ms, false when it has
// none or an invalid one (the broker refuses those at publish).
func expirationMs(m *message.Message) (int64, bool) {
	if m.Properties.Flags&message.FlagExpiration == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(m.Properties.Expiration, 10, 64)
	return n, err == nil && n >= 0
}
