package records

import (
	"encoding/hex"
	"fmt"
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
