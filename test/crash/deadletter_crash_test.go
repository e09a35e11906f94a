//go:build integration

package crash

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestKillDuringDeadLettering: §5 "Dead lettering … never lose a message
// and never leave it in two queues after a crash" — a consumer rejects
// every message of a queue with a dead-letter exchange while the broker is
// killed; after the restart every message is in exactly one of the two
// queues.
func TestKillDuringDeadLettering(t *testing.T) {
	const total = 5000
	data := t.TempDir()
	b := start(t, data)
	conn, ch := dial(t, b.url())
	declare(t, ch, "dl-dst")
	if _, err := ch.QueueDeclare("dl-src", true, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl-dst",
	}); err != nil {
		t.Fatal(err)
	}
	p := &publisher{confirmed: map[int]bool{}}
	if err := p.run(context.Background(), ch, "dl-src", total); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all confirms", func() bool { return p.confirmedCount() == total })
	conn.Close()

	conn, ch = dial(t, b.url())
	defer conn.Close()
	if err := ch.Qos(200, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("dl-src", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	rejected := 0
	go func() {
		for d := range deliveries {
			if d.Nack(false, false) != nil {
				return
			}
			mu.Lock()
			rejected++
			mu.Unlock()
		}
	}()
	waitFor(t, "2000 rejections", func() bool { mu.Lock(); defer mu.Unlock(); return rejected >= 2000 })
	// The dead-letterer trails the rejections, by more on a loaded machine:
	// kill once it has moved a good part of them, so the kill falls in the
	// middle of its work rather than at its start.
	watch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "1000 dead letters", func() bool {
		q, err := watch.QueueDeclarePassive("dl-dst", true, false, false, false, nil)
		return err == nil && q.Messages >= 1000
	})
	b.kill()

	b = start(t, data)
	src := drain(t, b.url(), "dl-src")
	dst := drain(t, b.url(), "dl-dst")
	for n := 1; n <= total; n++ {
		if src[n]+dst[n] != 1 {
			t.Errorf("msg-%d: %d in the source, %d dead-lettered; want exactly one", n, src[n], dst[n])
		}
	}
	if len(dst) < 1000 {
		t.Errorf("only %d dead letters after 2000+ rejections", len(dst))
	}
	t.Logf("after restart: %d still in the source, %d dead-lettered", len(src), len(dst))
}

// TestKillWithDelaysAndCounts: delayed messages, retry waits and delivery
// counts survive SIGKILL: every confirmed delayed message arrives once,
// after its delay; a returned message comes back with its count.
func TestKillWithDelaysAndCounts(t *testing.T) {
	const total = 1000
	data := t.TempDir()
	b := start(t, data)
	conn, ch := dial(t, b.url())
	declare(t, ch, "delayed")
	declare(t, ch, "counted")
	if _, err := ch.QueueDeclare("waiting", true, false, false, false, amqp.Table{"x-retry-backoff": "2s"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, total+3))
	ctx := context.Background()
	published := time.Now()
	for i := 1; i <= total; i++ {
		if err := ch.PublishWithContext(ctx, "", "delayed", false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: []byte("msg-" + strconv.Itoa(i)),
			Headers: amqp.Table{"x-delay": int32(1500 + i)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"counted", "waiting"} {
		if err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: []byte("msg-0")}); err != nil {
			t.Fatal(err)
		}
	}
	for range total + 2 {
		if c := <-confirms; !c.Ack {
			t.Fatalf("publish %d nacked", c.DeliveryTag)
		}
	}
	get := func(q string) amqp.Delivery {
		t.Helper()
		var d amqp.Delivery
		waitFor(t, "a message in "+q, func() bool {
			var ok bool
			var err error
			d, ok, err = ch.Get(q, false)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		return d
	}
	get("counted").Nack(false, true)
	get("counted").Nack(false, true)
	get("counted") // third delivery, unacked at the kill
	get("waiting").Nack(false, true)
	// Delivery state is written unsynced; the next group commit makes it
	// durable. A confirmed persistent publish is one.
	if err := ch.PublishWithContext(ctx, "", "counted", false, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, Body: []byte("barrier")}); err != nil {
		t.Fatal(err)
	}
	if c := <-confirms; !c.Ack {
		t.Fatal("barrier nacked")
	}
	b.kill()
	conn.Close()

	b = start(t, data)
	conn, ch = dial(t, b.url())
	defer conn.Close()
	d := get("counted")
	if !d.Redelivered || d.Headers["x-delivery-count"] != int64(3) {
		t.Errorf("counted after restart: redelivered %v, x-delivery-count %#v; want 3", d.Redelivered, d.Headers["x-delivery-count"])
	}
	d = get("waiting")
	if d.Headers["x-delivery-count"] != int64(1) || time.Since(published) < 2*time.Second {
		t.Errorf("waiting message after %v: %v", time.Since(published), d.Headers)
	}
	seen := map[int]int{}
	waitFor(t, "all delayed messages", func() bool {
		for {
			d, ok, err := ch.Get("delayed", true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return len(seen) == total
			}
			if time.Since(published) < 1500*time.Millisecond {
				t.Fatalf("delayed message %s arrived after %v", d.Body, time.Since(published))
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(string(d.Body), "msg-"))
			seen[n]++
		}
	})
	time.Sleep(200 * time.Millisecond)
	if _, ok, _ := ch.Get("delayed", true); ok {
		t.Errorf("a delayed message arrived twice")
	}
	for n, c := range seen {
		if c != 1 {
			t.Errorf("msg-%d arrived %d times", n, c)
		}
	}
}

// TestKillKeepsFirstDeliveries: messages a consumer took in order and had
// not acked at a SIGKILL come back redelivered with x-delivery-count 1
// (the queue's delivered mark, not a state per message, records them), and
// the ones it never got come back fresh.
func TestKillKeepsFirstDeliveries(t *testing.T) {
	const total, taken = 2000, 700
	data := t.TempDir()
	b := start(t, data)
	fill(t, b.url(), "first", total)
	conn, ch := dial(t, b.url())
	if err := ch.Qos(taken, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("first", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range taken {
		<-deliveries
	}
	// Delivery marks are written unsynced; the next group commit makes
	// them durable. A confirmed persistent publish to another queue is one.
	fill(t, b.url(), "barrier", 1)
	b.kill()
	conn.Close()

	b = start(t, data)
	conn, ch = dial(t, b.url())
	defer conn.Close()
	for i := 1; i <= total; i++ {
		d, ok, err := ch.Get("first", true)
		if err != nil || !ok {
			t.Fatalf("get %d after restart: ok %v, %v", i, ok, err)
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(string(d.Body), "msg-"))
		count, _ := d.Headers["x-delivery-count"].(int64)
		if wasTaken := n <= taken; d.Redelivered != wasTaken || (wasTaken && count != 1) || (!wasTaken && count != 0) {
			t.Fatalf("msg-%d after restart: redelivered %v, x-delivery-count %d; taken before the kill: %v",
				n, d.Redelivered, count, wasTaken)
		}
	}
}
