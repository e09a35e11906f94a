//go:build integration

package rabbitcompare

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// TestTimingMatchesRabbitMQ compares issue 11's timing and flow corners:
// prompt expiry, TTL 0, two dead-letter hops, drop-head after a requeue,
// a full channel-wide prefetch and basic.cancel after publishes. Times
// become verdicts ("prompt"), so the brokers' results compare equal.
func TestTimingMatchesRabbitMQ(t *testing.T) {
	if os.Getenv("SLUICE_COMPARE_RABBITMQ") != "1" {
		t.Skip("set SLUICE_COMPARE_RABBITMQ=1 (and RABBITMQ_URL) to compare with RabbitMQ")
	}
	rabbitURL := os.Getenv("RABBITMQ_URL")
	if rabbitURL == "" {
		rabbitURL = "amqp://guest:guest@127.0.0.1:5681/"
	}
	prefix := fmt.Sprintf("cmpt-%d-", time.Now().UnixNano())
	rabbit := timingScenarios(t, rabbitURL, prefix)
	sluice := timingScenarios(t, sluicetest.Start(t).URL(), prefix)
	for name, want := range rabbit {
		got := sluice[name]
		dropLastDeath(got, want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs\nRabbitMQ: %s\nSluice:   %s", name, show(want), show(got))
		} else {
			t.Logf("%s: same: %s", name, show(want))
		}
	}
}

func timingScenarios(t *testing.T, url, prefix string) map[string]any {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, ch: ch, p: prefix}
	defer r.cleanup()
	out := map[string]any{}

	// Prompt expiry with nobody reading the source queue: queue TTL and
	// per-message expiration.
	r.queue("dlq", nil)
	dead := r.consume(ch, "dlq", true, "")
	r.queue("ttl", amqp.Table{"x-message-ttl": int32(100), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "dlq"})
	r.queue("exp", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "dlq"})
	for _, c := range []struct {
		name, queue string
		pub         amqp.Publishing
	}{
		{"prompt-queue-ttl", "ttl", amqp.Publishing{Body: []byte("q")}},
		{"prompt-expiration", "exp", amqp.Publishing{Body: []byte("e"), Expiration: "100"}},
	} {
		start := time.Now()
		r.publish("", r.p+c.queue, c.pub)
		d := r.next(dead)
		out[c.name] = amqp.Table{"prompt": time.Since(start) < 600*time.Millisecond,
			"headers": normalize(d.Headers), "body": string(d.Body)}
	}

	// TTL 0: expired at once without a consumer; delivered to one that can
	// take it; expired when requeued.
	r.queue("zero", amqp.Table{"x-message-ttl": int32(0), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "dlq"})
	start := time.Now()
	r.publish("", r.p+"zero", amqp.Publishing{Body: []byte("nobody")})
	d := r.next(dead)
	out["ttl0-no-consumer"] = amqp.Table{"prompt": time.Since(start) < 300*time.Millisecond,
		"headers": normalize(d.Headers), "body": string(d.Body)}
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	got := r.consume(cch, "zero", false, "")
	r.publish("", r.p+"zero", amqp.Publishing{Body: []byte("taken")})
	d = r.next(got)
	out["ttl0-delivered"] = string(d.Body)
	d.Nack(false, true)
	d = r.next(dead)
	out["ttl0-requeued"] = amqp.Table{"headers": normalize(d.Headers), "body": string(d.Body),
		"no-redelivery": r.quiet(got)}
	cch.Close()

	// Two expiry hops, the second with a dead-letter routing key to
	// amq.direct.
	r.queue("final", nil)
	if err := ch.QueueBind(r.p+"final", r.p+"to-final", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	final := r.consume(ch, "final", true, "")
	r.queue("second", amqp.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "amq.direct",
		"x-dead-letter-routing-key": r.p + "to-final"})
	r.queue("first", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "second"})
	start = time.Now()
	r.publish("", r.p+"first", amqp.Publishing{Body: []byte("twice"), Expiration: "50",
		Headers: amqp.Table{"CC": []any{"cc-key"}}})
	d = r.next(final)
	out["two-hops"] = amqp.Table{"prompt": time.Since(start) < 700*time.Millisecond, "headers": normalize(d.Headers),
		"exchange": d.Exchange, "routing-key": d.RoutingKey[len(r.p):], "expiration": d.Expiration}

	// drop-head after a requeue dead-letters the oldest.
	r.queue("dl2", nil)
	r.queue("max", amqp.Table{"x-max-length": int32(2), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "dl2"})
	r.publish("", r.p+"max", amqp.Publishing{Body: []byte("m1")})
	r.publish("", r.p+"max", amqp.Publishing{Body: []byte("m2")})
	m1 := r.get("max")
	r.publish("", r.p+"max", amqp.Publishing{Body: []byte("m3")})
	m1.Nack(false, true)
	out["maxlen-after-requeue"] = r.deadLetter("dl2")
	var left []string
	for {
		m, ok, err := ch.Get(r.p+"max", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		left = append(left, string(m.Body))
	}
	out["maxlen-left"] = left

	out["prefetch"] = r.prefetch(conn)
	out["cancel"] = r.cancelAfterPublish(conn)
	return out
}

// prefetch: a full channel-wide limit holds a no-ack consumer of the
// channel; an ack releases it.
func (r *runner) prefetch(conn *amqp.Connection) any {
	ch, err := conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	r.queue("acked", nil)
	r.queue("noack", nil)
	if err := ch.Qos(1, 0, true); err != nil {
		r.t.Fatal(err)
	}
	r.publish("", r.p+"acked", amqp.Publishing{Body: []byte("a")})
	acked := r.consume(ch, "acked", false, "")
	a := r.next(acked)
	free := r.consume(ch, "noack", true, "")
	r.publish("", r.p+"noack", amqp.Publishing{Body: []byte("n")})
	held := r.quiet(free)
	a.Ack(false)
	return amqp.Table{"held-while-full": held, "after-ack": string(r.next(free).Body)}
}

// cancelAfterPublish: messages published before basic.cancel go to the
// cancelled (higher-priority) consumer.
func (r *runner) cancelAfterPublish(conn *amqp.Connection) any {
	ch, err := conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	other, err := conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer other.Close()
	r.queue("ordered", nil)
	high, err := ch.Consume(r.p+"ordered", "high", false, false, false, false, amqp.Table{"x-priority": int32(10)})
	if err != nil {
		r.t.Fatal(err)
	}
	low := r.consume(other, "ordered", false, "low")
	const n = 100
	for range n {
		if err := ch.PublishWithContext(context.Background(), "", r.p+"ordered", false, false,
			amqp.Publishing{Body: []byte("o"), DeliveryMode: amqp.Persistent}); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := ch.Cancel("high", false); err != nil {
		r.t.Fatal(err)
	}
	toHigh := 0
	for range high {
		toHigh++
	}
	return amqp.Table{"to-cancelled": toHigh, "to-other-none": r.quiet(low)}
}

func (r *runner) consume(ch *amqp.Channel, queue string, noAck bool, tag string) <-chan amqp.Delivery {
	r.t.Helper()
	ds, err := ch.Consume(r.p+queue, tag, noAck, false, false, false, nil)
	if err != nil {
		r.t.Fatalf("consume %s: %v", queue, err)
	}
	return ds
}

func (r *runner) next(ds <-chan amqp.Delivery) amqp.Delivery {
	r.t.Helper()
	select {
	case d := <-ds:
		return d
	case <-time.After(10 * time.Second):
		r.t.Fatal("no delivery")
	}
	return amqp.Delivery{}
}

// quiet reports whether nothing arrives for a moment.
func (r *runner) quiet(ds <-chan amqp.Delivery) bool {
	select {
	case <-ds:
		return false
	case <-time.After(200 * time.Millisecond):
		return true
	}
}
