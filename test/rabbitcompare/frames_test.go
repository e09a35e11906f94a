//go:build integration

package rabbitcompare

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/message"
)

// frameCases send what a client library will not: each returns how the
// broker answered (connection.close code, text and method, or a socket
// closed without connection.close).
var frameCases = map[string]func(t *testing.T, url string) any{
	"heartbeat-on-channel-1": func(t *testing.T, u string) any {
		c := dialRaw(t, u, true)
		c.frame(amqp.Frame{Type: amqp.FrameHeartbeat, Channel: 1})
		return c.outcome()
	},
	"body-without-header": func(t *testing.T, u string) any {
		c := dialRaw(t, u, true)
		c.frame(amqp.Frame{Type: amqp.FrameBody, Channel: 1, Payload: []byte("x")})
		return c.outcome()
	},
	"header-without-method": func(t *testing.T, u string) any {
		c := dialRaw(t, u, true)
		c.header(1, 1)
		return c.outcome()
	},
	"method-where-header-expected": func(t *testing.T, u string) any {
		c := dialRaw(t, u, true)
		c.method(1, &amqp.BasicPublish{RoutingKey: "nowhere"})
		c.method(1, &amqp.BasicQos{})
		return c.outcome()
	},
	"method-where-body-expected": func(t *testing.T, u string) any {
		c := dialRaw(t, u, true)
		c.method(1, &amqp.BasicPublish{RoutingKey: "nowhere"})
		c.header(1, 5)
		c.method(1, &amqp.BasicQos{})
		return c.outcome()
	},
	"header-where-body-expected": func(t *testing.T, u string) any {
		c := dialRaw(t, u, true)
		c.method(1, &amqp.BasicPublish{RoutingKey: "nowhere"})
		c.header(1, 5)
		c.header(1, 5)
		return c.outcome()
	},
	"login-refused-without-capability": func(t *testing.T, u string) any {
		return loginRefused(t, u, nil)
	},
	"login-refused-with-capability": func(t *testing.T, u string) any {
		return loginRefused(t, u, message.Table{"capabilities": message.Table{"authentication_failure_close": true}})
	},
}

type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *amqp.Reader
	w  *amqp.Writer
}

// dialRaw connects to the broker at an amqp:// URL; open runs the
// handshake as the URL's user and opens channel 1.
func dialRaw(t *testing.T, u string, open bool) *rawConn {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawConn{t: t, nc: nc, r: amqp.NewReader(nc), w: amqp.NewWriter(nc)}
	c.r.SetMaxFrameSize(1 << 20)
	if !open {
		return c
	}
	pass, _ := pu.User.Password()
	c.start(pu.User.Username(), pass, message.Table{"capabilities": message.Table{"authentication_failure_close": true}})
	tune, ok := c.next().(*amqp.ConnectionTune)
	if !ok {
		t.Fatal("no connection.tune")
	}
	c.method(0, &amqp.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax})
	c.method(0, &amqp.ConnectionOpen{VirtualHost: "/"})
	if _, ok := c.next().(*amqp.ConnectionOpenOk); !ok {
		t.Fatal("no connection.open-ok")
	}
	c.method(1, &amqp.ChannelOpen{})
	if _, ok := c.next().(*amqp.ChannelOpenOk); !ok {
		t.Fatal("no channel.open-ok")
	}
	return c
}

func (c *rawConn) start(user, pass string, props message.Table) {
	c.t.Helper()
	if _, err := c.nc.Write(amqp.ProtocolHeader); err != nil {
		c.t.Fatal(err)
	}
	if _, ok := c.next().(*amqp.ConnectionStart); !ok {
		c.t.Fatal("no connection.start")
	}
	c.method(0, &amqp.ConnectionStartOk{ClientProperties: props, Mechanism: "PLAIN",
		Response: "\x00" + user + "\x00" + pass, Locale: "en_US"})
}

func (c *rawConn) frame(f amqp.Frame) {
	c.t.Helper()
	if err := c.w.WriteFrame(f); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) method(ch uint16, m amqp.Method) {
	c.t.Helper()
	if err := c.w.WriteMethod(ch, m); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) header(ch uint16, size uint64) {
	c.t.Helper()
	p, err := amqp.AppendContentHeader(nil, &amqp.ContentHeader{ClassID: 60, BodySize: size})
	if err != nil {
		c.t.Fatal(err)
	}
	c.frame(amqp.Frame{Type: amqp.FrameHeader, Channel: ch, Payload: p})
}

// next returns the next method, nil when the socket closed.
func (c *rawConn) next() amqp.Method {
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return nil
		}
		if f.Type != amqp.FrameMethod {
			continue
		}
		m, err := amqp.ReadMethod(f.Payload)
		if err != nil {
			c.t.Fatalf("read method: %v", err)
		}
		return m
	}
}

// outcome reads until the broker closes the connection or a channel.
func (c *rawConn) outcome() string {
	for {
		switch m := c.next().(type) {
		case nil:
			return "socket closed without connection.close"
		case *amqp.ConnectionClose:
			return fmt.Sprintf("connection.close %d %q class %d method %d", m.ReplyCode, m.ReplyText, m.ClassId, m.MethodId)
		case *amqp.ChannelClose:
			return fmt.Sprintf("channel.close %d %q class %d method %d", m.ReplyCode, m.ReplyText, m.ClassId, m.MethodId)
		}
	}
}

func loginRefused(t *testing.T, u string, props message.Table) any {
	c := dialRaw(t, u, false)
	pu, _ := url.Parse(u)
	c.start(pu.User.Username(), "wrong password", props)
	return c.outcome()
}
