package broker_test

// Issue 11's publish-side corners through amqp091-go against a whole
// broker: sender-selected distribution (CC/BCC), validated user_id and
// transactions, each as RabbitMQ 3.10.8 does (test/rabbitcompare runs the
// same cases against it).

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// drain takes every message of queue (no-ack) and returns their headers.
func drain(t *testing.T, ch *amqp091.Channel, queue string) []amqp091.Table {
	t.Helper()
	var out []amqp091.Table
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d.Headers)
	}
}

// publishWantChannelError publishes p and waits for the broker to close ch
// with code and text. It listens for the close before publishing: a close
// that arrived before NotifyClose would be seen only as a closed channel.
func publishWantChannelError(t *testing.T, ch *amqp091.Channel, key string, p amqp091.Publishing, code int, text string) {
	t.Helper()
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	dlPublish(t, ch, "", key, p)
	ch.Qos(0, 0, false) // a round trip: the close, if any, is on its way
	select {
	case e := <-closed:
		if e == nil || e.Code != code || e.Reason != text {
			t.Fatalf("channel closed with %v, want %d %q", e, code, text)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("channel stayed open, want %d %q", code, text)
	}
}

func TestSenderSelectedDistributionCCAndBCC(t *testing.T) {
	b, ch := dlStartAMQP(t)
	if err := ch.ExchangeDeclare("x", "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c", "d", "empty"} {
		dlDeclare(t, ch, k, nil)
	}
	for q, key := range map[string]string{"a": "ka", "b": "kb", "c": "kc", "d": "kd", "empty": ""} {
		if err := ch.QueueBind(q, key, "x", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	cc := []any{"kb", "", int32(7), "ka"} // "" is a key; non-strings are ignored
	dlPublish(t, ch, "x", "ka", amqp091.Publishing{Headers: amqp091.Table{"CC": cc, "BCC": []any{"kc", "kb"}, "other": "kept"}})
	want := []amqp091.Table{{"CC": cc, "other": "kept"}} // BCC removed, each queue once
	for _, q := range []string{"a", "b", "c", "empty"} {
		if got := drain(t, ch, q); !reflect.DeepEqual(got, want) {
			t.Errorf("queue %s got %v, want %v", q, got, want)
		}
	}
	if got := drain(t, ch, "d"); got != nil {
		t.Errorf("queue d got %v, want nothing", got)
	}

	// Topic, then on through an exchange-to-exchange binding.
	if err := ch.ExchangeDeclare("t", "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeBind("x", "#", "t", false, nil); err != nil {
		t.Fatal(err)
	}
	dlDeclare(t, ch, "star", nil)
	if err := ch.QueueBind("star", "s.*", "t", false, nil); err != nil {
		t.Fatal(err)
	}
	dlPublish(t, ch, "t", "nothing", amqp091.Publishing{Headers: amqp091.Table{"CC": []any{"s.1"}, "BCC": []any{"kd"}}})
	for _, q := range []string{"star", "d"} {
		if got := drain(t, ch, q); len(got) != 1 || got[0]["BCC"] != nil {
			t.Errorf("queue %s got %v, want one message without BCC", q, got)
		}
	}

	// The default exchange: each key names a queue.
	dlPublish(t, ch, "", "a", amqp091.Publishing{Headers: amqp091.Table{"CC": []any{"b"}, "BCC": []any{"c", "missing"}}})
	for _, q := range []string{"a", "b", "c"} {
		if got := drain(t, ch, q); len(got) != 1 {
			t.Errorf("queue %s got %d messages through the default exchange, want 1", q, len(got))
		}
	}
	_ = b
}

func TestSenderSelectedDistributionRefusesNonArray(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	for _, tt := range []struct {
		headers amqp091.Table
		text    string
	}{
		{amqp091.Table{"CC": "k"}, `PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}`},
		{amqp091.Table{"BCC": int32(1)}, `PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"BCC",signedint}`},
	} {
		ch := sluicetest.Channel(t, conn)
		publishWantChannelError(t, ch, "q", amqp091.Publishing{Headers: tt.headers}, 406, tt.text)
	}
}

func TestUserIDValidation(t *testing.T) {
	b := sluicetest.Start(t)
	ch := sluicetest.Channel(t, b.Dial(t))
	dlDeclare(t, ch, "q", nil)
	dlPublish(t, ch, "", "q", amqp091.Publishing{UserId: "guest", Body: []byte("mine")})
	if d := dlWaitGet(t, ch, "q"); d.UserId != "guest" {
		t.Fatalf("user_id %q, want guest", d.UserId)
	}
	publishWantChannelError(t, ch, "q", amqp091.Publishing{UserId: "admin"}, 406, "PRECONDITION_FAILED - user_id property set to 'admin' but authenticated user was 'guest'")

	// A user tagged impersonator may claim any user_id (administrator
	// does not suffice: guest is one).
	if _, err := b.Broker.PutUser("relay", "pw", "", []string{"impersonator"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Broker.SetPermission(broker.Permission{User: "relay", VHost: "/", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp091.Dial(b.URLFor("relay", "pw", "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rch := sluicetest.Channel(t, conn)
	dlDeclare(t, rch, "relayed", nil)
	dlPublish(t, rch, "", "relayed", amqp091.Publishing{UserId: "someone-else"})
	if d := dlWaitGet(t, rch, "relayed"); d.UserId != "someone-else" {
		t.Fatalf("impersonated user_id %q, want someone-else", d.UserId)
	}
}

func TestTxReturnsAtCommit(t *testing.T) {
	b := sluicetest.Start(t)
	ch := sluicetest.Channel(t, b.Dial(t))
	returns := ch.NotifyReturn(make(chan amqp091.Return, 4))
	if err := ch.ExchangeDeclare("x", "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	dlDeclare(t, ch, "gone", nil)
	dlDeclare(t, ch, "late", nil)
	if err := ch.QueueBind("gone", "g", "x", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	mandatory := func(key string) {
		if err := ch.PublishWithContext(context.Background(), "x", key, true, false, amqp091.Publishing{Body: []byte(key)}); err != nil {
			t.Fatal(err)
		}
	}
	mandatory("nowhere") // unroutable
	mandatory("g")       // its only queue is deleted before the commit
	mandatory("l")       // routed when published: the binding comes later
	if _, err := ch.QueueDelete("gone", false, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("late", "l", "x", false, nil); err != nil {
		t.Fatal(err)
	}
	if len(returns) != 0 {
		t.Fatalf("%d returns before tx.commit, want none", len(returns))
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	// amqp091-go hands returns over before it reads commit-ok.
	var got []string
	for len(returns) > 0 {
		got = append(got, (<-returns).RoutingKey)
	}
	if want := []string{"nowhere", "g", "l"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("returned %v at commit, want %v", got, want)
	}
}

// testClock is a clock the test moves.
type testClock struct{ ms atomic.Int64 }

func (c *testClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *testClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func newTestClock() *testClock               { c := &testClock{}; c.ms.Store(time.Now().UnixMilli()); return c }
func withClock(c *testClock) sluicetest.Option {
	return sluicetest.WithBrokerConfig(func(cfg *broker.Config) { cfg.Now = c.now })
}

func TestTxTTLCountsFromCommit(t *testing.T) {
	clock := newTestClock()
	b := sluicetest.Start(t, withClock(clock))
	ch := sluicetest.Channel(t, b.Dial(t))
	dlDeclare(t, ch, "qttl", amqp091.Table{"x-message-ttl": int32(300)})
	dlDeclare(t, ch, "mttl", nil)
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	dlPublish(t, ch, "", "qttl", amqp091.Publishing{Body: []byte("q")})
	dlPublish(t, ch, "", "mttl", amqp091.Publishing{Body: []byte("m"), Expiration: "300"})
	clock.advance(500 * time.Millisecond)
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"qttl", "mttl"} {
		if _, ok, err := ch.Get(q, true); err != nil || !ok {
			t.Errorf("%s: message expired although committed just now (%v, %v)", q, ok, err)
		}
	}
}

func TestTxCloseRequeuesUncommittedAcks(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	ch := sluicetest.Channel(t, conn)
	dlDeclare(t, ch, "q", nil)
	dlPublish(t, ch, "", "q", amqp091.Publishing{Body: []byte("m")})
	tx := sluicetest.Channel(t, conn)
	if err := tx.Tx(); err != nil {
		t.Fatal(err)
	}
	d, ok, err := tx.Get("q", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := tx.Close(); err != nil && !errors.Is(err, amqp091.ErrClosed) {
		t.Fatal(err)
	}
	got := dlWaitGet(t, ch, "q")
	if string(got.Body) != "m" || !got.Redelivered {
		t.Fatalf("after close: %q redelivered=%v, want m redelivered", got.Body, got.Redelivered)
	}
}
