package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/message"
)

// The batching client (Config.Client = ClientBatching) is a minimal AMQP
// 0-9-1 publisher on Sluice's own codec. It buffers publishes and writes
// only when it must: when no confirm window token is free (it flushes, then
// blocks for one), when batchFlushAt bytes are buffered, or when the phase
// ends. A burst of confirms thus becomes a burst of publishes in one write
// system call, without timers and without added latency.

const (
	// batchFlushAt is the buffered size at which the publisher writes even
	// though window tokens are free.
	batchFlushAt = 64 << 10
	// batchFrameMax caps the frame size the client accepts in tune-ok.
	batchFrameMax = 131072
	// batchCloseTimeout bounds the polite channel and connection close.
	batchCloseTimeout = 5 * time.Second
	// batchChannel is the one channel the client opens.
	batchChannel = 1
)

// amqpTarget is where and as whom the batching client connects, parsed from
// the run's URL the way amqp091-go reads it.
type amqpTarget struct {
	addr       string // host:port
	tls        bool
	serverName string
	tlsConf    *tls.Config // nil: ServerName only
	user       string
	password   string
	vhost      string
}

// parseAMQPURL reads an amqp:// or amqps:// URL: user and password default
// to guest, the port to 5672 (5671 for amqps), the vhost to "/"; the path
// after its leading slash, percent-decoded, names any other vhost
// ("/%2f" is "/").
func parseAMQPURL(raw string) (amqpTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return amqpTarget{}, fmt.Errorf("parse url: %w", err)
	}
	t := amqpTarget{user: "guest", password: "guest", vhost: "/"}
	port := "5672"
	switch u.Scheme {
	case "amqp":
	case "amqps":
		t.tls, port = true, "5671"
	default:
		return amqpTarget{}, fmt.Errorf("url %q: scheme must be amqp or amqps", redactURL(raw))
	}
	host := u.Hostname()
	if host == "" {
		return amqpTarget{}, fmt.Errorf("url %q: no host", redactURL(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return amqpTarget{}, fmt.Errorf("url %q: bad port %q", redactURL(raw), p)
		}
		port = p
	}
	t.addr, t.serverName = net.JoinHostPort(host, port), host
	if u.User != nil {
		t.user = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			t.password = pw
		}
	}
	if len(u.Path) > 1 {
		t.vhost = u.Path[1:]
	}
	return t, nil
}

// ServerCloseError is a channel.close or connection.close the broker sent:
// its reply code and text and the method it refused.
type ServerCloseError struct {
	Connection bool // connection.close rather than channel.close
	Code       uint16
	Text       string
	ClassID    uint16
	MethodID   uint16
}

func (e *ServerCloseError) Error() string {
	scope := "channel"
	if e.Connection {
		scope = "connection"
	}
	return fmt.Sprintf("broker closed the %s: %d %s (class %d, method %d)", scope, e.Code, e.Text, e.ClassID, e.MethodID)
}

// batchConn is one connection of the batching client, with channel 1 open.
// Its writer belongs to the publisher goroutine; its reader to the
// handshake, then to the confirmReader.
type batchConn struct {
	nc       net.Conn
	r        *amqp.Reader
	w        *amqp.Writer
	frameMax uint32
}

// openBatchConn dials t, hands the socket to track (which closes it when
// the run stops), then does the handshake: connection, channel 1 and, when
// confirms, confirm.select. The handshake is bounded by dialTimeout.
func openBatchConn(ctx context.Context, t amqpTarget, name string, confirms bool, track func(io.Closer) error) (*batchConn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	var (
		nc  net.Conn
		err error
	)
	if t.tls {
		conf := &tls.Config{}
		if t.tlsConf != nil {
			conf = t.tlsConf.Clone()
		}
		if conf.ServerName == "" {
			conf.ServerName = t.serverName
		}
		td := &tls.Dialer{NetDialer: d, Config: conf}
		nc, err = td.DialContext(ctx, "tcp", t.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", t.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t.addr, err)
	}
	if err := track(nc); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t.addr, err)
	}
	c := &batchConn{nc: nc, r: amqp.NewReader(nc), w: amqp.NewWriter(nc)}
	if err := nc.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if err := c.handshake(t, name, confirms); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake with %s: %w", t.addr, err)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return c, nil
}

func (c *batchConn) handshake(t amqpTarget, name string, confirms bool) error {
	if _, err := c.nc.Write(amqp.ProtocolHeader); err != nil {
		return fmt.Errorf("write protocol header: %w", err)
	}
	start, err := expect[*amqp.ConnectionStart](c)
	if err != nil {
		return err
	}
	if !slices.Contains(strings.Fields(start.Mechanisms), "PLAIN") {
		return fmt.Errorf("broker offers mechanisms %q, not PLAIN", start.Mechanisms)
	}
	err = c.send(0, &amqp.ConnectionStartOk{
		ClientProperties: message.Table{
			"connection_name": "sluice-bench " + name,
			"product":         "sluice-bench",
		},
		Mechanism: "PLAIN",
		Response:  "\x00" + t.user + "\x00" + t.password,
		Locale:    "en_US",
	})
	if err != nil {
		return err
	}
	tune, err := expect[*amqp.ConnectionTune](c)
	if err != nil {
		return err
	}
	ok := tuneOk(tune)
	if ok.FrameMax < amqp.FrameMinSize {
		return fmt.Errorf("broker's frame-max %d is below the minimum %d", tune.FrameMax, amqp.FrameMinSize)
	}
	c.frameMax = ok.FrameMax
	c.r.SetMaxFrameSize(ok.FrameMax)
	if err := c.write(0, ok); err != nil {
		return err
	}
	if err := c.send(0, &amqp.ConnectionOpen{VirtualHost: t.vhost}); err != nil {
		return err
	}
	if _, err := expect[*amqp.ConnectionOpenOk](c); err != nil {
		return err
	}
	if err := c.send(batchChannel, &amqp.ChannelOpen{}); err != nil {
		return err
	}
	if _, err := expect[*amqp.ChannelOpenOk](c); err != nil {
		return err
	}
	if !confirms {
		return nil
	}
	if err := c.send(batchChannel, &amqp.ConfirmSelect{}); err != nil {
		return err
	}
	_, err = expect[*amqp.ConfirmSelectOk](c)
	return err
}

// tuneOk answers the broker's tune: its channel-max (1 when it sets no
// limit), its frame-max capped at batchFrameMax (0 meaning no limit), no
// heartbeats.
func tuneOk(t *amqp.ConnectionTune) *amqp.ConnectionTuneOk {
	ok := &amqp.ConnectionTuneOk{ChannelMax: t.ChannelMax, FrameMax: batchFrameMax}
	if ok.ChannelMax == 0 {
		ok.ChannelMax = 1
	}
	if t.FrameMax != 0 && t.FrameMax < batchFrameMax {
		ok.FrameMax = t.FrameMax
	}
	return ok
}

// write buffers method m on channel ch.
func (c *batchConn) write(ch uint16, m amqp.Method) error {
	if err := c.w.WriteMethod(ch, m); err != nil {
		return fmt.Errorf("write %s: %w", m.Name(), err)
	}
	return nil
}

// send writes method m on channel ch and flushes.
func (c *batchConn) send(ch uint16, m amqp.Method) error {
	if err := c.write(ch, m); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", m.Name(), err)
	}
	return nil
}

// expect reads the next method of the handshake and returns it when it is
// a T. A close from the broker is answered with close-ok and returned as a
// *ServerCloseError; heartbeats are skipped.
func expect[T amqp.Method](c *batchConn) (T, error) {
	var zero T
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return zero, fmt.Errorf("read %s: %w", zero.Name(), err)
		}
		if f.Type == amqp.FrameHeartbeat {
			continue
		}
		if f.Type != amqp.FrameMethod {
			return zero, fmt.Errorf("read %s: got a frame of type %d", zero.Name(), f.Type)
		}
		m, err := amqp.ReadMethod(f.Payload)
		if err != nil {
			return zero, fmt.Errorf("read %s: %w", zero.Name(), err)
		}
		switch m := m.(type) {
		case T:
			return m, nil
		case *amqp.ConnectionClose:
			c.send(0, &amqp.ConnectionCloseOk{}) // best effort: the error below is what matters
			return zero, &ServerCloseError{Connection: true, Code: m.ReplyCode, Text: m.ReplyText, ClassID: m.ClassId, MethodID: m.MethodId}
		case *amqp.ChannelClose:
			c.send(f.Channel, &amqp.ChannelCloseOk{})
			return zero, &ServerCloseError{Code: m.ReplyCode, Text: m.ReplyText, ClassID: m.ClassId, MethodID: m.MethodId}
		default:
			return zero, fmt.Errorf("got %s, want %s", m.Name(), zero.Name())
		}
	}
}

// publishFrames are the frames of one publish that stay the same from
// message to message, encoded once.
type publishFrames struct {
	method []byte // basic.publish payload
	header []byte // content header payload
}

func newPublishFrames(exchange, key string, persistent bool, bodySize int) (publishFrames, error) {
	m, err := amqp.AppendMethod(nil, &amqp.BasicPublish{Exchange: exchange, RoutingKey: key})
	if err != nil {
		return publishFrames{}, fmt.Errorf("encode basic.publish: %w", err)
	}
	mode := uint8(1)
	if persistent {
		mode = 2
	}
	h, err := amqp.AppendContentHeader(nil, &amqp.ContentHeader{
		ClassID: amqp.ClassBasic, BodySize: uint64(bodySize),
		Properties: message.Properties{Flags: message.FlagDeliveryMode, DeliveryMode: mode},
	})
	if err != nil {
		return publishFrames{}, fmt.Errorf("encode content header: %w", err)
	}
	return publishFrames{method: m, header: h}, nil
}

// writePublish buffers one publish of body: method, header and body frames
// split to fit frame-max.
func (c *batchConn) writePublish(pf publishFrames, body []byte) error {
	if err := c.w.WriteFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: batchChannel, Payload: pf.method}); err != nil {
		return err
	}
	if err := c.w.WriteFrame(amqp.Frame{Type: amqp.FrameHeader, Channel: batchChannel, Payload: pf.header}); err != nil {
		return err
	}
	chunk := int(c.frameMax) - 8
	for len(body) > 0 {
		n := min(chunk, len(body))
		if err := c.w.WriteFrame(amqp.Frame{Type: amqp.FrameBody, Channel: batchChannel, Payload: body[:n]}); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

// confirmReader is the goroutine that reads a batchConn after its
// handshake: it turns basic.ack and basic.nack into counts, latencies and
// returned window tokens, as the amqp091-go publisher's confirm reader does,
// and reports closes. Fields below failed are written before failed is
// closed and read only after.
type confirmReader struct {
	c      *batchConn
	p      *phaseRun
	lat    *Histogram
	epoch  time.Time
	slots  []atomic.Int64 // send time by delivery tag modulo len
	tokens chan struct{}  // one per unconfirmed message
	// tagged is the last delivery tag the publisher assigned.
	tagged atomic.Uint64

	// Owned by the reader goroutine.
	next  uint64          // lowest delivery tag not confirmed yet
	early map[uint64]bool // confirmed tags above next

	closeOk    chan struct{} // closed on channel.close-ok
	done       chan struct{} // closed when the goroutine returns
	failOnce   sync.Once
	failed     chan struct{} // closed once err is set
	err        error
	chanClosed bool // the broker sent channel.close
	connClosed bool // the broker sent connection.close
}

func newConfirmReader(c *batchConn, p *phaseRun, lat *Histogram, epoch time.Time, window int) *confirmReader {
	return &confirmReader{
		c: c, p: p, lat: lat, epoch: epoch,
		slots: make([]atomic.Int64, window), tokens: make(chan struct{}, window),
		next: 1, early: make(map[uint64]bool),
		closeOk: make(chan struct{}), done: make(chan struct{}), failed: make(chan struct{}),
	}
}

func (r *confirmReader) fail(err error, chanClosed, connClosed bool) {
	r.failOnce.Do(func() {
		r.err, r.chanClosed, r.connClosed = err, chanClosed, connClosed
		close(r.failed)
	})
}

// run reads until connection.close-ok, connection.close or a read error.
func (r *confirmReader) run() {
	defer close(r.done)
	var closeOkOnce sync.Once
	for {
		f, err := r.c.r.ReadFrameShared()
		if err != nil {
			r.fail(fmt.Errorf("read: %w", err), false, false)
			return
		}
		if f.Type != amqp.FrameMethod {
			continue // heartbeats; no content comes to a publisher
		}
		m, err := amqp.ReadMethod(f.Payload)
		if err != nil {
			r.fail(fmt.Errorf("read: %w", err), false, false)
			return
		}
		switch m := m.(type) {
		case *amqp.BasicAck:
			err = r.confirm(m.DeliveryTag, m.Multiple, true)
		case *amqp.BasicNack:
			err = r.confirm(m.DeliveryTag, m.Multiple, false)
		case *amqp.ChannelClose:
			r.fail(&ServerCloseError{Code: m.ReplyCode, Text: m.ReplyText, ClassID: m.ClassId, MethodID: m.MethodId}, true, false)
		case *amqp.ChannelCloseOk:
			closeOkOnce.Do(func() { close(r.closeOk) })
		case *amqp.ConnectionClose:
			r.fail(&ServerCloseError{Connection: true, Code: m.ReplyCode, Text: m.ReplyText, ClassID: m.ClassId, MethodID: m.MethodId}, false, true)
			return
		case *amqp.ConnectionCloseOk:
			r.fail(errConnectionClosed, false, false) // the publisher asked for it
			return
		}
		if err != nil {
			r.fail(err, false, false)
			return
		}
	}
}

// errConnectionClosed is the reader's error after the connection.close-ok
// that answers the publisher's own connection.close.
var errConnectionClosed = errors.New("connection closed")

// confirm settles delivery tag tag (with multiple, every tag up to it):
// each newly settled tag records its latency, counts as confirmed or nacked
// and returns its window token. Tags settled before are skipped.
func (r *confirmReader) confirm(tag uint64, multiple, ack bool) error {
	if tagged := r.tagged.Load(); tag > tagged || (tag == 0 && !multiple) || len(r.slots) == 0 {
		return fmt.Errorf("broker confirmed delivery tag %d, but %d were published in confirm mode", tag, tagged)
	}
	if multiple && tag == 0 {
		tag = r.tagged.Load()
	}
	if multiple {
		for t := r.next; t <= tag; t++ {
			if r.early[t] {
				delete(r.early, t)
				continue
			}
			r.settle(t, ack)
		}
		r.next = max(r.next, tag+1)
	} else if tag >= r.next && !r.early[tag] {
		r.settle(tag, ack)
		if tag == r.next {
			r.next++
		} else {
			r.early[tag] = true
		}
	}
	for r.early[r.next] {
		delete(r.early, r.next)
		r.next++
	}
	return nil
}

func (r *confirmReader) settle(tag uint64, ack bool) {
	k := uint64(len(r.slots))
	r.lat.Record(time.Since(r.epoch) - time.Duration(r.slots[tag%k].Load()))
	if ack {
		r.p.confirmed.Add(1)
	} else {
		r.p.nacked.Add(1)
	}
	<-r.tokens
}

// batchingPublisher is publisher for the batching client: the same phase
// counters, window and latency slots, with writes batched. It owns its
// confirmReader goroutine and waits for it on every path out.
func (s *session) batchingPublisher(ctx, hard context.Context, idx int, p *phaseRun, lat *Histogram) error {
	t, err := parseAMQPURL(s.cfg.URL)
	if err != nil {
		return fmt.Errorf("publisher %d: %w", idx, err)
	}
	t.tlsConf = s.tls
	k := s.cfg.Confirms
	c, err := openBatchConn(hard, t, fmt.Sprintf("publisher %d", idx), k > 0, s.track)
	if err != nil {
		return fmt.Errorf("publisher %d: %w", idx, err)
	}
	r := newConfirmReader(c, p, lat, s.epoch, k)
	var wg sync.WaitGroup
	wg.Go(r.run)
	defer func() {
		c.nc.Close() // ends the reader if it still runs
		wg.Wait()
	}()
	if err := s.batchPublishLoop(ctx, c, r, idx, p); err != nil {
		if isClosed(r.failed) {
			return fmt.Errorf("publisher %d: %w", idx, c.abort(r))
		}
		return fmt.Errorf("publisher %d: %w", idx, err)
	}
	if k > 0 {
		if err := s.awaitConfirms(hard, idx, r.tokens, r.failed); err != nil {
			if isClosed(r.failed) {
				return fmt.Errorf("publisher %d: awaiting confirms: %w", idx, c.abort(r))
			}
			return err
		}
	}
	if hard.Err() != nil {
		return nil // the run closed the connection
	}
	if err := c.close(r); err != nil {
		return fmt.Errorf("publisher %d: close: %w", idx, err)
	}
	return nil
}

// errReaderFailed tells batchingPublisher to take the reader's error.
var errReaderFailed = errors.New("connection reader stopped")

// batchPublishLoop publishes until ctx ends or the phase's limit is
// reached, then flushes. It writes to the socket only when no window token
// is free, when batchFlushAt bytes are buffered, and at the end.
func (s *session) batchPublishLoop(ctx context.Context, c *batchConn, r *confirmReader, idx int, p *phaseRun) error {
	exchange, key := s.cfg.exchange()
	pf, err := newPublishFrames(exchange, key, s.cfg.Persistent, s.cfg.MessageSize)
	if err != nil {
		return err
	}
	k := uint64(len(r.slots))
	body := newBody(s.cfg.MessageSize)
	done := ctx.Done()
	pace := newPacer(p.interval)
loop:
	for seq := uint64(0); p.claim(); seq++ {
		if p.interval > 0 {
			// Paced: what is buffered goes out before the wait.
			if err := c.w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if !pace.wait(ctx) {
				break loop
			}
		}
		select {
		case <-done:
			break loop
		case <-r.failed:
			return errReaderFailed
		default:
		}
		if k > 0 {
			select {
			case r.tokens <- struct{}{}:
			default:
				// The window is full: write what is buffered, then wait.
				if err := c.w.Flush(); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				select {
				case r.tokens <- struct{}{}:
				case <-done:
					break loop
				case <-r.failed:
					return errReaderFailed
				}
			}
		}
		sentAt := time.Since(s.epoch)
		if k > 0 {
			tag := seq + 1
			r.slots[tag%k].Store(int64(sentAt))
			r.tagged.Store(tag)
		}
		stampBody(body, sentAt, uint64(idx)<<40|seq)
		if err := c.writePublish(pf, body); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		p.sent.Add(1)
		if c.w.Buffered() >= batchFlushAt {
			if err := c.w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// close closes channel and connection politely within batchCloseTimeout:
// channel.close, its close-ok, connection.close, its close-ok.
func (c *batchConn) close(r *confirmReader) error {
	timer := time.NewTimer(batchCloseTimeout)
	defer timer.Stop()
	c.nc.SetWriteDeadline(time.Now().Add(batchCloseTimeout))
	if err := c.send(batchChannel, &amqp.ChannelClose{ReplyCode: amqp.ReplySuccess, ReplyText: "bench done"}); err != nil {
		return err
	}
	select {
	case <-r.closeOk:
	case <-r.failed:
		return c.abort(r)
	case <-timer.C:
		return fmt.Errorf("no channel.close-ok within %v", batchCloseTimeout)
	}
	if err := c.send(0, &amqp.ConnectionClose{ReplyCode: amqp.ReplySuccess, ReplyText: "bench done"}); err != nil {
		return err
	}
	select {
	case <-r.done:
		if r.connClosed || !errors.Is(r.err, errConnectionClosed) {
			return r.err
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("no connection.close-ok within %v", batchCloseTimeout)
	}
}

// abort ends a connection whose reader failed and returns the reader's
// error: it answers the broker's close with close-ok, or closes the
// connection itself, within batchCloseTimeout.
func (c *batchConn) abort(r *confirmReader) error {
	err := r.err
	c.nc.SetWriteDeadline(time.Now().Add(batchCloseTimeout))
	if r.connClosed {
		c.send(0, &amqp.ConnectionCloseOk{}) // best effort: err is what matters
		return err
	}
	if r.chanClosed {
		c.write(batchChannel, &amqp.ChannelCloseOk{})
	}
	if c.send(0, &amqp.ConnectionClose{ReplyCode: amqp.ReplySuccess, ReplyText: "bench stopping"}) == nil {
		timer := time.NewTimer(batchCloseTimeout)
		defer timer.Stop()
		select {
		case <-r.done:
		case <-timer.C:
		}
	}
	return err
}
