package amqpserver_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

func publish(t *testing.T, ch *amqp091.Channel, exchange, key string, mandatory bool, msg amqp091.Publishing) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), exchange, key, mandatory, false, msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func TestExchangeAndQueueRoundTrip(t *testing.T) {
	_, _, ch := start(t)
	if err := ch.ExchangeDeclare("src", "topic", false, false, false, false, nil); err != nil {
		t.Fatalf("exchange.declare: %v", err)
	}
	if err := ch.ExchangeDeclare("dst", "fanout", false, false, false, false, nil); err != nil {
		t.Fatalf("exchange.declare: %v", err)
	}
	if err := ch.ExchangeDeclarePassive("src", "topic", false, false, false, false, nil); err != nil {
		t.Fatalf("exchange.declare passive: %v", err)
	}
	if err := ch.ExchangeBind("dst", "a.*", "src", false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("queue.declare: %v", err)
	}
	if len(q.Name) < 8 || q.Name[:8] != "amq.gen-" {
		t.Errorf("server-named queue %q, want amq.gen-…", q.Name)
	}
	if err := ch.QueueBind(q.Name, "", "dst", false, nil); err != nil {
		t.Fatalf("queue.bind: %v", err)
	}
	publish(t, ch, "src", "a.b", false, amqp091.Publishing{Body: []byte("one")})
	publish(t, ch, "src", "x.y", false, amqp091.Publishing{Body: []byte("dropped")})
	publish(t, ch, "src", "a.c", false, amqp091.Publishing{Body: []byte("two")})

	// The queue's count answers a passive declare once both arrived.
	waitMessages(t, ch, q.Name, 2)
	n, err := ch.QueuePurge(q.Name, false)
	if err != nil || n != 2 {
		t.Fatalf("queue.purge = %d, %v; want 2", n, err)
	}
	if err := ch.QueueUnbind(q.Name, "", "dst", nil); err != nil {
		t.Fatalf("queue.unbind: %v", err)
	}
	if err := ch.ExchangeUnbind("dst", "a.*", "src", false, nil); err != nil {
		t.Fatalf("exchange.unbind: %v", err)
	}
	if err := ch.ExchangeDelete("dst", false, false); err != nil {
		t.Fatalf("exchange.delete: %v", err)
	}
	publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: []byte("direct")})
	waitMessages(t, ch, q.Name, 1)
	if n, err := ch.QueueDelete(q.Name, false, false, false); err != nil || n != 1 {
		t.Fatalf("queue.delete = %d, %v; want 1", n, err)
	}
	// nowait variants answer nothing; the next synchronous call still works.
	if err := ch.ExchangeDeclare("nw", "direct", false, true, false, true, nil); err != nil {
		t.Fatalf("exchange.declare nowait: %v", err)
	}
	if err := ch.ExchangeDeclarePassive("nw", "direct", false, true, false, false, nil); err != nil {
		t.Fatalf("nowait-declared exchange missing: %v", err)
	}
}

// waitMessages polls a passive declare until the queue holds n ready messages.
func waitMessages(t *testing.T, ch *amqp091.Channel, queue string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			t.Fatalf("queue.declare passive: %v", err)
		}
		if q.Messages == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d messages, want %d", queue, q.Messages, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConsumeAckNackGet(t *testing.T) {
	_, _, ch := start(t)
	q, err := ch.QueueDeclare("work", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	headers := amqp091.Table{"s": "x", "i": int32(7), "nested": amqp091.Table{"b": true}}
	publish(t, ch, "", q.Name, false, amqp091.Publishing{
		ContentType: "text/plain", Headers: headers, CorrelationId: "c1", MessageId: "m1",
		DeliveryMode: 2, Priority: 3, Body: []byte("hello"),
	})

	// basic.get with ack, then nack with requeue: redelivered.
	d, ok, err := ch.Get(q.Name, false)
	if err != nil || !ok {
		t.Fatalf("get = %v, %v", ok, err)
	}
	if string(d.Body) != "hello" || d.ContentType != "text/plain" || d.CorrelationId != "c1" ||
		d.MessageId != "m1" || d.DeliveryMode != 2 || d.Priority != 3 || d.Headers["i"] != int32(7) {
		t.Errorf("got delivery %+v", d)
	}
	if d.Redelivered {
		t.Error("first get is redelivered")
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	d, ok, err = ch.Get(q.Name, false)
	if err != nil || !ok || string(d.Body) != "hello" || !d.Redelivered {
		t.Fatalf("get after nack = %q redelivered %v, %v %v", d.Body, d.Redelivered, ok, err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	waitMessages(t, ch, q.Name, 0)
}

func TestConsumeRedeliverAndCancel(t *testing.T) {
	_, conn, ch := start(t)
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatalf("basic.qos: %v", err)
	}
	for i := range 3 {
		publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: fmt.Appendf(nil, "m%d", i)})
	}
	ds, err := ch.Consume(q.Name, "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("basic.consume: %v", err)
	}
	d := recv(t, ds)
	if string(d.Body) != "m0" || d.ConsumerTag != "c1" {
		t.Fatalf("got %q from %q", d.Body, d.ConsumerTag)
	}
	if err := d.Reject(true); err != nil {
		t.Fatal(err)
	}
	d = recv(t, ds)
	if string(d.Body) != "m0" || !d.Redelivered {
		t.Fatalf("got %q redelivered %v, want m0 redelivered", d.Body, d.Redelivered)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	d = recv(t, ds)
	if string(d.Body) != "m1" {
		t.Fatalf("got %q, want m1", d.Body)
	}
	if err := ch.Cancel("c1", false); err != nil {
		t.Fatalf("basic.cancel: %v", err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	// basic.recover on another channel requeues nothing there; get takes m2.
	ch2 := sluicetest.Channel(t, conn)
	if err := ch2.Recover(true); err != nil {
		t.Fatalf("basic.recover: %v", err)
	}
	g, ok, err := ch2.Get(q.Name, true)
	if err != nil || !ok || string(g.Body) != "m2" {
		t.Fatalf("get = %q %v %v, want m2", g.Body, ok, err)
	}
	if _, ok, err := ch2.Get(q.Name, true); err != nil || ok {
		t.Fatalf("get on empty queue = %v, %v; want get-empty", ok, err)
	}
}

func TestNoAckConsumerManyMessages(t *testing.T) {
	_, _, ch := start(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// More than the broker's outlet window: Written must return credit.
	const n = 5000
	ds, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: fmt.Appendf(nil, "%d", i)})
	}
	for i := range n {
		d := recv(t, ds)
		if want := fmt.Sprint(i); string(d.Body) != want {
			t.Fatalf("message %d is %q", i, d.Body)
		}
	}
}

func TestConfirms(t *testing.T) {
	_, _, ch := start(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 200))
	returns := ch.NotifyReturn(make(chan amqp091.Return, 10))
	for range 100 {
		publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: []byte("x")})
	}
	for i := uint64(1); i <= 100; i++ {
		c := recv(t, confirms)
		if c.DeliveryTag != i || !c.Ack {
			t.Fatalf("confirm %d: %+v", i, c)
		}
	}

	// Mandatory and unroutable: basic.return, then the ack. amqp091-go
	// hands frames to NotifyReturn and NotifyPublish in the order they
	// arrive, so once the ack is out the return must already be waiting.
	publish(t, ch, "", "no-such-queue", true, amqp091.Publishing{Body: []byte("lost")})
	if c := recv(t, confirms); c.DeliveryTag != 101 || !c.Ack {
		t.Fatalf("confirm of the unroutable message: %+v", c)
	}
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || string(r.Body) != "lost" || r.RoutingKey != "no-such-queue" {
			t.Errorf("return %+v", r)
		}
	default:
		t.Fatal("the ack arrived before the basic.return (or no return was sent)")
	}
}

func TestMandatoryReturnWithoutConfirms(t *testing.T) {
	_, _, ch := start(t)
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	publish(t, ch, "amq.direct", "nowhere", true, amqp091.Publishing{MessageId: "r1", Body: []byte("b")})
	r := recv(t, returns)
	if r.Exchange != "amq.direct" || r.MessageId != "r1" || r.ReplyCode != 312 {
		t.Errorf("return %+v", r)
	}
}

func TestTransactions(t *testing.T) {
	_, _, ch := start(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Tx(); err != nil {
		t.Fatalf("tx.select: %v", err)
	}
	publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: []byte("rolled back")})
	if err := ch.TxRollback(); err != nil {
		t.Fatalf("tx.rollback: %v", err)
	}
	publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: []byte("committed")})
	waitMessages(t, ch, q.Name, 0)
	if err := ch.TxCommit(); err != nil {
		t.Fatalf("tx.commit: %v", err)
	}
	waitMessages(t, ch, q.Name, 1)
	d, ok, err := ch.Get(q.Name, true)
	if err != nil || !ok || string(d.Body) != "committed" {
		t.Fatalf("get = %q %v %v", d.Body, ok, err)
	}
}

func TestConsumerCancelNotify(t *testing.T) {
	_, conn, ch := start(t)
	q, err := ch.QueueDeclare("doomed", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancels := ch.NotifyCancel(make(chan string, 1))
	ds, err := ch.Consume(q.Name, "watcher", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := sluicetest.Channel(t, conn)
	if _, err := other.QueueDelete(q.Name, false, false, false); err != nil {
		t.Fatalf("queue.delete: %v", err)
	}
	if tag := recv(t, cancels); tag != "watcher" {
		t.Errorf("cancelled %q, want watcher", tag)
	}
	select {
	case _, ok := <-ds:
		if ok {
			t.Error("delivery after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Error("deliveries channel not closed after cancel")
	}
}

func TestDirectReplyTo(t *testing.T) {
	_, conn, ch := start(t)
	replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume reply-to: %v", err)
	}
	server := sluicetest.Channel(t, conn)
	if _, err := server.QueueDeclare("rpc", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	reqs, err := server.Consume("rpc", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", "rpc", false, amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to", Body: []byte("ping")})
	req := recv(t, reqs)
	if req.ReplyTo == "amq.rabbitmq.reply-to" || len(req.ReplyTo) <= len("amq.rabbitmq.reply-to") {
		t.Fatalf("reply-to %q was not rewritten", req.ReplyTo)
	}
	publish(t, server, "", req.ReplyTo, false, amqp091.Publishing{Body: []byte("pong")})
	if r := recv(t, replies); string(r.Body) != "pong" {
		t.Fatalf("reply %q", r.Body)
	}
}

func TestUpdateSecret(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	if err := conn.UpdateSecret("guest", "rotated"); err != nil {
		t.Fatalf("update-secret: %v", err)
	}
	// As RabbitMQ: the internal backend's credentials cannot expire, so
	// any new secret is accepted (and changes nothing); the connection
	// stays usable.
	if err := conn.UpdateSecret("not the password", "rotated"); err != nil {
		t.Fatalf("update-secret with another secret: %v", err)
	}
	ch := sluicetest.Channel(t, conn)
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("connection unusable after update-secret: %v", err)
	}
}

func TestLargeMessagesSmallFrames(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithServerConfig(func(c *amqpserver.Config) { c.FrameMax = 4096 }))
	conn := b.Dial(t)
	if conn.Config.FrameSize != 4096 {
		t.Fatalf("frame size %d, want 4096", conn.Config.FrameSize)
	}
	ch := sluicetest.Channel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 4088, 4089, 100_000, 3 << 20}
	for _, n := range sizes {
		body := bytes.Repeat([]byte{byte(n)}, n)
		for i := range body {
			body[i] = byte(i * 7)
		}
		publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: body})
		var d amqp091.Delivery
		deadline := time.Now().Add(10 * time.Second)
		for {
			var ok bool
			d, ok, err = ch.Get(q.Name, true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("size %d: message never arrived", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if !bytes.Equal(d.Body, body) {
			t.Fatalf("size %d: body of %d bytes differs", n, len(d.Body))
		}
	}
}

func TestThousandChannels(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	chans := make([]*amqp091.Channel, 1000)
	for i := range chans {
		chans[i] = sluicetest.Channel(t, conn)
	}
	q, err := chans[0].QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		publish(t, ch, "", q.Name, false, amqp091.Publishing{Body: []byte("x")})
	}
	waitMessages(t, chans[999], q.Name, 1000)
	for _, ch := range chans {
		if err := ch.Close(); err != nil {
			t.Fatalf("channel.close: %v", err)
		}
	}
}

// TestChannelFlow: as RabbitMQ, channel.flow active=true is answered and
// active=false (a client pausing its own deliveries) is 540 NOT_IMPLEMENTED.
func TestChannelFlow(t *testing.T) {
	_, conn, ch := start(t)
	if err := ch.Flow(true); err != nil {
		t.Fatalf("channel.flow true: %v", err)
	}
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Flow(false); err == nil {
		t.Fatal("channel.flow false succeeded")
	}
	if e := closedWith(t, closed, 540); e.Reason != "NOT_IMPLEMENTED - active=false" {
		t.Errorf("reason %q", e.Reason)
	}
}

func TestBlockedPlumbing(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	blocked := conn.NotifyBlocked(make(chan amqp091.Blocking, 2))
	ch := sluicetest.Channel(t, conn)
	q, err := ch.QueueDeclare("", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Server.SetBlocked("low on memory")
	if got := recv(t, blocked); !got.Active || got.Reason != "low on memory" {
		t.Fatalf("blocking %+v, want active with reason", got)
	}
	// A publish while blocked is read, then the socket is not read again:
	// the second publish stays unrouted until unblocked.
	ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp091.Publishing{Body: []byte("1")})
	ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp091.Publishing{Body: []byte("2")})
	other := sluicetest.Channel(t, b.Dial(t))
	waitMessages(t, other, q.Name, 1)
	time.Sleep(100 * time.Millisecond) // give a wrongly unblocked reader time to route the second
	waitMessages(t, other, q.Name, 1)
	b.Server.SetUnblocked()
	if got := recv(t, blocked); got.Active {
		t.Fatalf("blocking %+v, want unblocked", got)
	}
	waitMessages(t, other, q.Name, 2)
}
