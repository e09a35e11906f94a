package amqp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/sluicemq/sluice/internal/message"
)

// ProtocolHeader is what a 0-9-1 client sends first, and what a server
// answers with before closing when the client sent anything else.
var ProtocolHeader = []byte("AMQP\x00\x00\x09\x01")

// frameOverhead is a frame's bytes besides its payload: type, channel, size
// and the frame-end octet.
const frameOverhead = 8

// Frame is one AMQP frame: its type (FrameMethod, FrameHeader, FrameBody,
// FrameHeartbeat), channel and payload.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// Reader reads the protocol header and frames from a byte stream through a
// bufio.Reader. It is not safe for concurrent use.
type Reader struct {
	br       *bufio.Reader
	maxFrame uint32
	hdr      [7]byte
	large    []byte // payload buffer of frames larger than br's buffer
}

// NewReader returns a Reader of r whose frame limit is FrameMinSize until
// SetMaxFrameSize raises it.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), maxFrame: FrameMinSize}
}

// SetMaxFrameSize sets the largest frame ReadFrame accepts, counting the 8
// bytes of frame overhead, normally the frame-max negotiated by tune/tune-ok.
// 0 means FrameMinSize; a negotiated "no limit" (frame-max 0) must be passed
// as math.MaxUint32.
func (r *Reader) SetMaxFrameSize(n uint32) {
	if n == 0 {
		n = FrameMinSize
	}
	r.maxFrame = n
}

// ReadProtocolHeader reads the 8-byte protocol header a client opens with. A
// header other than ProtocolHeader is a *ProtocolError (FrameError); the
// server then writes ProtocolHeader and closes, as the spec says.
func (r *Reader) ReadProtocolHeader() error {
	var h [8]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return err
	}
	if !bytes.Equal(h[:], ProtocolHeader) {
		return &ProtocolError{Code: FrameError, Reason: fmt.Sprintf("bad protocol header %q, want %q", h[:], ProtocolHeader)}
	}
	return nil
}

// ReadFrame reads the next frame. Errors of the underlying reader (io.EOF
// between frames, io.ErrUnexpectedEOF within one, network errors) pass
// through; a frame larger than the limit, without the frame-end octet or of
// an unknown type is a *ProtocolError with FrameError. The payload is freshly
// allocated and safe to keep.
func (r *Reader) ReadFrame() (Frame, error) {
	f, err := r.ReadFrameShared()
	if err != nil {
		return Frame{}, err
	}
	f.Payload = bytes.Clone(f.Payload)
	if f.Payload == nil {
		f.Payload = []byte{}
	}
	return f, nil
}

// ReadFrameShared is ReadFrame without the copy: the payload aliases the
// Reader's buffers and is valid only until the next call of a Reader
// method. A caller that keeps any of it must copy it.
func (r *Reader) ReadFrameShared() (Frame, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Type: r.hdr[0], Channel: binary.BigEndian.Uint16(r.hdr[1:])}
	size := binary.BigEndian.Uint32(r.hdr[3:])
	if uint64(size)+frameOverhead > uint64(r.maxFrame) {
		return Frame{}, &ProtocolError{Code: FrameError, Reason: fmt.Sprintf(
			"frame of type %d on channel %d: size %d exceeds the maximum frame size %d", f.Type, f.Channel, uint64(size)+frameOverhead, r.maxFrame)}
	}
	// Read the payload and the frame-end octet together, then drop the end
	// from the slice's capacity so appends by the caller cannot see it.
	buf, err := r.payload(int(size) + 1)
	if err != nil {
		return Frame{}, err
	}
	if end := buf[size]; end != FrameEnd {
		return Frame{}, &ProtocolError{Code: FrameError, Reason: fmt.Sprintf(
			"frame of type %d on channel %d: frame-end octet is 0x%02x, want 0x%02x", f.Type, f.Channel, end, FrameEnd)}
	}
	switch f.Type {
	case FrameMethod, FrameHeader, FrameBody, FrameHeartbeat:
	default:
		return Frame{}, &ProtocolError{Code: FrameError, Reason: fmt.Sprintf("unknown frame type %d on channel %d", f.Type, f.Channel)}
	}
	f.Payload = buf[:size:size]
	return f, nil
}

// maxKeptPayload bounds the payload buffer a Reader keeps between frames
// too large for its bufio.Reader.
const maxKeptPayload = 1 << 20

// payload reads the next n bytes into a buffer valid until the next read:
// the bufio.Reader's own when they fit in it (no copy), else a kept one.
func (r *Reader) payload(n int) ([]byte, error) {
	if n <= r.br.Size() {
		buf, err := r.br.Peek(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		r.br.Discard(n) // cannot fail: Peek returned n bytes
		return buf, nil
	}
	if n <= cap(r.large) {
		buf := r.large[:n]
		if _, err := io.ReadFull(r.br, buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return buf, nil
	}
	buf, err := readN(r.br, n)
	if err == nil && cap(buf) <= maxKeptPayload {
		r.large = buf
	}
	return buf, err
}

// readN reads exactly n bytes. Past the first MiB it grows its buffer only as
// data arrives, so a peer announcing a huge frame and sending little cannot
// make it allocate the announced size up front.
func readN(r io.Reader, n int) ([]byte, error) {
	const step = 1 << 20
	buf := make([]byte, 0, min(n, step))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), cap(buf)))
		}
		m, err := io.ReadFull(r, buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// Writer writes frames through a bufio.Writer it owns. Nothing reaches the
// underlying writer before Flush (or a full buffer). It is not safe for
// concurrent use.
type Writer struct {
	bw      *bufio.Writer
	scratch []byte  // reused encoding buffer for method and header payloads
	hdr     [7]byte // a frame's header: a local array would escape through bw.Write, one allocation per frame
}

// NewWriter returns a Writer buffering writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 64<<10)}
}

// WriteFrame writes one frame.
func (w *Writer) WriteFrame(f Frame) error {
	return w.writeFrame(f.Type, f.Channel, f.Payload)
}

func (w *Writer) writeFrame(typ uint8, channel uint16, payload []byte) error {
	if uint64(len(payload)) > 1<<32-1 {
		return fmt.Errorf("write frame: payload of %d bytes, longer than 4 GiB", len(payload))
	}
	hdr := w.hdr[:]
	hdr[0] = typ
	binary.BigEndian.PutUint16(hdr[1:], channel)
	binary.BigEndian.PutUint32(hdr[3:], uint32(len(payload)))
	if _, err := w.bw.Write(hdr); err != nil {
		return err
	}
	if _, err := w.bw.Write(payload); err != nil {
		return err
	}
	return w.bw.WriteByte(FrameEnd)
}

// EncodeError is a frame the Writer could not encode: an argument that
// does not fit its wire type (a short string over 255 bytes, a header frame
// over the frame max). Nothing of the frame, or of the method and content it
// belongs to, was written: the stream is intact and the caller may go on.
type EncodeError struct{ Err error }

func (e *EncodeError) Error() string { return e.Err.Error() }
func (e *EncodeError) Unwrap() error { return e.Err }

// WriteMethod encodes m and writes it as a method frame on channel.
func (w *Writer) WriteMethod(channel uint16, m Method) error {
	p, err := AppendMethod(w.scratch[:0], m)
	if err != nil {
		return &EncodeError{err}
	}
	w.keepScratch(p)
	return w.writeFrame(FrameMethod, channel, p)
}

// WriteContent writes a content header frame for body with props, then the
// body in body frames, splitting it so that every frame, overhead included,
// is at most frameMax bytes (0 means no limit). An empty body has no body
// frames. It does not write the method the content belongs to.
func (w *Writer) WriteContent(channel uint16, classID uint16, props *message.Properties, body []byte, frameMax uint32) error {
	return w.WriteMethodContent(channel, nil, classID, props, body, frameMax)
}

// WriteMethodContent writes m (unless nil) followed by its content, as
// WriteContent does. Both are encoded before anything is written, so an
// *EncodeError leaves the stream as it was.
func (w *Writer) WriteMethodContent(channel uint16, m Method, classID uint16, props *message.Properties, body []byte, frameMax uint32) error {
	return w.writeMethodContent(channel, m, classID, props, nil, body, frameMax)
}

// WriteMethodContentRaw is WriteMethodContent with the properties already
// encoded: rawProps, a property list (flags, then the present properties)
// as ReadContentHeader accepts it, is written as is.
func (w *Writer) WriteMethodContentRaw(channel uint16, m Method, classID uint16, rawProps []byte, body []byte, frameMax uint32) error {
	return w.writeMethodContent(channel, m, classID, nil, rawProps, body, frameMax)
}

// writeMethodContent writes m and its content with the properties rawProps
// when not nil, else props encoded.
func (w *Writer) writeMethodContent(channel uint16, m Method, classID uint16, props *message.Properties, rawProps []byte, body []byte, frameMax uint32) error {
	if frameMax != 0 && frameMax <= frameOverhead {
		return &EncodeError{fmt.Errorf("write content: frame max %d leaves no room for a payload", frameMax)}
	}
	p := w.scratch[:0]
	var err error
	if m != nil {
		if p, err = AppendMethod(p, m); err != nil {
			return &EncodeError{err}
		}
	}
	split := len(p)
	if rawProps != nil {
		p = binary.BigEndian.AppendUint16(p, classID)
		p = binary.BigEndian.AppendUint16(p, 0) // weight
		p = binary.BigEndian.AppendUint64(p, uint64(len(body)))
		p = append(p, rawProps...)
	} else {
		h := ContentHeader{ClassID: classID, BodySize: uint64(len(body))}
		if props != nil {
			h.Properties = *props
		}
		if p, err = AppendContentHeader(p, &h); err != nil {
			return &EncodeError{err}
		}
	}
	w.keepScratch(p)
	if frameMax != 0 && uint64(split)+frameOverhead > uint64(frameMax) {
		return &EncodeError{fmt.Errorf("write content: method frame of %d bytes exceeds frame max %d", split+frameOverhead, frameMax)}
	}
	if frameMax != 0 && uint64(len(p)-split)+frameOverhead > uint64(frameMax) {
		return &EncodeError{fmt.Errorf("write content: header frame of %d bytes exceeds frame max %d", len(p)-split+frameOverhead, frameMax)}
	}
	if m != nil {
		if err := w.writeFrame(FrameMethod, channel, p[:split]); err != nil {
			return err
		}
	}
	if err := w.writeFrame(FrameHeader, channel, p[split:]); err != nil {
		return err
	}
	chunk := len(body)
	if frameMax != 0 {
		chunk = int(frameMax - frameOverhead)
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		if err := w.writeFrame(FrameBody, channel, body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

// keepScratch keeps p's array for the next encoding unless it grew large.
func (w *Writer) keepScratch(p []byte) {
	if cap(p) <= maxScratch {
		w.scratch = p
	}
}

// maxScratch bounds the encoding buffer a Writer keeps between writes.
const maxScratch = 64 << 10

// WriteHeartbeat writes a heartbeat frame (channel 0, empty payload).
func (w *Writer) WriteHeartbeat() error {
	return w.writeFrame(FrameHeartbeat, 0, nil)
}

// Flush writes buffered frames to the underlying writer.
func (w *Writer) Flush() error {
	return w.bw.Flush()
}

// Buffered returns how many bytes are buffered and not yet flushed.
func (w *Writer) Buffered() int {
	return w.bw.Buffered()
}
