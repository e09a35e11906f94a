package broker_test

// Protocol tests of DESIGN §2's dead-letter, retry and delay rules, driven
// through amqp091-go against a whole broker.

import (
	"context"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

func dlStartAMQP(t *testing.T, opts ...sluicetest.Option) (*sluicetest.Broker, *amqp091.Channel) {
	t.Helper()
	b := sluicetest.Start(t, opts...)
	return b, sluicetest.Channel(t, b.Dial(t))
}

// dlStartBubbled is dlStartAMQP over in-memory pipes, for a test run in a
// testing/synctest bubble: the delays, backoffs, timeouts and housekeeping
// rounds it waits for pass in fake time, at once and exactly.
func dlStartBubbled(t *testing.T, opts ...sluicetest.Option) (*sluicetest.Broker, *amqp091.Channel) {
	t.Helper()
	return dlStartAMQP(t, append(opts, sluicetest.WithPipe())...)
}

func dlDeclare(t *testing.T, ch *amqp091.Channel, name string, args amqp091.Table) {
	t.Helper()
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		t.Fatalf("declare %s: %v", name, err)
	}
}

func dlPublish(t *testing.T, ch *amqp091.Channel, exchange, key string, p amqp091.Publishing) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, p); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// waitGet polls basic.get until a message arrives.
func dlWaitGet(t *testing.T, ch *amqp091.Channel, queue string) amqp091.Delivery {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatalf("get %s: %v", queue, err)
		}
		if ok {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no message in %s", queue)
	return amqp091.Delivery{}
}

// dlWaitQueue polls until a queue exists (one declared by the broker).
func dlWaitQueue(t *testing.T, b *sluicetest.Broker, queue string) {
	t.Helper()
	conn := b.Dial(t)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ch := sluicetest.Channel(t, conn)
		_, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err == nil {
			ch.Close()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("queue %s never declared", queue)
}

func dlWantEmpty(t *testing.T, ch *amqp091.Channel, queue string) {
	t.Helper()
	if d, ok, err := ch.Get(queue, true); err != nil || ok {
		t.Fatalf("get %s: %q, %v, want empty", queue, d.Body, err)
	}
}

// deaths returns the x-death entries of d, their times checked (whole
// seconds, recent) and removed for comparison.
func dlDeaths(t *testing.T, d amqp091.Delivery) []amqp091.Table {
	t.Helper()
	arr, ok := d.Headers["x-death"].([]any)
	if !ok {
		t.Fatalf("x-death = %#v, want an array", d.Headers["x-death"])
	}
	var out []amqp091.Table
	for _, v := range arr {
		e := v.(amqp091.Table)
		tm, ok := e["time"].(time.Time)
		if !ok || time.Since(tm) > time.Minute || tm.Nanosecond() != 0 {
			t.Fatalf("x-death time = %#v", e["time"])
		}
		c := amqp091.Table{}
		for k, v := range e {
			if k != "time" {
				c[k] = v
			}
		}
		out = append(out, c)
	}
	return out
}

func dlDeath(count int64, reason, queue, exchange string, rks ...any) amqp091.Table {
	return amqp091.Table{"count": count, "reason": reason, "queue": queue, "exchange": exchange, "routing-keys": rks}
}

// "On dead letters x-death: an array of tables, newest first, one per
// (queue, reason) … original-expiration (string) when the message had an
// expiration (the dead letter itself loses its expiration property) …
// Plus x-first-death-* and x-last-death-*." CC is stripped only under a
// dead-letter routing key, as RabbitMQ does.
func TestSpec2DeadLetterRejectedXDeath(t *testing.T) {
	_, ch := dlStartAMQP(t)
	if err := ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	dlDeclare(t, ch, "work", amqp091.Table{"x-dead-letter-exchange": "dlx"})
	dlDeclare(t, ch, "dlq", nil)
	if err := ch.QueueBind("dlq", "", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	dlPublish(t, ch, "", "work", amqp091.Publishing{Body: []byte("job"), Expiration: "60000", DeliveryMode: 2,
		Headers: amqp091.Table{"CC": []any{"cc-key"}, "app": "x"}})
	d := dlWaitGet(t, ch, "work")
	if err := d.Nack(false, false); err != nil {
		t.Fatal(err)
	}
	dl := dlWaitGet(t, ch, "dlq")
	want := dlDeath(1, "rejected", "work", "", "work", "cc-key")
	want["original-expiration"] = "60000"
	if got := dlDeaths(t, dl); !reflect.DeepEqual(got, []amqp091.Table{want}) {
		t.Fatalf("x-death = %#v\nwant %#v", got, want)
	}
	// As RabbitMQ, CC stays when no dead-letter routing key replaces it.
	if dl.Expiration != "" || dl.Headers["CC"] == nil || dl.Headers["app"] != "x" || string(dl.Body) != "job" {
		t.Fatalf("dead letter: expiration %q, headers %v", dl.Expiration, dl.Headers)
	}
	if dl.Exchange != "dlx" || dl.RoutingKey != "work" || dl.DeliveryMode != 2 {
		t.Fatalf("dead letter from %q/%q mode %d", dl.Exchange, dl.RoutingKey, dl.DeliveryMode)
	}
	for k, v := range map[string]string{"x-first-death-queue": "work", "x-first-death-reason": "rejected",
		"x-first-death-exchange": "", "x-last-death-queue": "work", "x-last-death-reason": "rejected",
		"x-last-death-exchange": ""} {
		if dl.Headers[k] != v {
			t.Errorf("%s = %#v, want %q", k, dl.Headers[k], v)
		}
	}
	if _, ok := dl.Headers["x-delivery-count"]; ok {
		t.Errorf("x-delivery-count carried onto the dead letter")
	}
}

// "When a message dies again in the same queue for the same reason, only
// that entry's count grows and the entry moves to the front"; cycles are
// detected as RabbitMQ does (a cycle with a rejection in it is allowed).
func TestSpec2DeadLetterCountAndCycles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ch := dlStartBubbled(t)
		// a expires into b (via the default exchange); b's rejections go back to a.
		dlDeclare(t, ch, "a", amqp091.Table{"x-message-ttl": int32(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "b"})
		dlDeclare(t, ch, "b", amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "a"})
		dlPublish(t, ch, "", "a", amqp091.Publishing{Body: []byte("m")})
		d := dlWaitGet(t, ch, "b")
		if got, want := dlDeaths(t, d), []amqp091.Table{dlDeath(1, "expired", "a", "", "a")}; !reflect.DeepEqual(got, want) {
			t.Fatalf("first x-death = %v, want %v", got, want)
		}
		first := d.Headers["x-death"].([]any)[0].(amqp091.Table)["time"]
		d.Nack(false, false) // b -> a (rejected) -> expires -> b: not a cycle
		d = dlWaitGet(t, ch, "b")
		want := []amqp091.Table{dlDeath(2, "expired", "a", "", "a"), dlDeath(1, "rejected", "b", "", "b")}
		if got := dlDeaths(t, d); !reflect.DeepEqual(got, want) {
			t.Fatalf("x-death = %v\nwant %v", got, want)
		}
		if d.Headers["x-death"].([]any)[0].(amqp091.Table)["time"] != first {
			t.Errorf("time of the grown entry changed")
		}
		if d.Headers["x-first-death-reason"] != "expired" || d.Headers["x-last-death-queue"] != "a" {
			t.Errorf("first/last death headers: %v", d.Headers)
		}
		d.Ack(false)

		// A queue that dead-letters expired messages to itself: a cycle with
		// no rejection, so the message is dropped.
		dlDeclare(t, ch, "loop", amqp091.Table{"x-message-ttl": int32(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "loop"})
		dlPublish(t, ch, "", "loop", amqp091.Publishing{Body: []byte("m")})
		deadline := time.Now().Add(3 * time.Second)
		for {
			q, err := ch.QueueDeclarePassive("loop", true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if q.Messages == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("loop still holds %d messages", q.Messages)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // a cycling message would reappear
		dlWantEmpty(t, ch, "loop")
	})
}

// Length limits dead-letter with reason maxlen: drop-head the oldest,
// reject-publish-dlx the refused publish (whose publisher gets a nack).
func TestSpec2DeadLetterMaxLen(t *testing.T) {
	_, ch := dlStartAMQP(t)
	dlDeclare(t, ch, "dlq", nil)
	dlDeclare(t, ch, "head", amqp091.Table{"x-max-length": int32(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
	dlDeclare(t, ch, "rej", amqp091.Table{"x-max-length": int32(1), "x-overflow": "reject-publish-dlx",
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
	dlPublish(t, ch, "", "head", amqp091.Publishing{Body: []byte("h1")})
	dlPublish(t, ch, "", "head", dlAmqp91Pub("h2"))
	d := dlWaitGet(t, ch, "dlq")
	if string(d.Body) != "h1" || !reflect.DeepEqual(dlDeaths(t, d), []amqp091.Table{dlDeath(1, "maxlen", "head", "", "head")}) {
		t.Fatalf("drop-head dead letter %q %v", d.Body, d.Headers)
	}
	d.Ack(false)

	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 2))
	dlPublish(t, ch, "", "rej", dlAmqp91Pub("r1"))
	dlPublish(t, ch, "", "rej", dlAmqp91Pub("r2"))
	if c := <-confirms; !c.Ack {
		t.Fatalf("first publish nacked")
	}
	if c := <-confirms; c.Ack {
		t.Fatalf("second publish acked, want nack")
	}
	d = dlWaitGet(t, ch, "dlq")
	if string(d.Body) != "r2" || !reflect.DeepEqual(dlDeaths(t, d), []amqp091.Table{dlDeath(1, "maxlen", "rej", "", "rej")}) {
		t.Fatalf("reject-publish-dlx dead letter %q %v", d.Body, d.Headers)
	}
}

func dlAmqp91Pub(body string) amqp091.Publishing { return amqp091.Publishing{Body: []byte(body)} }

// "x-delivery-count (long) on redeliveries … absent on the first
// delivery … A delivery limit of N allows N+1 deliveries"; with no DLX the
// message goes to sluice.dead-letters.
func TestSpec2DeliveryLimitPoisonQueue(t *testing.T) {
	b, ch := dlStartAMQP(t)
	dlDeclare(t, ch, "jobs", amqp091.Table{"x-delivery-limit": int32(2)})
	dlPublish(t, ch, "", "jobs", dlAmqp91Pub("poison"))
	for i := range 3 {
		d := dlWaitGet(t, ch, "jobs")
		n, ok := d.Headers["x-delivery-count"]
		switch {
		case i == 0 && ok:
			t.Fatalf("first delivery has x-delivery-count %v", n)
		case i > 0 && n != int64(i):
			t.Fatalf("delivery %d: x-delivery-count %#v, want %d", i+1, n, i)
		case i > 0 && !d.Redelivered:
			t.Fatalf("delivery %d not redelivered", i+1)
		}
		d.Nack(false, true)
	}
	dlWaitQueue(t, b, "sluice.dead-letters")
	d := dlWaitGet(t, ch, "sluice.dead-letters")
	if got, want := dlDeaths(t, d), []amqp091.Table{dlDeath(1, "delivery_limit", "jobs", "", "jobs")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("x-death = %v, want %v", got, want)
	}
	if _, ok := d.Headers["x-delivery-count"]; ok || d.Redelivered {
		t.Fatalf("dead letter carries the delivery count (%v) or redelivered", d.Headers)
	}
	dlWantEmpty(t, ch, "jobs")
}

// The poison queue can be turned off: the message is then dropped.
func TestDeliveryLimitNoPoisonQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ch := dlStartBubbled(t, sluicetest.WithBrokerConfig(func(c *broker.Config) { c.NoPoisonQueue = true }))
		dlDeclare(t, ch, "jobs", amqp091.Table{"x-delivery-limit": int32(0)})
		dlPublish(t, ch, "", "jobs", dlAmqp91Pub("poison"))
		dlWaitGet(t, ch, "jobs").Nack(false, true)
		time.Sleep(20 * time.Millisecond)
		dlWantEmpty(t, ch, "jobs")
		if _, err := ch.QueueDeclarePassive("sluice.dead-letters", true, false, false, false, nil); err == nil {
			t.Fatalf("poison queue declared although turned off")
		}
	})
}

// x-delay holds a message out of its queues until due; so does an
// x-delayed-message exchange, which routes as its x-delayed-type.
func TestSpec2Delay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ch := dlStartBubbled(t)
		dlDeclare(t, ch, "later", nil)
		if err := ch.ExchangeDeclare("delayed", "x-delayed-message", true, false, false, false,
			amqp091.Table{"x-delayed-type": "direct"}); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind("later", "k", "delayed", false, nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		dlPublish(t, ch, "", "later", amqp091.Publishing{Body: []byte("second"), Headers: amqp091.Table{"x-delay": int32(300)}})
		dlPublish(t, ch, "delayed", "k", amqp091.Publishing{Body: []byte("first"), Headers: amqp091.Table{"x-delay": int64(150)}})
		dlPublish(t, ch, "delayed", "k", dlAmqp91Pub("now"))
		if d := dlWaitGet(t, ch, "later"); string(d.Body) != "now" {
			t.Fatalf("got %q first, want the undelayed message", d.Body)
		}
		dlWantEmpty(t, ch, "later")
		d := dlWaitGet(t, ch, "later")
		if string(d.Body) != "first" || time.Since(start) < 150*time.Millisecond {
			t.Fatalf("got %q after %v", d.Body, time.Since(start))
		}
		d = dlWaitGet(t, ch, "later")
		if string(d.Body) != "second" || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("got %q after %v", d.Body, time.Since(start))
		}
		if err := ch.ExchangeDeclare("bad", "x-delayed-message", true, false, false, false, nil); err == nil {
			t.Fatalf("x-delayed-message without x-delayed-type accepted")
		}
	})
}

// x-retry-backoff: a returned message waits (not blocking those behind
// it, not counted as ready), then is ready again.
func TestSpec2RetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ch := dlStartBubbled(t)
		dlDeclare(t, ch, "r", amqp091.Table{"x-retry-backoff": "200ms,1s"})
		dlPublish(t, ch, "", "r", dlAmqp91Pub("a"))
		dlPublish(t, ch, "", "r", dlAmqp91Pub("b"))
		d := dlWaitGet(t, ch, "r")
		returned := time.Now()
		d.Nack(false, true)
		if d := dlWaitGet(t, ch, "r"); string(d.Body) != "b" {
			t.Fatalf("got %q, want b (a waits)", d.Body)
		} else {
			d.Ack(false)
		}
		q, err := ch.QueueDeclarePassive("r", true, false, false, false, nil)
		if err != nil || q.Messages != 0 {
			t.Fatalf("ready count %d (%v), want 0 while a waits", q.Messages, err)
		}
		d = dlWaitGet(t, ch, "r")
		if string(d.Body) != "a" || time.Since(returned) < 200*time.Millisecond || d.Headers["x-delivery-count"] != int64(1) {
			t.Fatalf("got %q after %v, headers %v", d.Body, time.Since(returned), d.Headers)
		}
		if _, err := ch.QueueDeclare("bad", true, false, false, false, amqp091.Table{"x-retry-backoff": "soon"}); err == nil {
			t.Fatalf("bad x-retry-backoff accepted")
		}
	})
}

// x-consumer-timeout: an unacked delivery older than the timeout returns
// to the queue (counted), the channel stays open, a late ack is ignored.
func TestSpec2ConsumerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ch := dlStartBubbled(t)
		dlDeclare(t, ch, "slow", amqp091.Table{"x-consumer-timeout": int32(50)})
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		dlPublish(t, ch, "", "slow", dlAmqp91Pub("job"))
		d := dlWaitGet(t, ch, "slow")
		deadline := time.Now().Add(5 * time.Second)
		var again amqp091.Delivery
		for {
			time.Sleep(20 * time.Millisecond)
			if d2, ok, err := ch.Get("slow", false); err != nil {
				t.Fatal(err)
			} else if ok {
				again = d2
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("delivery not taken back")
			}
		}
		if again.Headers["x-delivery-count"] != int64(1) || !again.Redelivered {
			t.Fatalf("redelivery headers %v redelivered %v", again.Headers, again.Redelivered)
		}
		if err := d.Ack(false); err != nil { // late: ignored
			t.Fatal(err)
		}
		if err := again.Ack(false); err != nil {
			t.Fatal(err)
		}
		dlWantEmpty(t, ch, "slow")
		select {
		case e := <-closed:
			t.Fatalf("channel closed: %v", e)
		default:
		}
	})
}
