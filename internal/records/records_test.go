package records

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

func sampleMessage() *message.Message {
	m := &message.Message{Exchange: "ex", RoutingKey: "a.b", Body: []byte("hello")}
	p := &m.Properties
	p.Flags = message.FlagContentType | message.FlagHeaders | message.FlagDeliveryMode | message.FlagTimestamp | message.FlagReplyTo
	p.ContentType = "text/plain"
	p.Headers = message.Table{"n": int32(7), "s": "x", "arr": []any{int64(1), "two"}}
	p.DeliveryMode = message.Persistent
	p.Timestamp = time.Unix(1700000000, 0).UTC()
	p.ReplyTo = "r"
	return m
}

func TestRecordRoundTrip(t *testing.T) {
	m := sampleMessage()
	rec, err := EncodeRecord(m, 1234)
	if err != nil {
		t.Fatal(err)
	}
	flags, err := RecordFlags(rec)
	if err != nil || flags&FlagPersistent == 0 || RecordPublished(rec) != 1234 {
		t.Fatalf("flags %x, %v", flags, err)
	}
	if n, err := RecordBodySize(rec); err != nil || n != len(m.Body) {
		t.Fatalf("body size %d, %v", n, err)
	}
	got, err := DecodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.Exchange != m.Exchange || got.RoutingKey != m.RoutingKey || !bytes.Equal(got.Body, m.Body) ||
		got.Properties.Flags != m.Properties.Flags || got.Properties.ContentType != "text/plain" ||
		!(fmt.Sprint(got.Properties.Headers) == fmt.Sprint(m.Properties.Headers)) || !got.Properties.Timestamp.Equal(m.Properties.Timestamp) {
		t.Fatalf("round trip: got %+v, want %+v", got, m)
	}
	again, err := EncodeRecord(got, 1234)
	if err != nil || !bytes.Equal(again, rec) {
		t.Fatalf("re-encoding differs: %v", err)
	}
}

func TestRecordCorruptionDetected(t *testing.T) {
	rec, err := EncodeRecord(sampleMessage(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0}, rec[:5], rec[:20], rec[:12]} {
		if _, err := DecodeRecord(bad); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("DecodeRecord(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestDefinitionRoundTrip(t *testing.T) {
	args := message.Table{"x-max-length": int32(3)}
	xv, err := EncodeExchangeDef(ExchangeDef{VHost: "/", Name: "x", Type: "topic", Durable: true, Internal: true, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	x, err := DecodeExchangeDef(xv)
	if err != nil || x.Name != "x" || x.Type != "topic" || !x.Durable || x.AutoDelete || !x.Internal || !(fmt.Sprint(x.Args) == fmt.Sprint(args)) {
		t.Fatalf("exchange def %+v %v", x, err)
	}
	qv, _ := EncodeQueueDef(QueueDef{VHost: "/", Name: "q", ID: 42, AutoDelete: true, Args: args})
	q, err := DecodeQueueDef(qv)
	if err != nil || q.ID != 42 || !q.AutoDelete || q.Name != "q" {
		t.Fatalf("queue def %+v %v", q, err)
	}
	bv, _ := EncodeBindingDef(BindingDef{VHost: "/", Source: "s", ToExchange: true, Dest: "d", Key: "k", Args: args})
	bd, err := DecodeBindingDef(bv)
	if err != nil || bd.Source != "s" || !bd.ToExchange || bd.Dest != "d" || bd.Key != "k" {
		t.Fatalf("binding def %+v %v", bd, err)
	}
	u := UserDef{Name: "u", Tags: []string{"administrator"}, LoopbackOnly: true}
	u.Salt, u.Hash = access.SHA256Hash("pw").Record()
	u2, err := DecodeUserDef(EncodeUserDef(u))
	if err != nil || u2.Name != "u" || !bytes.Equal(u2.Hash, u.Hash) || !u2.LoopbackOnly || len(u2.Tags) != 1 {
		t.Fatalf("user def %+v %v", u2, err)
	}
	if n, _, err := DecodeState(EncodeState(3)); err != nil || n != 3 {
		t.Fatalf("state %d %v", n, err)
	}
}

// FuzzDecodeRecord checks that decoding never panics and that whatever
// decodes re-encodes to a record that decodes to the same message.
func FuzzDecodeRecord(f *testing.F) {
	rec, _ := EncodeRecord(sampleMessage(), 1)
	f.Add(rec)
	plain, _ := EncodeRecord(&message.Message{RoutingKey: "q"}, 0)
	f.Add(plain)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeRecord(b)
		_, _ = RecordBodySize(b)
		_, _, _ = DecodeState(b)
		_, _ = DecodeExchangeDef(b)
		_, _ = DecodeQueueDef(b)
		_, _ = DecodeBindingDef(b)
		_, _ = DecodeUserDef(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := EncodeRecord(m, 1234)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := DecodeRecord(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if m2.Exchange != m.Exchange || m2.RoutingKey != m.RoutingKey || !bytes.Equal(m2.Body, m.Body) ||
			m2.Properties.Flags != m.Properties.Flags {
			t.Fatalf("round trip changed the message")
		}
	})
}
