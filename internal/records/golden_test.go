package records

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

// golden holds the bytes of every on-disk record as the code before this
// package wrote them (captured from internal/broker at the move): an
// existing data directory holds exactly these, so they must encode the
// same and decode to what was stored.
var golden = map[string]string{
	"record":     "01010000018bcfe5687b02657802726b00000021b9000a746578742f706c61696e000000080168530000000176020505363030303068656c6c6f",
	"index":      "010105f6a1abfef962c0a90705",
	"indexZero":  "010000000100",
	"state":      "0107",
	"stateDue":   "020280a0abfef962",
	"mark":       "03c0c407",
	"exchange":   "01012f02657805746f706963050000003516782d646561642d6c65747465722d65786368616e67655300000003646c780c782d6d61782d6c656e6774686c000000000000000a",
	"queue":      "01017601712a010000003516782d646561642d6c65747465722d65786368616e67655300000003646c780c782d6d61782d6c656e6774686c000000000000000a",
	"binding":    "01012f02657801017103612e230000003516782d646561642d6c65747465722d65786368616e67655300000003646c780c782d6d61782d6c656e6774686c000000000000000a",
	"user":       "0105677565737404010203040468617368020d61646d696e6973747261746f72017801",
	"permission": "01056775657374012f022e2a01770172",
	"schema":     "01012f01737b2274797065223a226f626a656374227d",
	"delayed":    "01012f01010000018bcfe5687b02657802726b00000021b9000a746578742f706c61696e000000080168530000000176020505363030303068656c6c6f",
	// Read off the code before the move (too simple to need a capture):
	"vhost":      "01012f",
	"opaque":     "017b7d",
	"bindingKey": "622f2f00657800657100612e2300303030303030333531363738326436343635363136343264366336353734373436353732326436353738363336383631366536373635353330303030303030333634366337383063373832643664363137383264366336353665363737343638366330303030303030303030303030303061",
	"queueIDKey": "7169642f30303030303030303030303030303261",
	// The layouts that gave a version byte to values written without one
	// (scalars.go); their earlier bytes are in goldenBefore.
	"queueIDCounter": "01ac02",
	"queueIDFlags":   "0101",
	"limit":          "010a",
	"limitNegative":  "0101",
	"policy":         "017b7d",
}

// goldenBefore holds the values an earlier Sluice wrote without a version
// byte (strconv's decimal ASCII, a bare bits byte, bare JSON), which
// existing stores hold; each decodes, reported old, to what was stored.
var goldenBefore = map[string]string{
	"queueIDCounter": "333030", // "300"
	"queueIDFlags":   "01",
	"queueIDFlags0":  "00",
	"limit":          "35",   // "5"
	"limitNegative":  "2d31", // "-1"
	"policy":         "7b7d", // "{}"
}

func goldenMessage() *message.Message {
	m := &message.Message{Exchange: "ex", RoutingKey: "rk", Body: []byte("hello")}
	p := &m.Properties
	p.Flags = message.FlagContentType | message.FlagDeliveryMode | message.FlagPriority | message.FlagHeaders | message.FlagExpiration
	p.ContentType = "text/plain"
	p.DeliveryMode = 2
	p.Priority = 5
	p.Expiration = "60000"
	p.Headers = message.Table{"h": "v"}
	return m
}

func TestGoldenEncodings(t *testing.T) {
	args := message.Table{"x-max-length": int64(10), "x-dead-letter-exchange": "dlx"}
	rec := must(EncodeRecord(goldenMessage(), 1700000000123))
	x, err := IndexOfRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Index{Persistent: true, Size: 5, PubMs: 1700000000123, TTL: 60000, Prio: 5}); x != want {
		t.Errorf("IndexOfRecord = %+v, want %+v", x, want)
	}
	var marks MarkBuf
	got := map[string][]byte{
		"record":     rec,
		"index":      EncodeIndex(x),
		"indexZero":  EncodeIndex(Index{TTL: -1}),
		"state":      EncodeState(7),
		"stateDue":   EncodeStateDue(2, 1700000000000),
		"mark":       marks.Encode(123456),
		"exchange":   must(EncodeExchangeDef(ExchangeDef{VHost: "/", Name: "ex", Type: "topic", Durable: true, Internal: true, Args: args})),
		"queue":      must(EncodeQueueDef(QueueDef{VHost: "v", Name: "q", ID: 42, AutoDelete: true, Args: args})),
		"binding":    must(EncodeBindingDef(BindingDef{VHost: "/", Source: "ex", ToExchange: true, Dest: "q", Key: "a.#", Args: args})),
		"user":       EncodeUserDef(UserDef{Name: "guest", Salt: []byte{1, 2, 3, 4}, Hash: []byte("hash"), Tags: []string{"administrator", "x"}, LoopbackOnly: true}),
		"permission": EncodePermission(PermissionDef{User: "guest", VHost: "/", Configure: ".*", Write: "w", Read: "r"}),
		"schema":     EncodeSchemaDef(SchemaDef{VHost: "/", Name: "s", Doc: []byte(`{"type":"object"}`)}),
		"delayed":    EncodeDelayed("/", rec),
		"bindingKey": []byte(BindingKey("/", true, "ex", "q", "a.#", args)),
		"queueIDKey": []byte(QueueIDKey(42)),
		"vhost":      EncodeVHost("/"),
		"opaque":     EncodeOpaque([]byte("{}")),

		"queueIDCounter": EncodeQueueIDCounter(300),
		"queueIDFlags":   EncodeQueueIDFlags(true),
		"limit":          EncodeLimit(5),
		"limitNegative":  EncodeLimit(-1),
		"policy":         EncodePolicy([]byte("{}")),
	}
	if m := EncodeMark(123456); string(m) != string(got["mark"]) {
		t.Errorf("EncodeMark %x, MarkBuf.Encode %x", m, got["mark"])
	}
	for name, want := range golden {
		b, ok := got[name]
		if !ok {
			t.Errorf("%s: not encoded", name)
			continue
		}
		if h := hex.EncodeToString(b); h != want {
			t.Errorf("%s: encodes as\n%s\nwant\n%s", name, h, want)
		}
	}
}

// TestGoldenDecodings: the stored bytes decode to what was stored.
func TestGoldenDecodings(t *testing.T) {
	b := func(name string) []byte {
		v, err := hex.DecodeString(golden[name])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	m, err := DecodeRecord(b("record"))
	if err != nil || m.Exchange != "ex" || m.RoutingKey != "rk" || string(m.Body) != "hello" ||
		m.Properties.Expiration != "60000" || m.Properties.Priority != 5 || fmt.Sprint(m.Properties.Headers) != "map[h:v]" {
		t.Errorf("record: %+v %v", m, err)
	}
	if x, err := DecodeIndex(b("index")); err != nil || x != (Index{Persistent: true, Size: 5, PubMs: 1700000000123, TTL: 60000, Prio: 5}) {
		t.Errorf("index: %+v %v", x, err)
	}
	if n, due, err := DecodeState(b("stateDue")); err != nil || n != 2 || due != 1700000000000 {
		t.Errorf("state: %d %d %v", n, due, err)
	}
	if v, err := DecodeMark(b("mark")); err != nil || v != 123456 {
		t.Errorf("mark: %d %v", v, err)
	}
	if d, err := DecodeQueueDef(b("queue")); err != nil || d.ID != 42 || !d.AutoDelete || d.VHost != "v" || d.Args["x-dead-letter-exchange"] != "dlx" {
		t.Errorf("queue: %+v %v", d, err)
	}
	if d, err := DecodeExchangeDef(b("exchange")); err != nil || d.Type != "topic" || !d.Durable || !d.Internal || d.AutoDelete {
		t.Errorf("exchange: %+v %v", d, err)
	}
	if d, err := DecodeBindingDef(b("binding")); err != nil || !d.ToExchange || d.Key != "a.#" || d.Dest != "q" {
		t.Errorf("binding: %+v %v", d, err)
	}
	if u, err := DecodeUserDef(b("user")); err != nil || u.Name != "guest" || len(u.Tags) != 2 || !u.LoopbackOnly || string(u.Hash) != "hash" {
		t.Errorf("user: %+v %v", u, err)
	}
	if p, err := DecodePermission(b("permission")); err != nil || p != (PermissionDef{User: "guest", VHost: "/", Configure: ".*", Write: "w", Read: "r"}) {
		t.Errorf("permission: %+v %v", p, err)
	}
	if s, err := DecodeSchemaDef(b("schema")); err != nil || s.Name != "s" || string(s.Doc) != `{"type":"object"}` {
		t.Errorf("schema: %+v %v", s, err)
	}
	if vh, rec, err := DecodeDelayed(b("delayed")); err != nil || vh != "/" || string(rec) != string(b("record")) {
		t.Errorf("delayed: %q %v", vh, err)
	}
}

// TestRecordKeepsPropertiesAsSent: a record made of the property bytes a
// publisher sent (AppendRecordHeadRaw) holds them exactly — here a headers
// table whose keys are not in the sorted order AppendProperties writes —
// in the layout of the "record" golden, and every reader takes it: the
// split gives the bytes back, the decoder the properties.
func TestRecordKeepsPropertiesAsSent(t *testing.T) {
	const (
		props  = "3000" + "00000010" + "017a530000000131" + "0161530000000132" + "02"
		record = "01010000018bcfe5687b02657802726b00000017" + props + "68656c6c6f"
	)
	raw, _ := hex.DecodeString(props)
	m := &message.Message{Exchange: "ex", RoutingKey: "rk",
		Properties: message.Properties{Flags: message.FlagHeaders | message.FlagDeliveryMode, DeliveryMode: 2,
			Headers: message.Table{"z": "1", "a": "2"}}}
	rec := append(AppendRecordHeadRaw(nil, m, raw, 1700000000123), "hello"...)
	if h := hex.EncodeToString(rec); h != record {
		t.Fatalf("record\n%s\nwant\n%s", h, record)
	}
	parts, err := SplitRecord(rec, nil)
	if err != nil || string(parts.Props) != string(raw) || string(parts.Body) != "hello" || parts.Exchange != "ex" || parts.RoutingKey != "rk" {
		t.Fatalf("split: %+v %v", parts, err)
	}
	got, err := DecodeRecord(rec)
	if err != nil || got.Properties.Headers["z"] != "1" || got.Properties.Headers["a"] != "2" || !got.Persistent() {
		t.Fatalf("decoded: %+v %v", got, err)
	}
	if x, err := IndexOfRecord(rec); err != nil || !x.Persistent || x.Size != 5 || x.TTL != -1 {
		t.Fatalf("index: %+v %v", x, err)
	}
	// A property list cut short is caught by the decoder, and a length
	// past the record's end already by the split.
	if _, err := DecodeProperties(raw[:len(raw)-1]); err == nil {
		t.Error("a truncated property list decoded")
	}
	bad := append([]byte(nil), rec...)
	bad[len("01010000018bcfe5687b02657802726b")/2+3] = 0xff
	if _, err := SplitRecord(bad, nil); err == nil {
		t.Error("a properties length past the record's end split")
	}
}

// TestGoldenScalars: the values of scalars.go decode in their current
// layout and in the one before (reported old), and a value in neither is
// refused as an unknown version.
func TestGoldenScalars(t *testing.T) {
	b := func(m map[string]string, name string) []byte {
		v, err := hex.DecodeString(m[name])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		layout map[string]string
		old    bool
	}{{golden, false}, {goldenBefore, true}} {
		if id, old, err := DecodeQueueIDCounter("next queue id", b(c.layout, "queueIDCounter")); err != nil || id != 300 || old != c.old {
			t.Errorf("queue id counter (old %v): %d %v %v", c.old, id, old, err)
		}
		if d, old, err := DecodeQueueIDFlags(b(c.layout, "queueIDFlags")); err != nil || !d || old != c.old {
			t.Errorf("queue id flags (old %v): %v %v %v", c.old, d, old, err)
		}
		if n, old, err := DecodeLimit(b(c.layout, "limit")); err != nil || n != 5 || old != c.old {
			t.Errorf("limit (old %v): %d %v %v", c.old, n, old, err)
		}
		if n, old, err := DecodeLimit(b(c.layout, "limitNegative")); err != nil || n != -1 || old != c.old {
			t.Errorf("negative limit (old %v): %d %v %v", c.old, n, old, err)
		}
		if doc, old, err := DecodePolicy(b(c.layout, "policy")); err != nil || string(doc) != "{}" || old != c.old {
			t.Errorf("policy (old %v): %q %v %v", c.old, doc, old, err)
		}
	}
	if d, old, err := DecodeQueueIDFlags(b(goldenBefore, "queueIDFlags0")); err != nil || d || !old {
		t.Errorf("queue id flags 0: %v %v %v", d, old, err)
	}
	for name, decode := range map[string]func([]byte) error{
		"queue id counter": func(v []byte) error { _, _, err := DecodeQueueIDCounter("x", v); return err },
		"queue id flags":   func(v []byte) error { _, _, err := DecodeQueueIDFlags(v); return err },
		"limit":            func(v []byte) error { _, _, err := DecodeLimit(v); return err },
		"policy":           func(v []byte) error { _, _, err := DecodePolicy(v); return err },
	} {
		for _, v := range [][]byte{nil, {0x02, 0x01}, {0xff}} {
			err := decode(v)
			if !errors.Is(err, ErrRecord) {
				t.Errorf("%s %x: %v, want a record error", name, v, err)
			}
			if len(v) > 0 && !strings.Contains(fmt.Sprint(err), fmt.Sprintf("unknown version 0x%02x", v[0])) {
				t.Errorf("%s %x: %v does not name the version", name, v, err)
			}
		}
	}
	for name, v := range map[string][]byte{"counter 0": {0x01, 0x00}, "counter trailing": {0x01, 0x01, 0x00}, "ascii 0": []byte("0"), "ascii junk": []byte("4x")} {
		if _, _, err := DecodeQueueIDCounter("x", v); !errors.Is(err, ErrRecord) {
			t.Errorf("queue id counter %s: %v", name, err)
		}
	}
	if _, _, err := DecodeQueueIDFlags([]byte{0x01, 0x04}); !errors.Is(err, ErrRecord) {
		t.Errorf("queue id flags 0104: %v", err)
	}
	if _, _, err := DecodeLimit([]byte{0x01, 0x80}); !errors.Is(err, ErrRecord) {
		t.Errorf("limit with a torn varint: %v", err)
	}
}
