package amqp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

// rawFrame builds a frame's bytes with a chosen end octet.
func rawFrame(typ uint8, channel uint16, payload []byte, end byte) []byte {
	b := []byte{typ, byte(channel >> 8), byte(channel)}
	n := len(payload)
	b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	b = append(b, payload...)
	return append(b, end)
}

func TestReadProtocolHeader(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
		eof   error
	}{
		{"0-9-1", "AMQP\x00\x00\x09\x01", true, nil},
		{"0-8", "AMQP\x01\x01\x08\x00", false, nil},
		{"http", "GET / HTTP/1.1\r\n", false, nil},
		{"short", "AMQP", false, io.ErrUnexpectedEOF},
		{"empty", "", false, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NewReader(strings.NewReader(tt.input)).ReadProtocolHeader()
			switch {
			case tt.ok:
				if err != nil {
					t.Fatalf("ReadProtocolHeader: %v", err)
				}
			case tt.eof != nil:
				if !errors.Is(err, tt.eof) {
					t.Fatalf("error %v, want %v", err, tt.eof)
				}
			default:
				wantProtocolError(t, err, FrameError, "bad protocol header")
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	var in bytes.Buffer
	in.Write(ProtocolHeader)
	in.Write(rawFrame(FrameMethod, 0, []byte("abcd"), FrameEnd))
	in.Write(rawFrame(FrameBody, 7, []byte("second"), FrameEnd))
	in.Write(rawFrame(FrameHeartbeat, 0, nil, FrameEnd))
	r := NewReader(&in)
	if err := r.ReadProtocolHeader(); err != nil {
		t.Fatal(err)
	}
	f1, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	f2, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	f3, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f1.Type != FrameMethod || f1.Channel != 0 || string(f1.Payload) != "abcd" {
		t.Errorf("first frame %+v", f1)
	}
	if f2.Type != FrameBody || f2.Channel != 7 || string(f2.Payload) != "second" {
		t.Errorf("second frame %+v", f2)
	}
	if f3.Type != FrameHeartbeat || len(f3.Payload) != 0 {
		t.Errorf("third frame %+v", f3)
	}
	// Payloads are owned by the caller: appending must not clobber anything.
	_ = append(f1.Payload, 'X')
	if string(f1.Payload) != "abcd" || string(f2.Payload) != "second" {
		t.Errorf("payloads changed: %q %q", f1.Payload, f2.Payload)
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	big := bytes.Repeat([]byte("x"), FrameMinSize-8+1)
	tests := []struct {
		name     string
		input    []byte
		maxFrame uint32
		code     uint16
		reason   string
		ioErr    error
	}{
		{"bad end octet", rawFrame(FrameMethod, 1, []byte("ab"), 0xCD), 0, FrameError, "frame-end octet is 0xcd", nil},
		{"unknown type", rawFrame(4, 0, nil, FrameEnd), 0, FrameError, "unknown frame type 4", nil},
		{"over the minimum before tuning", rawFrame(FrameBody, 1, big, FrameEnd), 0, FrameError, "size 4097 exceeds the maximum frame size 4096", nil},
		{"over the tuned max", rawFrame(FrameBody, 1, make([]byte, 93), FrameEnd), 100, FrameError, "size 101 exceeds the maximum frame size 100", nil},
		{"huge size", []byte{FrameBody, 0, 1, 0xff, 0xff, 0xff, 0xff}, 1<<32 - 1, FrameError, "exceeds the maximum", nil},
		{"truncated header", []byte{FrameBody, 0}, 0, 0, "", io.ErrUnexpectedEOF},
		{"truncated payload", rawFrame(FrameBody, 1, []byte("abc"), FrameEnd)[:9], 0, 0, "", io.ErrUnexpectedEOF},
		{"missing end", rawFrame(FrameBody, 1, []byte("abc"), FrameEnd)[:10], 0, 0, "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.input))
			r.SetMaxFrameSize(tt.maxFrame)
			_, err := r.ReadFrame()
			if tt.ioErr != nil {
				if !errors.Is(err, tt.ioErr) {
					t.Fatalf("error %v, want %v", err, tt.ioErr)
				}
				return
			}
			wantProtocolError(t, err, tt.code, tt.reason)
		})
	}
}

func TestReadFrameExactlyAtMax(t *testing.T) {
	r := NewReader(bytes.NewReader(rawFrame(FrameBody, 1, make([]byte, 92), FrameEnd)))
	r.SetMaxFrameSize(100)
	f, err := r.ReadFrame()
	if err != nil || len(f.Payload) != 92 {
		t.Fatalf("ReadFrame = %d-byte payload, %v; want 92 bytes, nil", len(f.Payload), err)
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriterFrames(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	if err := w.WriteMethod(3, &BasicQos{PrefetchCount: 10}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeartbeat(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(Frame{Type: FrameBody, Channel: 9, Payload: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("%d bytes reached the writer before Flush", out.Len())
	}
	want := rawFrame(FrameMethod, 3, []byte("\x00\x3c\x00\x0a\x00\x00\x00\x00\x00\x0a\x00"), FrameEnd)
	want = append(want, rawFrame(FrameHeartbeat, 0, nil, FrameEnd)...)
	want = append(want, rawFrame(FrameBody, 9, []byte("hi"), FrameEnd)...)
	if w.Buffered() != len(want) {
		t.Errorf("Buffered = %d, want %d", w.Buffered(), len(want))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("wrote % x\nwant  % x", out.Bytes(), want)
	}
	if w.Buffered() != 0 {
		t.Errorf("Buffered after Flush = %d", w.Buffered())
	}

	bad := NewWriter(errWriter{})
	if err := bad.WriteHeartbeat(); err != nil {
		t.Fatal(err)
	}
	if err := bad.Flush(); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("Flush to a failing writer: %v, want broken pipe", err)
	}
	if err := NewWriter(&out).WriteMethod(1, &BasicPublish{Exchange: strings.Repeat("e", 300)}); err == nil {
		t.Error("WriteMethod of an over-long exchange name succeeded")
	}
}

func TestWriteContentSplitting(t *testing.T) {
	const frameMax = 30 // 22 payload bytes per body frame; a bare header frame is 22 bytes
	tests := []struct {
		name      string
		bodyLen   int
		frameMax  uint32
		wantSizes []int
	}{
		{"empty body has no body frames", 0, frameMax, nil},
		{"one byte", 1, frameMax, []int{1}},
		{"exactly one frame", 22, frameMax, []int{22}},
		{"one over", 23, frameMax, []int{22, 1}},
		{"exactly two", 44, frameMax, []int{22, 22}},
		{"two and a bit", 45, frameMax, []int{22, 22, 1}},
		{"no limit", 100000, 0, []int{100000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := make([]byte, tt.bodyLen)
			for i := range body {
				body[i] = byte(i)
			}
			var out bytes.Buffer
			w := NewWriter(&out)
			props := &message.Properties{Flags: message.FlagContentType, ContentType: "text/plain"}
			if tt.frameMax != 0 {
				props = &message.Properties{} // the header frame must fit too
			}
			if err := w.WriteContent(5, ClassBasic, props, body, tt.frameMax); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			r := NewReader(&out)
			r.SetMaxFrameSize(1 << 20)
			hf, err := r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if hf.Type != FrameHeader || hf.Channel != 5 {
				t.Fatalf("first frame %+v, want a header on channel 5", hf)
			}
			h, err := ReadContentHeader(hf.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if h.ClassID != ClassBasic || h.BodySize != uint64(tt.bodyLen) || h.Properties.ContentType != props.ContentType {
				t.Errorf("content header %+v", h)
			}
			var got []byte
			var sizes []int
			for {
				f, err := r.ReadFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if f.Type != FrameBody || f.Channel != 5 {
					t.Fatalf("frame %+v, want a body frame on channel 5", f)
				}
				if tt.frameMax != 0 && len(f.Payload)+8 > int(tt.frameMax) {
					t.Errorf("body frame of %d bytes exceeds frame max %d", len(f.Payload)+8, tt.frameMax)
				}
				sizes = append(sizes, len(f.Payload))
				got = append(got, f.Payload...)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("reassembled body differs (%d bytes, want %d)", len(got), len(body))
			}
			if len(sizes) != len(tt.wantSizes) {
				t.Fatalf("body frame sizes %v, want %v", sizes, tt.wantSizes)
			}
			for i := range sizes {
				if sizes[i] != tt.wantSizes[i] {
					t.Fatalf("body frame sizes %v, want %v", sizes, tt.wantSizes)
				}
			}
		})
	}
}

func TestWriteContentErrors(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.WriteContent(1, ClassBasic, nil, []byte("x"), 8); err == nil {
		t.Error("frame max 8 accepted")
	}
	props := &message.Properties{Flags: message.FlagMessageID, MessageID: strings.Repeat("m", 200)}
	err := w.WriteContent(1, ClassBasic, props, nil, 100)
	if err == nil || !strings.Contains(err.Error(), "exceeds frame max 100") {
		t.Errorf("oversized header frame: %v, want an error", err)
	}
	if w.Buffered() != 0 {
		t.Errorf("%d bytes buffered after failed writes", w.Buffered())
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(rawFrame(FrameMethod, 0, []byte("\x00\x0a\x00\x0b"), FrameEnd), uint32(0))
	f.Add(append(rawFrame(FrameHeader, 1, make([]byte, 14), FrameEnd), rawFrame(FrameBody, 1, []byte("body"), FrameEnd)...), uint32(64))
	f.Add(rawFrame(FrameHeartbeat, 0, nil, FrameEnd), uint32(8))
	f.Add(rawFrame(9, 0, nil, 0), uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, maxFrame uint32) {
		r := NewReader(bytes.NewReader(data))
		r.SetMaxFrameSize(maxFrame)
		var rewritten bytes.Buffer
		w := NewWriter(&rewritten)
		consumed := 0
		for i := 0; ; i++ {
			// The server reads with ReadFrameShared; both must agree.
			read := r.ReadFrame
			if i%2 == 1 {
				read = r.ReadFrameShared
			}
			fr, err := read()
			if err != nil {
				var pe *ProtocolError
				if err != io.EOF && err != io.ErrUnexpectedEOF && (!errors.As(err, &pe) || pe.Code != FrameError) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			limit := maxFrame
			if limit == 0 {
				limit = FrameMinSize
			}
			if uint64(len(fr.Payload))+8 > uint64(limit) {
				t.Fatalf("accepted a %d-byte frame over the limit %d", len(fr.Payload)+8, limit)
			}
			consumed += len(fr.Payload) + 8
			if err := w.WriteFrame(fr); err != nil {
				t.Fatal(err)
			}
			// Decoding the payload must fail cleanly or succeed, never panic.
			switch fr.Type {
			case FrameMethod:
				_, _ = ReadMethod(fr.Payload)
			case FrameHeader:
				_, _ = ReadContentHeader(fr.Payload)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rewritten.Bytes(), data[:consumed]) {
			t.Fatalf("frames re-written differ from the input they were read from")
		}
	})
}

func BenchmarkReadFrame(b *testing.B)       { benchmarkRead(b, (*Reader).ReadFrame) }
func BenchmarkReadFrameShared(b *testing.B) { benchmarkRead(b, (*Reader).ReadFrameShared) }

// benchmarkRead reads 1 KiB body frames with read, over and over.
func benchmarkRead(b *testing.B, read func(*Reader) (Frame, error)) {
	frame := rawFrame(FrameBody, 1, make([]byte, 1024), FrameEnd)
	data := bytes.Repeat(frame, 1000)
	rd := bytes.NewReader(data)
	r := NewReader(rd)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := read(r); err == io.EOF {
			rd.Reset(data)
			r = NewReader(rd)
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadFrameShared reads frames of sizes on both sides of the bufio
// buffer (64 KiB), whose payloads come from the buffer itself or from the
// reader's kept large buffer, and checks each before the next read.
func TestReadFrameShared(t *testing.T) {
	sizes := []int{0, 1, 1024, 64<<10 - 1, 64 << 10, 64<<10 + 1, 200 << 10, 10, 150 << 10, 2 << 20, 3, 200 << 10}
	var data []byte
	var want [][]byte
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i*31 + j*7)
		}
		want = append(want, p)
		data = append(data, rawFrame(FrameBody, uint16(i), p, FrameEnd)...)
	}
	r := NewReader(bytes.NewReader(data))
	r.SetMaxFrameSize(1<<32 - 1)
	var kept []Frame
	for i := range sizes {
		f, err := r.ReadFrameShared()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Channel != uint16(i) || !bytes.Equal(f.Payload, want[i]) {
			t.Fatalf("frame %d: channel %d, %d bytes; want channel %d, %d bytes as written", i, f.Channel, len(f.Payload), i, len(want[i]))
		}
		if cap(f.Payload) != len(f.Payload) {
			t.Errorf("frame %d: payload capacity %d beyond its length %d", i, cap(f.Payload), len(f.Payload))
		}
		kept = append(kept, f)
	}
	if _, err := r.ReadFrameShared(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
	// Shared payloads may be overwritten by later reads; ReadFrame's not.
	r = NewReader(bytes.NewReader(data))
	r.SetMaxFrameSize(1<<32 - 1)
	kept = kept[:0]
	for range sizes {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, f)
	}
	for i, f := range kept {
		if !bytes.Equal(f.Payload, want[i]) {
			t.Errorf("ReadFrame payload %d changed after later reads", i)
		}
	}
}

func TestReadFrameSharedTruncated(t *testing.T) {
	for _, n := range []int{100, 100 << 10} {
		frame := rawFrame(FrameBody, 1, make([]byte, n), FrameEnd)
		for _, cut := range []int{7, 8, len(frame) - 1} {
			r := NewReader(bytes.NewReader(frame[:cut]))
			r.SetMaxFrameSize(1<<32 - 1)
			if _, err := r.ReadFrameShared(); err != io.ErrUnexpectedEOF {
				t.Errorf("%d-byte frame cut at %d: %v, want io.ErrUnexpectedEOF", n, cut, err)
			}
		}
	}
}

func TestReadFrameLarge(t *testing.T) {
	payload := make([]byte, 3<<20+5)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	r := NewReader(bytes.NewReader(rawFrame(FrameBody, 2, payload, FrameEnd)))
	r.SetMaxFrameSize(1<<32 - 1)
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Payload, payload) {
		t.Error("large payload differs")
	}
	// A frame announcing 4 GiB and ending early is an EOF, not an allocation.
	huge := append([]byte{FrameBody, 0, 2, 0xff, 0xff, 0xff, 0xf0}, payload[:100]...)
	r = NewReader(bytes.NewReader(huge))
	r.SetMaxFrameSize(1<<32 - 1)
	if _, err := r.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated large frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestPropertiesPassedOnAsSent: the property bytes of a received content
// header are written out exactly by WriteMethodContentRaw (a headers
// table in an order AppendProperties would not write), in the same frames
// WriteMethodContent writes for their decoded form but for those bytes;
// a list with a flag bit that names no property is not passed on raw.
func TestPropertiesPassedOnAsSent(t *testing.T) {
	props := []byte{0x30, 0x00, 0, 0, 0, 16, 1, 'z', 'S', 0, 0, 0, 1, '1', 1, 'a', 'S', 0, 0, 0, 1, '2', 2}
	payload := append([]byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}, props...)
	h, err := ReadContentHeader(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw := PropertyBytes(payload)
	if !bytes.Equal(raw, props) {
		t.Fatalf("PropertyBytes = % x, want % x", raw, props)
	}
	deliver := &BasicDeliver{ConsumerTag: "c", DeliveryTag: 7, Exchange: "ex", RoutingKey: "rk"}
	var asSent, encoded bytes.Buffer
	w := NewWriter(&asSent)
	if err := w.WriteMethodContentRaw(1, deliver, ClassBasic, raw, []byte("hello"), 4096); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	w = NewWriter(&encoded)
	if err := w.WriteMethodContent(1, deliver, ClassBasic, &h.Properties, []byte("hello"), 4096); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if !bytes.Contains(asSent.Bytes(), payload[:4]) || !bytes.Contains(asSent.Bytes(), props) {
		t.Fatalf("raw write lost the property bytes:\n% x", asSent.Bytes())
	}
	if asSent.Len() != encoded.Len() || bytes.Equal(asSent.Bytes(), encoded.Bytes()) {
		t.Fatalf("raw and encoded writes: %d and %d bytes, equal %v (the encoder sorts the keys)",
			asSent.Len(), encoded.Len(), bytes.Equal(asSent.Bytes(), encoded.Bytes()))
	}
	r := NewReader(&asSent)
	for _, want := range []uint8{FrameMethod, FrameHeader, FrameBody} {
		f, err := r.ReadFrame()
		if err != nil || f.Type != want {
			t.Fatalf("frame %+v %v, want type %d", f, err, want)
		}
		if f.Type == FrameHeader {
			got, err := ReadContentHeader(f.Payload)
			if err != nil || got.BodySize != 5 || got.ClassID != ClassBasic || !bytes.Equal(f.Payload[12:], props) {
				t.Fatalf("header %+v %v", got, err)
			}
		}
	}
	for _, flags := range [][2]byte{{0x30, 0x01}, {0x30, 0x02}} { // continuation; reserved bit
		p := append([]byte(nil), payload...)
		p[12], p[13] = flags[0], flags[1]
		if PropertyBytes(p) != nil {
			t.Errorf("flags % x passed on raw", flags)
		}
	}
}

// TestWriteDeliveryAllocatesNothing: writing a delivery (method, header
// with stored property bytes, body) into the buffer allocates nothing once
// the encoding buffer has grown; a frame header used to escape to the
// heap, one allocation per frame.
func TestWriteDeliveryAllocatesNothing(t *testing.T) {
	w := NewWriter(io.Discard)
	m := &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1, Exchange: "ex", RoutingKey: "rk"}
	props := []byte{0x10, 0x00, 2}
	body := make([]byte, 1024)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := w.WriteMethodContentRaw(1, m, ClassBasic, props, body, 131072); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per delivery written, want 0", allocs)
	}
}
