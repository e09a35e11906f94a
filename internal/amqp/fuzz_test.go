package amqp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

// Fuzz targets for the codec beyond FuzzReadFrame and FuzzReadMethod:
// content headers, field tables as methods carry them, and the writer's
// promise that a method with content is written whole or not at all.
// `make fuzz` runs them for FUZZTIME each; crashers go to testdata/fuzz.

func FuzzReadContentHeader(f *testing.F) {
	for _, h := range []*ContentHeader{
		{ClassID: ClassBasic},
		benchHeader(),
		{ClassID: ClassBasic, BodySize: 1 << 62, Properties: message.Properties{
			Flags:    message.FlagHeaders | message.FlagPriority | message.FlagExpiration,
			Headers:  message.Table{"x-death": []any{message.Table{"count": int64(3)}}, "f": 1.5, "b": true, "n": nil},
			Priority: 9, Expiration: "60000",
		}},
	} {
		b, err := AppendContentHeader(nil, h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadContentHeader(data)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != SyntaxError {
				t.Fatalf("error %v is not a SyntaxError *ProtocolError", err)
			}
			return
		}
		first, err := AppendContentHeader(nil, &h)
		if err != nil {
			t.Fatalf("re-encoding a decoded header: %v", err)
		}
		h2, err := ReadContentHeader(first)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		second, err := AppendContentHeader(nil, &h2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("encoding not stable:\n first % x\nsecond % x", first, second)
		}
	})
}

// FuzzFieldTable decodes data as the arguments table of queue.declare,
// the way every table-carrying method reads one.
func FuzzFieldTable(f *testing.F) {
	for _, tb := range []message.Table{
		nil,
		{"x-queue-type": "quorum", "x-max-length": int32(10)},
		{"nested": message.Table{"a": []any{int8(1), "s", message.Decimal{Scale: 2, Value: 314}}}, "bytes": []byte{0, 1}},
	} {
		b, err := AppendMethod(nil, &QueueDeclare{Queue: "q", Arguments: tb})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[4+2+1+1+1:]) // the table: after ids, ticket, queue "q" and the bits
	}
	prefix, err := AppendMethod(nil, &QueueDeclare{Queue: "q"})
	if err != nil {
		f.Fatal(err)
	}
	prefix = prefix[:4+2+1+1+1]
	f.Fuzz(func(t *testing.T, table []byte) {
		payload := append(append([]byte(nil), prefix...), table...)
		m, err := ReadMethod(payload)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != SyntaxError {
				t.Fatalf("error %v is not a SyntaxError *ProtocolError", err)
			}
			return
		}
		first, err := AppendMethod(nil, m)
		if err != nil {
			t.Fatalf("re-encoding a decoded table: %v", err)
		}
		m2, err := ReadMethod(first)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		second, err := AppendMethod(nil, m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("table encoding not stable:\n first % x\nsecond % x", first, second)
		}
	})
}

// FuzzWriteMethodContent checks that a delivery is written whole, frames
// within frameMax, and read back as written — or refused with an
// *EncodeError that left nothing in the stream.
func FuzzWriteMethodContent(f *testing.F) {
	f.Add("orders.created", "application/json", []byte("pad"), []byte("hello"), uint32(4096))
	f.Add(strings.Repeat("k", 300), "", []byte(nil), []byte(nil), uint32(0))
	f.Add("k", strings.Repeat("t", 200), bytes.Repeat([]byte("h"), 300), bytes.Repeat([]byte("b"), 1000), uint32(256))
	f.Add("", "", []byte(nil), []byte("x"), uint32(9))
	f.Add("big", "", []byte(nil), bytes.Repeat([]byte("b"), 5000), uint32(0))
	f.Add("split", "", []byte(nil), bytes.Repeat([]byte("b"), 5000), uint32(4096))
	f.Fuzz(func(t *testing.T, key, contentType string, header, body []byte, frameMax uint32) {
		// Small inputs keep the run fast; a thousand frames show the split.
		if len(body) > 1<<16 || len(header) > 1<<16 || (frameMax > frameOverhead && len(body)/int(frameMax-frameOverhead) > 1000) {
			return
		}
		m := &BasicDeliver{ConsumerTag: "c", DeliveryTag: 7, Exchange: "x", RoutingKey: key}
		props := &message.Properties{Flags: message.FlagContentType | message.FlagHeaders, ContentType: contentType,
			Headers: message.Table{"h": header}}
		var out bytes.Buffer
		out.WriteString("before")
		w := NewWriter(&out)
		err := w.WriteMethodContent(3, m, ClassBasic, props, body, frameMax)
		if ferr := w.Flush(); ferr != nil {
			t.Fatal(ferr)
		}
		if err != nil {
			var ee *EncodeError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v is not an *EncodeError", err)
			}
			if out.String() != "before" {
				t.Fatalf("a refused write left %d bytes in the stream", out.Len()-len("before"))
			}
			return
		}
		if len(key) > 255 || len(contentType) > 255 {
			t.Fatalf("a %d-byte key or %d-byte content type was encoded", len(key), len(contentType))
		}
		out.Next(len("before"))
		r := NewReader(&out)
		if frameMax == 0 {
			r.SetMaxFrameSize(1<<32 - 1) // the writer's "no limit"
		} else {
			r.SetMaxFrameSize(frameMax)
		}
		fr, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadMethod(fr.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := got.(*BasicDeliver); !ok || d.RoutingKey != key || fr.Channel != 3 {
			t.Fatalf("read back %v on channel %d", got, fr.Channel)
		}
		fr, err = r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		h, err := ReadContentHeader(fr.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if h.BodySize != uint64(len(body)) || h.Properties.ContentType != contentType || !bytes.Equal(h.Properties.Headers["h"].([]byte), header) {
			t.Fatalf("header read back differs: size %d, content type %q", h.BodySize, h.Properties.ContentType)
		}
		var got2 []byte
		for len(got2) < len(body) {
			fr, err := r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if fr.Type != FrameBody {
				t.Fatalf("frame type %d, want a body frame", fr.Type)
			}
			got2 = append(got2, fr.Payload...)
		}
		if !bytes.Equal(got2, body) {
			t.Fatal("body read back differs")
		}
		if _, err := r.ReadFrame(); err != io.EOF {
			t.Fatalf("after the content: %v, want the end of the stream", err)
		}
	})
}
