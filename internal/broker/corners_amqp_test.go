package broker_test

// Protocol tests of issue 11's timing, prefetch, length-limit and
// ordering corners (behaviours 4, 5, 8 and 9), each as RabbitMQ 3.10
// behaves, through amqp091-go against a whole broker.

import (
	"context"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// consumeOne starts a consumer on queue and returns its deliveries.
func consumeOne(t *testing.T, ch *amqp091.Channel, queue string, noAck bool, args amqp091.Table) <-chan amqp091.Delivery {
	t.Helper()
	ds, err := ch.Consume(queue, "", noAck, false, false, false, args)
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	return ds
}

// next waits up to within for a delivery.
func next(t *testing.T, ds <-chan amqp091.Delivery, within time.Duration, what string) amqp091.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatalf("%s: consumer closed", what)
		}
		return d
	case <-time.After(within):
		t.Fatalf("%s: nothing within %v", what, within)
	}
	return amqp091.Delivery{}
}

// none checks that nothing arrives for a while.
func none(t *testing.T, ds <-chan amqp091.Delivery, wait time.Duration, what string) {
	t.Helper()
	select {
	case d := <-ds:
		t.Fatalf("%s: got %q, want nothing", what, d.Body)
	case <-time.After(wait):
	}
}

// Behaviour 4: "expires (and dead-letters) its head as soon as it is due
// even when no consumer reads the queue". Nothing reads the source queue
// here (a get or a passive declare would expire it on the way), so only
// a timer armed for the head can dead-letter it promptly.
func TestExpiryIsPromptWithoutConsumer(t *testing.T) {
	for _, tc := range []struct {
		name string
		args amqp091.Table
		pub  amqp091.Publishing
	}{
		{"x-message-ttl", amqp091.Table{"x-message-ttl": int32(100)}, amqp091.Publishing{Body: []byte("m")}},
		{"expiration", nil, amqp091.Publishing{Body: []byte("m"), Expiration: "100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, ch := dlStartBubbled(t)
				dlDeclare(t, ch, "dlq", nil)
				args := amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
				for k, v := range tc.args {
					args[k] = v
				}
				dlDeclare(t, ch, "src", args)
				dead := consumeOne(t, ch, "dlq", true, nil)
				start := time.Now()
				dlPublish(t, ch, "", "src", tc.pub)
				d := next(t, dead, 5*time.Second, "dead letter")
				if took := time.Since(start); took < 90*time.Millisecond || took > 600*time.Millisecond {
					t.Fatalf("dead-lettered %v after the publish, want soon after its 100 ms TTL (due in whole ms)", took)
				}
				if d.Headers["x-first-death-reason"] != "expired" {
					t.Fatalf("headers %v", d.Headers)
				}
			})
		})
	}
}

// Behaviour 4: "TTL 0: delivered only if a consumer can take it at once,
// otherwise expired at enqueue; a requeued TTL-0 message expires."
func TestExpiryTTLZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, ch := dlStartBubbled(t)
		dlDeclare(t, ch, "dlq", nil)
		dlDeclare(t, ch, "zero", amqp091.Table{"x-message-ttl": int32(0),
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
		dead := consumeOne(t, ch, "dlq", true, nil)

		// No consumer: expired (dead-lettered) at once, not a second later.
		start := time.Now()
		dlPublish(t, ch, "", "zero", dlAmqp91Pub("nobody"))
		d := next(t, dead, 5*time.Second, "dead letter")
		if took := time.Since(start); string(d.Body) != "nobody" || took > 300*time.Millisecond {
			t.Fatalf("dead letter %q after %v, want nobody at once", d.Body, took)
		}

		// A consumer that can take it gets it; requeued, it expires.
		cch := sluicetest.Channel(t, b.Dial(t))
		got := consumeOne(t, cch, "zero", false, nil)
		dlPublish(t, ch, "", "zero", dlAmqp91Pub("taken"))
		d = next(t, got, 5*time.Second, "delivery")
		if string(d.Body) != "taken" {
			t.Fatalf("delivered %q, want taken", d.Body)
		}
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
		d = next(t, dead, 5*time.Second, "requeued dead letter")
		if deaths := dlDeaths(t, d); string(d.Body) != "taken" || !reflect.DeepEqual(deaths,
			[]amqp091.Table{dlDeath(1, "expired", "zero", "", "zero")}) {
			t.Fatalf("requeued TTL-0 message: %q %v, want it expired", d.Body, deaths)
		}
		none(t, got, 50*time.Millisecond, "redelivery of an expired message")
	})
}

// Behaviour 4: "Dead-letter with a new routing key (x-dead-letter-routing-key)
// and dead-lettering the same message twice through two queues produce
// exactly RabbitMQ's x-death" — now on the prompt path too: both hops
// expire within their TTLs, not one housekeeping round each.
func TestExpiryDoubleDeadLetterXDeath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ch := dlStartBubbled(t)
		dlDeclare(t, ch, "final", nil)
		if err := ch.QueueBind("final", "to-final", "amq.direct", false, nil); err != nil {
			t.Fatal(err)
		}
		dlDeclare(t, ch, "second", amqp091.Table{"x-message-ttl": int32(50),
			"x-dead-letter-exchange": "amq.direct", "x-dead-letter-routing-key": "to-final"})
		dlDeclare(t, ch, "first", amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "second"})
		final := consumeOne(t, ch, "final", true, nil)
		start := time.Now()
		dlPublish(t, ch, "", "first", amqp091.Publishing{Body: []byte("twice"), Expiration: "50",
			Headers: amqp091.Table{"CC": []any{"cc-key"}}})
		d := next(t, final, 5*time.Second, "dead letter")
		if took := time.Since(start); took > 700*time.Millisecond {
			t.Fatalf("two 50 ms hops took %v", took)
		}
		first := dlDeath(1, "expired", "first", "", "first", "cc-key")
		first["original-expiration"] = "50"
		want := []amqp091.Table{dlDeath(1, "expired", "second", "", "second"), first}
		if got := dlDeaths(t, d); !reflect.DeepEqual(got, want) {
			t.Fatalf("x-death\n got %v\nwant %v", got, want)
		}
		if d.Exchange != "amq.direct" || d.RoutingKey != "to-final" || d.Expiration != "" {
			t.Fatalf("dead letter from %q with %q, expiration %q", d.Exchange, d.RoutingKey, d.Expiration)
		}
		for k, v := range map[string]any{"x-first-death-queue": "first", "x-first-death-reason": "expired",
			"x-first-death-exchange": "", "CC": nil} {
			if d.Headers[k] != v {
				t.Errorf("header %s = %v, want %v", k, d.Headers[k], v)
			}
		}
	})
}

// Behaviour 5: "While a channel's channel-wide prefetch limit (basic.qos
// global=true) is full, no-ack consumers on that channel get nothing
// either (their deliveries do not count toward the limit, but are held
// while it is full)."
func TestPrefetchGlobalLimitHoldsNoAckConsumers(t *testing.T) {
	_, ch := dlStartAMQP(t)
	dlDeclare(t, ch, "acked", nil)
	dlDeclare(t, ch, "noack", nil)
	if err := ch.Qos(1, 0, true); err != nil {
		t.Fatal(err)
	}
	dlPublish(t, ch, "", "acked", dlAmqp91Pub("a"))
	acked := consumeOne(t, ch, "acked", false, nil)
	a := next(t, acked, 5*time.Second, "acked delivery")
	free := consumeOne(t, ch, "noack", true, nil)
	for _, b := range []string{"n1", "n2"} {
		dlPublish(t, ch, "", "noack", dlAmqp91Pub(b))
	}
	none(t, free, 200*time.Millisecond, "no-ack consumer while the limit is full")
	if err := a.Ack(false); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"n1", "n2"} {
		if d := next(t, free, 5*time.Second, "no-ack delivery after the ack"); string(d.Body) != b {
			t.Fatalf("got %q, want %q", d.Body, b)
		}
	}
}

// Behaviour 5: "credit freed by an ack is shared fairly across the queues
// waiting on the channel's limit, not always taken by the queue whose
// message was acked."
//
// Both queues hold their messages before the consumers start: the
// publishes are unconfirmed and neither basic.qos nor basic.consume waits
// for them, so without the passive declares (which do) qb's messages could
// still be on their way for the first rounds, and a queue with nothing
// ready is not waiting on the limit. Offered in turn, the credit then
// alternates between the queues (qa first twice: its consumer came first).
func TestPrefetchGlobalCreditSharedFairly(t *testing.T) {
	_, ch := dlStartAMQP(t)
	for _, q := range []string{"qa", "qb"} {
		dlDeclare(t, ch, q, nil)
		for range 20 {
			dlPublish(t, ch, "", q, dlAmqp91Pub(q))
		}
	}
	for _, q := range []string{"qa", "qb"} {
		if n := depthOf(t, ch, q); n != 20 {
			t.Fatalf("%s holds %d messages, want 20", q, n)
		}
	}
	if err := ch.Qos(1, 0, true); err != nil {
		t.Fatal(err)
	}
	da := consumeOne(t, ch, "qa", false, nil)
	db := consumeOne(t, ch, "qb", false, nil)
	got := map[string]int{}
	for range 20 {
		var d amqp091.Delivery
		select {
		case d = <-da:
		case d = <-db:
		case <-time.After(5 * time.Second):
			t.Fatalf("stalled after %v", got)
		}
		got[string(d.Body)]++
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if got["qa"] < 8 || got["qb"] < 8 {
		t.Fatalf("first 20 deliveries under a shared limit of 1: %v, want both queues served", got)
	}
}

// Behaviour 8: "x-max-length with drop-head is enforced after a requeue
// (nack/reject requeue, channel close) too: the oldest messages beyond
// the limit are dropped or dead-lettered with reason maxlen."
func TestMaxLengthDropHeadAfterRequeue(t *testing.T) {
	for _, how := range []string{"nack", "reject", "close"} {
		t.Run(how, func(t *testing.T) {
			b, ch := dlStartAMQP(t)
			dlDeclare(t, ch, "dlq", nil)
			dlDeclare(t, ch, "q", amqp091.Table{"x-max-length": int32(2),
				"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
			dlPublish(t, ch, "", "q", dlAmqp91Pub("m1"))
			dlPublish(t, ch, "", "q", dlAmqp91Pub("m2"))
			taker := sluicetest.Channel(t, b.Dial(t))
			d := dlWaitGet(t, taker, "q")
			dlPublish(t, ch, "", "q", dlAmqp91Pub("m3"))
			if n := depthOf(t, ch, "q"); n != 2 {
				t.Fatalf("%d ready before the requeue, want 2", n)
			}
			switch how {
			case "nack":
				_ = d.Nack(false, true)
			case "reject":
				_ = d.Reject(true)
			case "close":
				_ = taker.Close()
			}
			dl := dlWaitGet(t, ch, "dlq")
			if deaths := dlDeaths(t, dl); string(dl.Body) != "m1" || !reflect.DeepEqual(deaths,
				[]amqp091.Table{dlDeath(1, "maxlen", "q", "", "q")}) {
				t.Fatalf("dead letter %q %v, want m1 with reason maxlen", dl.Body, deaths)
			}
			var left []string
			for {
				m, ok, err := ch.Get("q", true)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				left = append(left, string(m.Body))
			}
			if want := []string{"m2", "m3"}; !reflect.DeepEqual(left, want) {
				t.Fatalf("left %v, want %v", left, want)
			}
		})
	}
}

func depthOf(t *testing.T, ch *amqp091.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// Behaviour 9: "Everything a channel published before it sends
// basic.cancel has reached its queues before the cancel takes effect, so
// those messages go to the consumers that were there when they were
// published (consumer priorities respected)."
func TestCancelAfterPublishOrdering(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithDataDir(t.TempDir()))
	ch := sluicetest.Channel(t, b.Dial(t))
	other := sluicetest.Channel(t, b.Dial(t))
	dlDeclare(t, ch, "q", nil)
	high, err := ch.Consume("q", "high", false, false, false, false, amqp091.Table{"x-priority": int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	low := consumeOne(t, other, "q", false, nil)
	const n = 200
	for range n {
		if err := ch.PublishWithContext(context.Background(), "", "q", false, false,
			amqp091.Publishing{Body: []byte("m"), DeliveryMode: amqp091.Persistent}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Cancel("high", false); err != nil {
		t.Fatal(err)
	}
	got := 0
	for range high {
		got++
	}
	if got != n {
		t.Fatalf("the high-priority consumer got %d of the %d published before its cancel", got, n)
	}
	none(t, low, 100*time.Millisecond, "low-priority consumer")
}
