package amqpserver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// TestChannelExceptions checks that soft errors close only the channel,
// with RabbitMQ's reply code and text prefix, and the connection lives on.
func TestChannelExceptions(t *testing.T) {
	b := sluicetest.Start(t)
	owner := sluicetest.Channel(t, b.Dial(t))
	if _, err := owner.QueueDeclare("locked", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		do     func(ch *amqp091.Channel) error
		code   int
		prefix string
	}{
		{"403 reserved exchange name", func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclare("amq.mine", "direct", false, false, false, false, nil)
		}, 403, "ACCESS_REFUSED - "},
		{"404 passive declare of missing queue", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclarePassive("missing", false, false, false, false, nil)
			return err
		}, 404, "NOT_FOUND - "},
		{"404 bind to missing exchange", func(ch *amqp091.Channel) error {
			return ch.QueueBind("locked-not", "k", "nope", false, nil)
		}, 404, "NOT_FOUND - "},
		{"405 exclusive queue of another connection", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclarePassive("locked", false, false, true, false, nil)
			return err
		}, 405, "RESOURCE_LOCKED - "},
		{"406 inequivalent declare", func(ch *amqp091.Channel) error {
			if _, err := ch.QueueDeclare("eq", false, false, false, false, nil); err != nil {
				return err
			}
			_, err := ch.QueueDeclare("eq", true, false, false, false, nil)
			return err
		}, 406, "PRECONDITION_FAILED - "},
		{"406 unknown delivery tag", func(ch *amqp091.Channel) error {
			// basic.ack has no reply: the channel.close from the broker is
			// the answer.
			closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
			if err := ch.Ack(42, false); err != nil {
				return err
			}
			select {
			case e := <-closed:
				return e
			case <-time.After(10 * time.Second):
				return errors.New("the channel was not closed")
			}
		}, 406, "PRECONDITION_FAILED - unknown delivery tag 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := b.Dial(t)
			ch := sluicetest.Channel(t, conn)
			ae := wantAMQPError(t, tt.do(ch), tt.code)
			if !strings.HasPrefix(ae.Reason, tt.prefix) {
				t.Errorf("reason %q, want prefix %q", ae.Reason, tt.prefix)
			}
			if conn.IsClosed() {
				t.Fatal("a channel exception closed the connection")
			}
			if _, err := sluicetest.Channel(t, conn).QueueDeclare("", false, true, true, false, nil); err != nil {
				t.Fatalf("connection unusable after a channel exception: %v", err)
			}
		})
	}
}

func TestPublishToMissingExchange(t *testing.T) {
	_, conn, ch := start(t)
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	publish(t, ch, "missing", "k", false, amqp091.Publishing{Body: []byte("x")})
	e := closedWith(t, closed, 404)
	if want := "NOT_FOUND - no exchange 'missing' in vhost '/'"; e.Reason != want {
		t.Errorf("reason %q, want %q", e.Reason, want)
	}
	if conn.IsClosed() {
		t.Error("connection closed")
	}
}

func TestImmediateNotImplemented(t *testing.T) {
	_, conn, ch := start(t)
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	ch.PublishWithContext(context.Background(), "", "q", false, true, amqp091.Publishing{Body: []byte("x")})
	e := closedWith(t, closed, 540)
	if want := "NOT_IMPLEMENTED - immediate=true"; e.Reason != want {
		t.Errorf("reason %q, want %q", e.Reason, want)
	}
}

// TestConnectionExceptionsRaw sends what no client library sends and checks
// the connection is closed with the right code.
func TestConnectionExceptionsRaw(t *testing.T) {
	b := sluicetest.Start(t)
	publishPayload := func(t *testing.T) []byte {
		p, err := amqp.AppendMethod(nil, &amqp.BasicPublish{RoutingKey: "q"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		code uint16
		text string
		do   func(t *testing.T, c *rawClient)
	}{
		{"501 bad frame end", amqp.FrameError, "", func(t *testing.T, c *rawClient) {
			p, _ := amqp.AppendMethod(nil, &amqp.QueueDeclare{Queue: "x"})
			frame := []byte{amqp.FrameMethod, 0, 1, 0, 0, 0, byte(len(p))}
			frame = append(frame, p...)
			c.sendBytes(append(frame, 0xAB))
		}},
		{"502 malformed method arguments", amqp.SyntaxError, "", func(t *testing.T, c *rawClient) {
			p, _ := amqp.AppendMethod(nil, &amqp.QueueDeclare{Queue: "x"})
			c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 1, Payload: p[:len(p)-3]})
		}},
		{"503 unknown method", amqp.CommandInvalid, "", func(t *testing.T, c *rawClient) {
			c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 1, Payload: []byte{0, 60, 0, 99}})
		}},
		{"503 basic method on channel 0", amqp.CommandInvalid, "", func(t *testing.T, c *rawClient) {
			c.send(0, &amqp.BasicQos{PrefetchCount: 1})
		}},
		{"504 publish on unopened channel", amqp.ChannelError, "CHANNEL_ERROR - expected 'channel.open'", func(t *testing.T, c *rawClient) {
			c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 7, Payload: publishPayload(t)})
		}},
		{"504 second channel.open", amqp.ChannelError, "CHANNEL_ERROR - second 'channel.open' seen", func(t *testing.T, c *rawClient) {
			c.send(1, &amqp.ChannelOpen{})
		}},
		{"505 body before header", amqp.UnexpectedFrame, "", func(t *testing.T, c *rawClient) {
			c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 1, Payload: publishPayload(t)})
			c.sendFrame(amqp.Frame{Type: amqp.FrameBody, Channel: 1, Payload: []byte("body")})
		}},
		{"505 method instead of header", amqp.UnexpectedFrame,
			"UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
			func(t *testing.T, c *rawClient) {
				c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 1, Payload: publishPayload(t)})
				c.send(1, &amqp.BasicQos{PrefetchCount: 1})
			}},
		{"505 header without publish", amqp.UnexpectedFrame, "", func(t *testing.T, c *rawClient) {
			c.sendHeader(1, 3)
		}},
		{"501 body larger than declared", amqp.FrameError, "", func(t *testing.T, c *rawClient) {
			c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 1, Payload: publishPayload(t)})
			c.sendHeader(1, 3)
			c.sendFrame(amqp.Frame{Type: amqp.FrameBody, Channel: 1, Payload: []byte("toolong")})
		}},
		{"530 channel id above channel_max", amqp.NotAllowed, "", func(t *testing.T, c *rawClient) {
			c.send(3000, &amqp.ChannelOpen{})
		}},
		{"540 immediate", amqp.NotImplemented, "NOT_IMPLEMENTED - immediate=true", func(t *testing.T, c *rawClient) {
			p, _ := amqp.AppendMethod(nil, &amqp.BasicPublish{RoutingKey: "q", Immediate: true})
			c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 1, Payload: p})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, b.Addr())
			c.open()
			tt.do(t, c)
			cl := c.expectConnectionClose(tt.code)
			if tt.text != "" && cl.ReplyText != tt.text {
				t.Errorf("reply text %q, want %q", cl.ReplyText, tt.text)
			}
			if !strings.HasPrefix(cl.ReplyText, amqp.ReplyText(tt.code)) {
				t.Errorf("reply text %q does not start with %s", cl.ReplyText, amqp.ReplyText(tt.code))
			}
		})
	}
}

func TestMessageTooLarge(t *testing.T) {
	b := sluicetest.Start(t)
	c := dialRaw(t, b.Addr())
	c.open()
	p, _ := amqp.AppendMethod(nil, &amqp.BasicPublish{RoutingKey: "q"})
	c.sendFrame(amqp.Frame{Type: amqp.FrameMethod, Channel: 1, Payload: p})
	c.sendHeader(1, 1<<40)
	cl := expect[*amqp.ChannelClose](c)
	if cl.ReplyCode != amqp.PreconditionFailed || !strings.Contains(cl.ReplyText, "larger than configured max size") {
		t.Fatalf("channel.close %d %q", cl.ReplyCode, cl.ReplyText)
	}
	// Frames for the closing channel are ignored until close-ok.
	c.sendFrame(amqp.Frame{Type: amqp.FrameBody, Channel: 1, Payload: []byte("ignored")})
	c.send(1, &amqp.ChannelCloseOk{})
	c.send(1, &amqp.ChannelOpen{})
	expect[*amqp.ChannelOpenOk](c)
}
