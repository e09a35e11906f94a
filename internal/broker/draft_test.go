package broker

import (
	"bytes"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
)

// TestDraftRecord checks that a draft's record, its body appended in
// pieces, is the record records.EncodeRecord makes of the same message, and that a
// draft whose reply-to changed leaves the record to records.EncodeRecord.
func TestDraftRecord(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 300)
	big := message.Table{"k": string(bytes.Repeat([]byte("v"), 500))}
	tests := []struct {
		name    string
		props   message.Properties
		pieces  []int // body split
		replyTo string
	}{
		{"empty body", message.Properties{}, nil, ""},
		{"one piece", message.Properties{Flags: message.FlagDeliveryMode, DeliveryMode: 2}, []int{3000}, ""},
		{"three pieces", message.Properties{Flags: message.FlagContentType, ContentType: "text/plain"}, []int{1000, 1999, 1}, ""},
		{"large head", message.Properties{Flags: message.FlagHeaders, Headers: big}, []int{10, 2990}, ""},
		{"reply-to rewritten", message.Properties{Flags: message.FlagReplyTo, ReplyTo: "amq.rabbitmq.reply-to"}, []int{3000}, "amq.rabbitmq.reply-to.abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := 0
			for _, n := range tt.pieces {
				size += n
			}
			d := NewDraft("ex", "key", &tt.props, nil, size)
			off := 0
			for _, n := range tt.pieces {
				d.Append(body[off : off+n])
				off += n
				if d.Len() != off {
					t.Fatalf("Len %d after %d bytes", d.Len(), off)
				}
			}
			d.seal()
			if !bytes.Equal(d.Msg.Body, body[:size]) {
				t.Fatalf("body of %d bytes differs from the %d appended", len(d.Msg.Body), size)
			}
			if tt.replyTo != "" {
				d.Msg.Properties.ReplyTo = tt.replyTo
			}
			rec := d.record(1234567)
			if tt.replyTo != "" {
				if rec != nil {
					t.Fatal("record kept after reply-to changed")
				}
				return
			}
			want, err := records.EncodeRecord(&d.Msg, 1234567)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec, want) {
				t.Fatalf("draft record\n% x\nwant\n% x", rec, want)
			}
			m, err := records.DecodeRecord(rec)
			if err != nil || m.Exchange != "ex" || m.RoutingKey != "key" || !bytes.Equal(m.Body, body[:size]) {
				t.Errorf("decoded %+v, %v", m, err)
			}
		})
	}
}

// TestDraftRoomIsBounded: a header announcing a huge body reserves at most
// draftRoomMax before the body arrives, and a body past that room still
// makes the same record as records.EncodeRecord.
func TestDraftRoomIsBounded(t *testing.T) {
	huge := NewDraft("", "q", &message.Properties{}, nil, 128<<20)
	if c := cap(huge.rec); c > draftRoomMax+1024 {
		t.Fatalf("a draft announced at 128 MiB reserved %d bytes before any body arrived, want about %d", c, draftRoomMax)
	}
	body := bytes.Repeat([]byte("abcdefgh"), (draftRoomMax+3000)/8)
	d := NewDraft("ex", "key", &message.Properties{}, nil, len(body))
	for off := 0; off < len(body); off += 131072 - 8 {
		d.Append(body[off:min(off+131072-8, len(body))])
	}
	d.seal()
	want, err := records.EncodeRecord(&d.Msg, 42)
	if err != nil {
		t.Fatal(err)
	}
	if rec := d.record(42); !bytes.Equal(rec, want) {
		t.Fatalf("record of a %d-byte body differs from records.EncodeRecord's", len(body))
	}
}

// TestDraftKeepsPropertiesAsSent: a draft given the publisher's property
// bytes puts exactly those in its record, and leaves the record to be
// encoded anew once the broker changed a property (reply-to, BCC).
func TestDraftKeepsPropertiesAsSent(t *testing.T) {
	props := message.Properties{Flags: message.FlagHeaders | message.FlagReplyTo,
		Headers: message.Table{"z": "1", "a": "2"}, ReplyTo: "r"}
	raw := []byte{0x22, 0x00, 0, 0, 0, 16, 1, 'z', 'S', 0, 0, 0, 1, '1', 1, 'a', 'S', 0, 0, 0, 1, '2', 1, 'r'}
	if p, n, err := message.ReadProperties(raw); err != nil || n != len(raw) || p.ReplyTo != "r" || p.Headers["a"] != "2" {
		t.Fatalf("the test's bytes: %+v %d %v", p, n, err)
	}
	newDraft := func() *Draft {
		d := NewDraft("ex", "key", &props, raw, 3)
		d.Append([]byte("abc"))
		d.seal()
		return d
	}
	d := newDraft()
	rec := d.record(99)
	want := append(records.AppendRecordHeadRaw(nil, &d.Msg, raw, 99), "abc"...)
	if !bytes.Equal(rec, want) {
		t.Fatalf("draft record\n% x\nwant\n% x", rec, want)
	}
	parts, err := records.SplitRecord(rec, nil)
	if err != nil || !bytes.Equal(parts.Props, raw) || string(parts.Body) != "abc" {
		t.Fatalf("split %+v %v", parts, err)
	}
	d = newDraft()
	d.Msg.Properties.ReplyTo = "amq.rabbitmq.reply-to.x"
	if d.record(99) != nil {
		t.Error("record kept after reply-to changed")
	}
	d = newDraft()
	d.recode = true // stripBCC changed the headers
	if d.record(99) != nil {
		t.Error("record kept after the headers changed")
	}
}
