package amqpserver_test

import (
	"net"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/message"
)

// rawClient speaks AMQP frame by frame, for the cases a well-behaved client
// library cannot produce.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *amqp.Reader
	w  *amqp.Writer
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	r := amqp.NewReader(nc)
	r.SetMaxFrameSize(1 << 20)
	return &rawClient{t: t, nc: nc, r: r, w: amqp.NewWriter(nc)}
}

func (c *rawClient) sendBytes(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) send(channel uint16, m amqp.Method) {
	c.t.Helper()
	if err := c.w.WriteMethod(channel, m); err != nil {
		c.t.Fatalf("write %s: %v", m.Name(), err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatalf("flush: %v", err)
	}
}

func (c *rawClient) sendFrame(f amqp.Frame) {
	c.t.Helper()
	if err := c.w.WriteFrame(f); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatalf("flush: %v", err)
	}
}

// sendHeader sends a basic content header announcing size body bytes.
func (c *rawClient) sendHeader(channel uint16, size uint64) {
	c.t.Helper()
	p, err := amqp.AppendContentHeader(nil, &amqp.ContentHeader{ClassID: 60, BodySize: size, Properties: message.Properties{}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendFrame(amqp.Frame{Type: amqp.FrameHeader, Channel: channel, Payload: p})
}

// next reads the next method, skipping heartbeats.
func (c *rawClient) next() (uint16, amqp.Method) {
	c.t.Helper()
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if f.Type != amqp.FrameMethod {
			continue
		}
		m, err := amqp.ReadMethod(f.Payload)
		if err != nil {
			c.t.Fatalf("read method: %v", err)
		}
		return f.Channel, m
	}
}

// expect reads the next method and fails unless it is a T.
func expect[T amqp.Method](c *rawClient) T {
	c.t.Helper()
	_, m := c.next()
	got, ok := m.(T)
	if !ok {
		if cl, isClose := m.(*amqp.ConnectionClose); isClose {
			c.t.Fatalf("got connection.close %d %q, want %T", cl.ReplyCode, cl.ReplyText, got)
		}
		c.t.Fatalf("got %s, want %T", m.Name(), got)
	}
	return got
}

// open runs the handshake as guest on vhost "/", then opens channel 1.
func (c *rawClient) open() {
	c.t.Helper()
	c.sendBytes(amqp.ProtocolHeader)
	expect[*amqp.ConnectionStart](c)
	c.send(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	tune := expect[*amqp.ConnectionTune](c)
	c.send(0, &amqp.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax, Heartbeat: 0})
	c.send(0, &amqp.ConnectionOpen{VirtualHost: "/"})
	expect[*amqp.ConnectionOpenOk](c)
	c.send(1, &amqp.ChannelOpen{})
	expect[*amqp.ChannelOpenOk](c)
}

// expectConnectionClose reads until connection.close, checks its code,
// answers close-ok and checks that the server then closes the socket.
func (c *rawClient) expectConnectionClose(code uint16) *amqp.ConnectionClose {
	c.t.Helper()
	for {
		_, m := c.next()
		cl, ok := m.(*amqp.ConnectionClose)
		if !ok {
			continue
		}
		if cl.ReplyCode != code {
			c.t.Fatalf("connection.close %d %q, want code %d", cl.ReplyCode, cl.ReplyText, code)
		}
		c.send(0, &amqp.ConnectionCloseOk{})
		c.expectEOF()
		return cl
	}
}

// expectEOF checks that the server closes the connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	for {
		if _, err := c.r.ReadFrame(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("server did not close the connection: %v", err)
			}
			return
		}
	}
}
