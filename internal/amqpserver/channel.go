package amqpserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
)

// classBasic is the basic class, the only one with content.
const classBasic = 60

// channel is one open AMQP channel. The connection's reader goroutine owns
// it; out and confirms are shared with broker goroutines and lock
// themselves.
type channel struct {
	c        *conn
	id       uint16
	b        *broker.Channel
	out      *outlet
	confirms *confirms // nil until confirm.select
	closing  bool      // the server sent channel.close
	lastQ    string    // the most recently declared queue, for empty names

	// Content assembly of a basic.publish.
	publish  *amqp.BasicPublish
	header   bool          // the content header arrived
	bodySize uint64        // the body size it declared
	draft    *broker.Draft // the message, its body read into its record
	received uint64
	// oversize: the body is over MaxMessageSize on a confirm channel; its
	// frames are counted (received) and dropped, then the publish is nacked.
	oversize bool
}

func newChannel(c *conn, id uint16) *channel {
	return &channel{c: c, id: id, out: newOutlet(c.wr, id, c.cancelNotify)}
}

// method handles one method frame on the channel.
func (ch *channel) method(m amqp.Method) error {
	if ch.closing {
		switch m.(type) {
		case *amqp.ChannelCloseOk:
			delete(ch.c.channels, ch.id)
		case *amqp.ChannelClose:
			ch.c.wr.method(ch.id, &amqp.ChannelCloseOk{})
		}
		return nil
	}
	if ch.publish != nil {
		if ch.header {
			return newError(amqp.UnexpectedFrame, ch.publish, "expected content body, got non content body frame instead")
		}
		return newError(amqp.UnexpectedFrame, ch.publish,
			"expected content header for class %d, got non content header frame instead", classBasic)
	}
	if err := ch.dispatch(m); err != nil {
		return ch.exception(err)
	}
	return nil
}

// exception turns a handler error into a channel close, or passes a
// connection exception up.
func (ch *channel) exception(err error) error {
	ae, ok := err.(*amqpError)
	if !ok || ae.connection {
		return err
	}
	ch.c.log.Info("amqp channel exception", logChannel, ch.id, logCode, ae.code, logReason, ae.text)
	ch.shutdown()
	ch.closing = true
	ch.c.wr.method(ch.id, &amqp.ChannelClose{ReplyCode: ae.code, ReplyText: ae.wireText(), ClassId: ae.classID, MethodId: ae.methodID})
	return nil
}

// shutdown releases the channel's broker state and stops its output.
func (ch *channel) shutdown() {
	ch.out.close()
	if ch.confirms != nil {
		ch.confirms.close()
	}
	ch.b.Close()
	ch.dropDraft()
	ch.publish, ch.header = nil, false
}

// dropDraft forgets the message being received, returning its body bytes
// to the connection's and the server's count of bodies in progress.
func (ch *channel) dropDraft() {
	if ch.draft != nil {
		ch.c.addPartial(-int64(ch.draft.Len()))
		ch.draft = nil
	}
}

// reply queues m unless the client asked for nowait.
func (ch *channel) reply(noWait bool, m amqp.Method) {
	if !noWait {
		ch.c.wr.method(ch.id, m)
	}
}

// queueName resolves RabbitMQ's shorthand: an empty queue name means the
// channel's most recently declared queue. CR and LF are stripped first.
func (ch *channel) queueName(name string, m amqp.Method) (string, error) {
	name = stripCRLF(name)
	if name != "" {
		return name, nil
	}
	if ch.lastQ == "" {
		return "", newError(amqp.NotFound, m, "no previously declared queue")
	}
	return ch.lastQ, nil
}

func (ch *channel) dispatch(m amqp.Method) error {
	switch m := m.(type) {
	case *amqp.ChannelClose:
		ch.shutdown()
		delete(ch.c.channels, ch.id)
		ch.c.wr.method(ch.id, &amqp.ChannelCloseOk{})
	case *amqp.ChannelCloseOk:
		// Not closing: nothing to acknowledge.
	case *amqp.ChannelOpen:
		return newError(amqp.ChannelError, m, "second 'channel.open' seen")
	case *amqp.ChannelFlow:
		// As RabbitMQ: a client may not pause its own deliveries with
		// channel.flow (prefetch is the way); it gets 540.
		if !m.Active {
			return newError(amqp.NotImplemented, m, "active=false")
		}
		ch.b.SetFlow(true)
		ch.c.wr.method(ch.id, &amqp.ChannelFlowOk{Active: true})
	case *amqp.ChannelFlowOk:
		// The server never sends channel.flow; ignore a stray answer.
	case *amqp.AccessRequest:
		ch.c.wr.method(ch.id, &amqp.AccessRequestOk{Ticket: 1})

	case *amqp.ExchangeDeclare:
		err := ch.b.DeclareExchange(broker.ExchangeDecl{
			Name: stripCRLF(m.Exchange), Type: m.Type, Passive: m.Passive, Durable: m.Durable,
			AutoDelete: m.AutoDelete, Internal: m.Internal, Args: m.Arguments,
		})
		if err != nil {
			return fromBroker(err, m)
		}
		ch.reply(m.NoWait, &amqp.ExchangeDeclareOk{})
	case *amqp.ExchangeDelete:
		if err := ch.b.DeleteExchange(stripCRLF(m.Exchange), m.IfUnused); err != nil {
			return fromBroker(err, m)
		}
		ch.reply(m.NoWait, &amqp.ExchangeDeleteOk{})
	case *amqp.ExchangeBind:
		b := broker.Binding{Source: stripCRLF(m.Source), Destination: stripCRLF(m.Destination), Key: m.RoutingKey, Args: m.Arguments}
		if err := ch.b.BindExchange(b); err != nil {
			return fromBroker(err, m)
		}
		ch.reply(m.NoWait, &amqp.ExchangeBindOk{})
	case *amqp.ExchangeUnbind:
		b := broker.Binding{Source: stripCRLF(m.Source), Destination: stripCRLF(m.Destination), Key: m.RoutingKey, Args: m.Arguments}
		if err := ch.b.UnbindExchange(b); err != nil {
			return fromBroker(err, m)
		}
		ch.reply(m.NoWait, &amqp.ExchangeUnbindOk{})

	case *amqp.QueueDeclare:
		st, err := ch.b.DeclareQueue(broker.QueueDecl{
			Name: stripCRLF(m.Queue), Passive: m.Passive, Durable: m.Durable, Exclusive: m.Exclusive,
			AutoDelete: m.AutoDelete, Args: m.Arguments,
		})
		if err != nil {
			return fromBroker(err, m)
		}
		ch.lastQ = st.Name
		ch.reply(m.NoWait, &amqp.QueueDeclareOk{Queue: st.Name, MessageCount: st.Messages, ConsumerCount: st.Consumers})
	case *amqp.QueueBind:
		q, err := ch.queueName(m.Queue, m)
		if err != nil {
			return err
		}
		key := m.RoutingKey
		if m.Queue == "" && key == "" {
			key = q
		}
		if err := ch.b.BindQueue(broker.Binding{Source: stripCRLF(m.Exchange), Destination: q, Key: key, Args: m.Arguments}); err != nil {
			return fromBroker(err, m)
		}
		ch.reply(m.NoWait, &amqp.QueueBindOk{})
	case *amqp.QueueUnbind:
		q, err := ch.queueName(m.Queue, m)
		if err != nil {
			return err
		}
		if err := ch.b.UnbindQueue(broker.Binding{Source: stripCRLF(m.Exchange), Destination: q, Key: m.RoutingKey, Args: m.Arguments}); err != nil {
			return fromBroker(err, m)
		}
		ch.reply(false, &amqp.QueueUnbindOk{})
	case *amqp.QueuePurge:
		q, err := ch.queueName(m.Queue, m)
		if err != nil {
			return err
		}
		n, err := ch.b.PurgeQueue(q)
		if err != nil {
			return fromBroker(err, m)
		}
		ch.reply(m.NoWait, &amqp.QueuePurgeOk{MessageCount: n})
	case *amqp.QueueDelete:
		q, err := ch.queueName(m.Queue, m)
		if err != nil {
			return err
		}
		n, err := ch.b.DeleteQueue(q, m.IfUnused, m.IfEmpty)
		if err != nil {
			return fromBroker(err, m)
		}
		ch.reply(m.NoWait, &amqp.QueueDeleteOk{MessageCount: n})

	default:
		return ch.basic(m)
	}
	return nil
}

// basic handles the basic, tx and confirm classes.
func (ch *channel) basic(m amqp.Method) error {
	switch m := m.(type) {
	case *amqp.BasicQos:
		if err := ch.b.Qos(m.PrefetchSize, m.PrefetchCount, m.Global); err != nil {
			return fromBroker(err, m)
		}
		ch.c.wr.method(ch.id, &amqp.BasicQosOk{})
	case *amqp.BasicConsume:
		return ch.consume(m)
	case *amqp.BasicCancel:
		if err := ch.b.Cancel(m.ConsumerTag); err != nil {
			return fromBroker(err, m)
		}
		ch.out.forget(m.ConsumerTag)
		ch.reply(m.NoWait, &amqp.BasicCancelOk{ConsumerTag: m.ConsumerTag})
	case *amqp.BasicPublish:
		if m.Immediate {
			return newError(amqp.NotImplemented, m, "immediate=true")
		}
		ch.publish = m
	case *amqp.BasicGet:
		return ch.get(m)
	case *amqp.BasicAck:
		if err := ch.b.Ack(m.DeliveryTag, m.Multiple); err != nil {
			return fromBroker(err, m)
		}
	case *amqp.BasicNack:
		if err := ch.b.Nack(m.DeliveryTag, m.Multiple, m.Requeue); err != nil {
			return fromBroker(err, m)
		}
	case *amqp.BasicReject:
		if err := ch.b.Nack(m.DeliveryTag, false, m.Requeue); err != nil {
			return fromBroker(err, m)
		}
	case *amqp.BasicRecover:
		if err := ch.b.Recover(m.Requeue); err != nil {
			return fromBroker(err, m)
		}
		ch.c.wr.method(ch.id, &amqp.BasicRecoverOk{})
	case *amqp.BasicRecoverAsync:
		if err := ch.b.Recover(m.Requeue); err != nil {
			return fromBroker(err, m)
		}

	case *amqp.TxSelect:
		if err := ch.b.SelectTx(); err != nil {
			return fromBroker(err, m)
		}
		ch.c.wr.method(ch.id, &amqp.TxSelectOk{})
	case *amqp.TxCommit:
		// Mandatory messages no queue took are returned at the commit,
		// before commit-ok.
		if err := ch.b.CommitTx(ch.returnMessage); err != nil {
			return fromBroker(err, m)
		}
		ch.c.wr.method(ch.id, &amqp.TxCommitOk{})
	case *amqp.TxRollback:
		if err := ch.b.RollbackTx(); err != nil {
			return fromBroker(err, m)
		}
		ch.c.wr.method(ch.id, &amqp.TxRollbackOk{})
	case *amqp.ConfirmSelect:
		if ch.confirms == nil {
			if err := ch.b.SelectConfirm(); err != nil {
				return fromBroker(err, m)
			}
			ch.confirms = newConfirms(ch.c.wr, ch.id)
			ch.confirms.sent = ch.b.CountConfirms
		}
		ch.reply(m.NoWait, &amqp.ConfirmSelectOk{})

	default:
		// Methods only a server sends (basic.deliver, queue.declare-ok, …).
		return newError(amqp.CommandInvalid, m, "unexpected method %s from a client", m.Name())
	}
	return nil
}

func (ch *channel) consume(m *amqp.BasicConsume) error {
	q, err := ch.queueName(m.Queue, m)
	if err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = newConsumerTag()
	}
	ch.out.hold(tag, m.NoAck)
	tag, err = ch.b.Consume(broker.ConsumeRequest{
		Queue: q, Tag: tag, NoLocal: m.NoLocal, NoAck: m.NoAck, Exclusive: m.Exclusive, Args: m.Arguments,
	})
	if err != nil {
		ch.out.release(nil, false)
		return fromBroker(err, m)
	}
	var ok amqp.Method
	if !m.NoWait {
		ok = &amqp.BasicConsumeOk{ConsumerTag: tag}
	}
	ch.out.release(ok, true)
	return nil
}

func (ch *channel) get(m *amqp.BasicGet) error {
	q, err := ch.queueName(m.Queue, m)
	if err != nil {
		return err
	}
	d, err := ch.b.Get(q, m.NoAck)
	if err != nil {
		return fromBroker(err, m)
	}
	if d == nil {
		ch.c.wr.method(ch.id, &amqp.BasicGetEmpty{})
		return nil
	}
	it := outItem{
		channel: ch.id,
		method: &amqp.BasicGetOk{
			DeliveryTag: d.DeliveryTag, Redelivered: d.Redelivered, Exchange: d.Exchange,
			RoutingKey: d.RoutingKey, MessageCount: d.MessageCount,
		},
		content: true,
		props:   &d.Properties,
		raw:     d.RawProperties,
		body:    d.Body,
	}
	// A basic.get-ok that cannot be encoded: the message is taken back and
	// the client, which waits for an answer, hears get-empty.
	b, tag, noAck := ch.b, d.DeliveryTag, m.NoAck
	it.refused = func() {
		if !noAck {
			b.Undeliverable(tag)
		}
		ch.c.wr.method(ch.id, &amqp.BasicGetEmpty{})
	}
	ch.c.wr.enqueue(it)
	return nil
}

// newConsumerTag generates a consumer tag as RabbitMQ does: amq.ctag-….
func newConsumerTag() string {
	var b [16]byte
	rand.Read(b[:])
	return "amq.ctag-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// content handles a content header or body frame.
func (ch *channel) content(f amqp.Frame) error {
	if ch.closing {
		return nil
	}
	if ch.publish == nil {
		return newError(amqp.UnexpectedFrame, nil, "expected method frame, got non method frame instead")
	}
	if f.Type == amqp.FrameHeader {
		if ch.header {
			return newError(amqp.UnexpectedFrame, ch.publish, "expected content body, got non content body frame instead")
		}
		h, err := amqp.ReadContentHeader(f.Payload)
		if err != nil {
			return fromCodec(err)
		}
		if h.ClassID != classBasic {
			return newError(amqp.UnexpectedFrame, ch.publish,
				"expected content header for class %d, got one for class %d instead", classBasic, h.ClassID)
		}
		if max := ch.c.srv.cfg.MaxMessageSize; h.BodySize > max {
			err := newError(amqp.PreconditionFailed, ch.publish, "message size %d is larger than configured max size %d", h.BodySize, max)
			if ch.confirms != nil {
				// As with any refused publish on a confirm channel: a
				// nack, once the body has gone by; the channel stays.
				ch.header, ch.bodySize, ch.oversize, ch.received = true, h.BodySize, true, 0
				return nil
			}
			ch.publish = nil
			return ch.exception(err)
		}
		ch.header, ch.bodySize = true, h.BodySize
		ch.draft = broker.NewDraft(ch.publish.Exchange, ch.publish.RoutingKey, &h.Properties, amqp.PropertyBytes(f.Payload), int(h.BodySize))
		if h.BodySize == 0 {
			return ch.published()
		}
		return nil
	}
	if !ch.header {
		return newError(amqp.UnexpectedFrame, ch.publish,
			"expected content header for class %d, got non content header frame instead", classBasic)
	}
	if ch.oversize {
		return ch.skipOversize(len(f.Payload))
	}
	have := uint64(ch.draft.Len())
	if have+uint64(len(f.Payload)) > ch.bodySize {
		return newError(amqp.FrameError, ch.publish, "content body of %d bytes exceeds the declared body size %d",
			have+uint64(len(f.Payload)), ch.bodySize)
	}
	ch.draft.Append(f.Payload) // copies: the frame's payload is the reader's
	ch.c.addPartial(int64(len(f.Payload)))
	if have+uint64(len(f.Payload)) == ch.bodySize {
		return ch.published()
	}
	return nil
}

// skipOversize drops n bytes of an oversize body; after the last one the
// publish is nacked.
func (ch *channel) skipOversize(n int) error {
	ch.received += uint64(n)
	if ch.received > ch.bodySize {
		return newError(amqp.FrameError, ch.publish, "content body of %d bytes exceeds the declared body size %d",
			ch.received, ch.bodySize)
	}
	if ch.received < ch.bodySize {
		return nil
	}
	ch.publish, ch.header, ch.oversize, ch.received = nil, false, false, 0
	seq := ch.confirms.next()
	ch.confirms.stored(seq, errors.New("message over the maximum message size"))
	ch.confirms.release(seq, false)
	return nil
}

// published hands a fully assembled message to the broker, then answers
// with basic.return and the confirm, in that order.
func (ch *channel) published() error {
	p, d := ch.publish, ch.draft
	ch.dropDraft()
	ch.publish, ch.header = nil, false

	var seq uint64
	done := func(error) {}
	if cf := ch.confirms; cf != nil {
		seq = cf.next()
		done = func(err error) { cf.stored(seq, err) }
	}
	routed, err := ch.b.PublishDraft(d, p.Mandatory, done)
	if err != nil {
		return ch.exception(fromBroker(err, p))
	}
	if !routed && p.Mandatory {
		ch.returnMessage(&d.Msg)
	}
	if ch.confirms != nil {
		ch.confirms.release(seq, !routed && p.Mandatory)
	}
	ch.c.waitUnblocked()
	return nil
}

// returnMessage sends basic.return of an unroutable mandatory message.
func (ch *channel) returnMessage(m *message.Message) {
	ch.c.wr.enqueue(outItem{
		channel: ch.id,
		method:  &amqp.BasicReturn{ReplyCode: amqp.NoRoute, ReplyText: amqp.ReplyText(amqp.NoRoute), Exchange: m.Exchange, RoutingKey: m.RoutingKey},
		content: true,
		props:   &m.Properties,
		body:    m.Body,
	})
}
