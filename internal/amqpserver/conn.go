package amqpserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
)

// connState is where a connection is in its handshake.
type connState uint8

const (
	awaitStartOk connState = iota
	awaitTuneOk
	awaitOpen
	opened
)

// conn is one client connection. Its reader goroutine (serve) owns every
// field not marked otherwise; the writer goroutine owns wr's internals.
type conn struct {
	srv  *Server
	nc   net.Conn
	r    *amqp.Reader
	wr   *writer
	log  *slog.Logger
	name string
	// recvOct and sendOct count the socket's bytes (traffic.go).
	recvOct, sendOct atomic.Uint64
	// partial counts the body bytes received of publishes not complete
	// yet, on all channels; the server sums them over connections.
	partial atomic.Int64

	state      connState
	done       bool // the connection is finished: close-ok sent or received
	channelMax uint16
	frameMax   uint32
	heartbeat  time.Duration
	deadlineAt time.Time // when pushDeadline last moved the read deadline
	user       string
	vhost      string
	// peerCN is the common name of the client's verified TLS certificate
	// ("" without one): the user SASL EXTERNAL logs in as.
	peerCN string
	// counted: this connection holds one of Config.MaxConnections.
	counted    bool
	clientProp message.Table
	bconn      *broker.Connection
	channels   map[uint16]*channel

	// Capabilities the client advertised; written before opened, read-only after.
	cancelNotify  bool
	blockedNotify bool

	// mu guards the fields below, shared with Server.Close and SetBlocked.
	mu        sync.Mutex
	closing   bool          // the server sent connection.close
	closeReq  chan struct{} // closed when closing becomes true
	isOpen    bool          // connection.open-ok was sent
	sentBlock bool          // connection.blocked was sent and not yet unblocked
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	name := fmt.Sprintf("%s -> %s", nc.RemoteAddr(), nc.LocalAddr())
	c := &conn{
		srv:      s,
		nc:       nc,
		name:     name,
		log:      s.log.With(logConn, id, logRemote, nc.RemoteAddr().String()),
		channels: make(map[uint16]*channel),
		closeReq: make(chan struct{}),
	}
	c.r = amqp.NewReader(countingReader{nc, &c.recvOct})
	c.wr = newWriter(nc, countingWriter{nc, &c.sendOct}, c.log, int64(s.cfg.MaxOutputBytes), s.cfg.WriteTimeout)
	return c
}

// serve runs the connection's reader until the connection ends, then
// releases its broker session, stops its writer and closes the socket.
func (c *conn) serve() {
	defer c.nc.Close()
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	if err := c.r.ReadProtocolHeader(); err != nil {
		var pe *amqp.ProtocolError
		var te tls.RecordHeaderError
		switch {
		case errors.As(err, &pe):
			c.log.Info("amqp bad protocol header", logErr, err)
			c.nc.Write(amqp.ProtocolHeader)
		case errors.As(err, &te) || isTLS(c.nc) && !errors.Is(err, io.EOF):
			c.log.Info("amqp tls handshake failed", logErr, err)
		}
		return
	}
	c.log.Debug("amqp connection accepted")
	c.peerCN = peerCommonName(c.nc) // the TLS handshake is done once the header was read
	go c.wr.run()
	defer func() {
		if c.counted {
			c.srv.openConns.Add(-1)
		}
		c.srv.partial.Add(-c.partial.Swap(0))
		if c.bconn != nil {
			c.bconn.Close()
		}
		for _, ch := range c.channels {
			ch.out.close()
		}
		c.wr.close()
		c.linger()
		c.log.Debug("amqp connection closed")
	}()
	c.wr.method(0, &amqp.ConnectionStart{
		VersionMajor:     0,
		VersionMinor:     9,
		ServerProperties: c.serverProperties(),
		Mechanisms:       c.mechanisms(),
		Locales:          "en_US",
	})
	c.loop()
}

// loop reads and handles frames until the connection is done.
func (c *conn) loop() {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("amqp connection panic", "panic", v, "stack", string(debug.Stack()))
			c.shutdown(newError(amqp.InternalError, nil, "internal error"))
			c.awaitCloseOk()
		}
	}()
	for !c.done {
		c.waitOutput()
		if c.waitBody(); c.done {
			return
		}
		if c.heartbeat > 0 && c.state == opened && !c.isClosing() {
			c.pushDeadline(time.Now())
		}
		f, err := c.r.ReadFrameShared() // handlers copy what they keep
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("frame received", logFrame, f.Type, logChannel, f.Channel, logSize, len(f.Payload))
		}
		if err := c.handleFrame(f); err != nil {
			c.fail(err)
		}
	}
}

// pushDeadline keeps the heartbeat timeout ahead of now. A client silent
// for two heartbeat intervals is gone (the spec's rule); moving the socket's
// deadline costs more than reading a small frame, so it moves only once a
// quarter of the timeout has passed since it last moved, and lies that much
// further out: the timeout is between 2 and 2.5 intervals of silence.
func (c *conn) pushDeadline(now time.Time) {
	timeout := 2 * c.heartbeat
	if !c.deadlineAt.IsZero() && now.Sub(c.deadlineAt) < timeout/4 {
		return
	}
	c.deadlineAt = now
	c.nc.SetReadDeadline(now.Add(timeout + timeout/4))
}

// readFailed handles a read error: a decoding failure closes the connection
// with its reply code; anything else ends it silently.
func (c *conn) readFailed(err error) {
	var pe *amqp.ProtocolError
	if errors.As(err, &pe) && !c.isClosing() {
		c.log.Info("amqp frame error", logErr, err)
		c.shutdown(fromCodec(err))
		return // the stream is out of step: do not read on
	}
	var ne net.Error
	switch {
	case c.isClosing(), c.done:
	case errors.As(err, &ne) && ne.Timeout() && c.state == opened:
		c.log.Warn("amqp client missed heartbeats", "timeout", 2*c.heartbeat)
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Warn("amqp handshake timed out")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug("amqp client went away", logErr, err)
	default:
		c.log.Info("amqp read", logErr, err)
	}
}

// fail handles an error of handling one frame.
func (c *conn) fail(err error) {
	var ae *amqpError
	if !errors.As(err, &ae) {
		ae = newError(amqp.InternalError, nil, "%v", err)
	}
	if ae.connection {
		c.shutdown(ae)
		return
	}
	c.log.Error("amqp channel exception outside a channel", logErr, err)
	c.shutdown(newError(amqp.InternalError, nil, "internal error"))
}

// shutdown sends connection.close once; the reader then only waits for
// close-ok, for at most Config.CloseTimeout. Safe from any goroutine.
func (c *conn) shutdown(e *amqpError) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	close(c.closeReq)
	c.mu.Unlock()
	level := slog.LevelInfo
	if e.code == amqp.ReplySuccess || e.code == amqp.ConnectionForced {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, "amqp closing connection", logCode, e.code, logReason, e.text)
	c.wr.method(0, &amqp.ConnectionClose{ReplyCode: e.code, ReplyText: e.wireText(), ClassId: e.classID, MethodId: e.methodID})
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.CloseTimeout))
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// awaitCloseOk reads until close-ok (or close) arrives or the close timeout
// passes, discarding everything else.
func (c *conn) awaitCloseOk() {
	for !c.done {
		f, err := c.r.ReadFrameShared()
		if err != nil {
			return
		}
		c.handleClosing(f)
	}
}

// handleClosing is handleFrame once the server sent connection.close.
func (c *conn) handleClosing(f amqp.Frame) {
	if f.Type != amqp.FrameMethod || f.Channel != 0 {
		return
	}
	m, err := amqp.ReadMethod(f.Payload)
	if err != nil {
		return
	}
	switch m.(type) {
	case *amqp.ConnectionCloseOk:
		c.done = true
	case *amqp.ConnectionClose:
		c.wr.method(0, &amqp.ConnectionCloseOk{})
		c.done = true
	}
}

func (c *conn) handleFrame(f amqp.Frame) error {
	if c.isClosing() {
		c.handleClosing(f)
		return nil
	}
	switch f.Type {
	case amqp.FrameHeartbeat:
		if f.Channel != 0 {
			return newError(amqp.UnexpectedFrame, nil, "type %d, %s", f.Type, erlangOctets(f.Payload))
		}
		return nil
	case amqp.FrameMethod:
		m, err := amqp.ReadMethod(f.Payload)
		if err != nil {
			return fromCodec(err)
		}
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("method received", logChannel, f.Channel, logMethod, m.Name())
		}
		if c.state != opened {
			if f.Channel != 0 {
				return newError(amqp.CommandInvalid, m, "%s on channel %d before connection.open", m.Name(), f.Channel)
			}
			return c.handshake(m)
		}
		if f.Channel == 0 {
			return c.connectionMethod(m)
		}
		return c.channelMethod(f.Channel, m)
	default: // content header or body
		if c.state != opened {
			return newError(amqp.UnexpectedFrame, nil, "content frame before connection.open")
		}
		if f.Channel == 0 {
			return newError(amqp.CommandInvalid, nil, "content frame on channel 0")
		}
		ch := c.channels[f.Channel]
		if ch == nil {
			return newError(amqp.ChannelError, nil, "expected 'channel.open'")
		}
		if err := ch.content(f); err != nil {
			return ch.exception(err)
		}
		return nil
	}
}

// connectionMethod handles a method on channel 0 after connection.open.
func (c *conn) connectionMethod(m amqp.Method) error {
	switch m := m.(type) {
	case *amqp.ConnectionClose:
		c.log.Debug("amqp client closed connection", logCode, m.ReplyCode, logReason, m.ReplyText)
		c.wr.method(0, &amqp.ConnectionCloseOk{})
		c.done = true
		return nil
	case *amqp.ConnectionCloseOk:
		return nil
	case *amqp.ConnectionUpdateSecret:
		// As RabbitMQ: the new secret goes to backends whose credentials
		// can expire; the internal user database's cannot, so the update
		// is accepted and changes nothing.
		c.log.Info("amqp secret update accepted", logUser, c.user, logReason, m.Reason)
		c.wr.method(0, &amqp.ConnectionUpdateSecretOk{})
		return nil
	default:
		return newError(amqp.CommandInvalid, m, "unexpected method %s on channel 0", m.Name())
	}
}

// channelMethod routes a method to its channel, opening one on
// channel.open.
func (c *conn) channelMethod(id uint16, m amqp.Method) error {
	ch := c.channels[id]
	if ch == nil {
		switch m.(type) {
		case *amqp.ChannelOpen:
			return c.openChannel(id, m)
		case *amqp.ChannelCloseOk:
			return nil // a late answer to a close the server already finished
		}
		return newError(amqp.ChannelError, m, "expected 'channel.open'")
	}
	return ch.method(m)
}

func (c *conn) openChannel(id uint16, m amqp.Method) error {
	if id > c.channelMax {
		return newError(amqp.NotAllowed, m, "channel id %d exceeds the negotiated channel_max (%d)", id, c.channelMax)
	}
	ch := newChannel(c, id)
	bch, err := c.bconn.OpenChannel(id, ch.out) // a user's max-channels limit
	if err != nil {
		e := fromBroker(err, m)
		e.connection = true // as RabbitMQ: the channel limit closes the connection
		return e
	}
	ch.b = bch
	ch.out.setBroker(ch.b)
	c.channels[id] = ch
	c.wr.method(id, &amqp.ChannelOpenOk{})
	return nil
}

// notifyBlocked sends connection.blocked to a client that understands it.
// Called from SetBlocked's goroutine.
func (c *conn) notifyBlocked(reason string) {
	c.mu.Lock()
	send := c.isOpen && c.blockedNotify && !c.sentBlock && !c.closing
	if send {
		c.sentBlock = true
	}
	c.mu.Unlock()
	if send {
		c.wr.method(0, &amqp.ConnectionBlocked{Reason: cutShortstr(reason)})
	}
}

func (c *conn) notifyUnblocked() {
	c.mu.Lock()
	send := c.sentBlock && !c.closing
	c.sentBlock = false
	c.mu.Unlock()
	if send {
		c.wr.method(0, &amqp.ConnectionUnblocked{})
	}
}

// waitUnblocked stops reading this connection while publishers are
// blocked, as RabbitMQ does with a connection that publishes during an
// alarm. It returns when unblocked or when the connection is closed.
func (c *conn) waitUnblocked() {
	reason, unblocked := c.srv.blockState()
	if reason == "" {
		return
	}
	c.log.Info("amqp connection blocked", logReason, reason)
	c.nc.SetReadDeadline(time.Time{}) // no heartbeat timeout while we do not read
	c.deadlineAt = time.Time{}
	for {
		select {
		case <-unblocked:
			c.log.Info("amqp connection unblocked")
			return
		case <-c.closeReq:
			return
		case <-time.After(250 * time.Millisecond):
		}
		if c.peerGone() {
			return
		}
	}
}

// peerGone ends a connection paused without reading whose client went
// away, so that what it holds is freed.
func (c *conn) peerGone() bool {
	if !peerClosed(c.nc) {
		return false
	}
	c.log.Debug("amqp client went away while not read")
	c.done = true
	return true
}

// waitOutput stops reading while the writer is full: a client that sends
// requests and does not read the replies (or its deliveries) would
// otherwise grow them without bound. The writer drains or, when the client
// reads nothing for the write timeout, closes the socket.
func (c *conn) waitOutput() {
	room := c.wr.waitRoom()
	if room == nil {
		return
	}
	c.nc.SetReadDeadline(time.Time{}) // no heartbeat timeout while we do not read
	c.deadlineAt = time.Time{}
	select {
	case <-room:
	case <-c.wr.done:
	case <-c.closeReq:
	}
}

// addPartial counts n more (or, negative, fewer) body bytes of publishes
// in progress.
func (c *conn) addPartial(n int64) {
	c.partial.Add(n)
	total := c.srv.partial.Add(n)
	if poke := c.srv.cfg.MemoryPoke; poke != nil && n > 0 {
		step := int64(16 << 20)
		if c.srv.cfg.BodyMemory > 0 {
			step = max(int64(c.srv.cfg.BodyMemory/16), 1)
		}
		if total/step != (total-n)/step {
			poke()
		}
	}
}

// waitBody stops reading a connection in the middle of a message body
// while publishers are blocked or the bodies in progress broker-wide are
// over Config.BodyMemory: waiting for the publish to complete, as
// waitUnblocked does, would let the rest of every announced body in, and
// many channels' bodies can exceed any memory limit before one completes.
func (c *conn) waitBody() {
	logged := false
	for c.partial.Load() > 0 && (c.srv.blockedNow.Load() || c.srv.bodiesOver()) {
		reason, unblocked := c.srv.blockState()
		if reason == "" && !c.srv.bodiesOver() {
			break
		}
		if !logged {
			c.log.Info("amqp connection paused in a message body", logReason, cmp.Or(reason, "bodies in progress over the limit"))
			c.nc.SetReadDeadline(time.Time{}) // no heartbeat timeout while we do not read
			c.deadlineAt = time.Time{}
			logged = true
		}
		if reason == "" {
			unblocked = nil // only the body total can change: look again soon
		}
		select {
		case <-unblocked:
		case <-time.After(50 * time.Millisecond):
		case <-c.closeReq:
			return
		}
		if c.peerGone() {
			return
		}
	}
	if logged {
		c.log.Info("amqp connection resumed")
	}
}

// maxFrameSize turns a negotiated frame-max into the reader's limit.
func maxFrameSize(n uint32) uint32 {
	if n == 0 {
		return math.MaxUint32
	}
	return n
}

// linger half-closes the socket and reads until the client closes its side
// (at most Config.CloseTimeout), so that unread input does not make the
// kernel reset the connection before the client read our last frames.
func (c *conn) linger() {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return
	}
	if err := tc.CloseWrite(); err != nil {
		return
	}
	tc.SetReadDeadline(time.Now().Add(c.srv.cfg.CloseTimeout))
	io.Copy(io.Discard, io.LimitReader(tc, 1<<20))
}

// erlangOctets renders a frame payload as RabbitMQ's unexpected-frame
// texts do: "all octets = <<1,2>>", or the first 16 of a longer one.
func erlangOctets(p []byte) string {
	which := "all"
	if len(p) > 16 {
		which, p = "first 16", p[:16]
	}
	var b strings.Builder
	b.WriteString(which + " octets = <<")
	for i, o := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(o)))
	}
	b.WriteString(">>")
	return b.String()
}
