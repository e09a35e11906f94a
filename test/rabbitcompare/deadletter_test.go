//go:build integration

// Package rabbitcompare runs the same dead-lettering program against
// RabbitMQ and against Sluice and compares the headers the brokers write
// (x-death, x-first-death-*, …), ignoring time values. It runs only with
// SLUICE_COMPARE_RABBITMQ=1 and a RabbitMQ at RABBITMQ_URL (default
// amqp://guest:guest@127.0.0.1:5681/, see scripts/rabbitmq-local.sh).
package rabbitcompare

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

func TestDeadLetterHeadersMatchRabbitMQ(t *testing.T) {
	rabbitURL := rabbitURLOrSkip(t)
	prefix := fmt.Sprintf("cmp-%d-", time.Now().UnixNano())
	rabbit := scenarios(t, rabbitURL, prefix)
	sluice := scenarios(t, sluicetest.Start(t).URL(), prefix)
	compareResults(t, rabbit, sluice, dropLastDeath)
}

// compareResults reports each case whose result differs between the
// brokers, after adjust (if not nil) changed what Sluice got.
func compareResults(t *testing.T, rabbit, sluice map[string]any, adjust func(got, want any)) {
	t.Helper()
	for name, want := range rabbit {
		got := sluice[name]
		if adjust != nil {
			adjust(got, want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs\nRabbitMQ: %s\nSluice:   %s", name, show(want), show(got))
		} else {
			t.Logf("%s: same: %s", name, show(want))
		}
	}
}

// rabbitURLOrSkip returns the URL of the RabbitMQ to compare with, or
// skips the test unless SLUICE_COMPARE_RABBITMQ=1.
func rabbitURLOrSkip(t *testing.T) string {
	t.Helper()
	if os.Getenv("SLUICE_COMPARE_RABBITMQ") != "1" {
		t.Skip("set SLUICE_COMPARE_RABBITMQ=1 (and RABBITMQ_URL) to compare with RabbitMQ")
	}
	if u := os.Getenv("RABBITMQ_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5681/"
}

// dropLastDeath removes x-last-death-* from got where want lacks them:
// RabbitMQ before 3.13 does not write them.
func dropLastDeath(got, want any) {
	g, gok := got.(amqp.Table)
	w, wok := want.(amqp.Table)
	if !gok || !wok {
		return
	}
	for k, v := range g {
		if _, inRabbit := w[k]; !inRabbit && strings.HasPrefix(k, "x-last-death-") {
			delete(g, k)
			continue
		}
		dropLastDeath(v, w[k])
	}
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// scenarios runs every case against url and returns what each observed,
// with time values removed.
func scenarios(t *testing.T, url, prefix string) map[string]any {
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

	// rejected, with an expiration and a CC header, through a fanout DLX.
	r.exchange("dlx", "fanout")
	r.queue("dlq", nil)
	r.bind("dlq", "dlx", "")
	r.queue("work", amqp.Table{"x-dead-letter-exchange": r.p + "dlx"})
	r.publish("", r.p+"work", amqp.Publishing{Body: []byte("a"), Expiration: "60000",
		Headers: amqp.Table{"CC": []any{"cc-key"}, "keep": "me"}})
	r.get("work").Nack(false, false)
	out["rejected"] = r.deadLetter("dlq")

	// expired (queue TTL) with a dead-letter routing key, then rejected
	// back and expired again: the count grows, the entry moves first.
	r.queue("b", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "a"})
	r.queue("a", amqp.Table{"x-message-ttl": int32(1), "x-dead-letter-exchange": "",
		"x-dead-letter-routing-key": r.p + "b"})
	r.publish("", r.p+"a", amqp.Publishing{Body: []byte("b")})
	d := r.get("b")
	out["expired"] = normalize(d.Headers)
	d.Nack(false, false)
	out["expired-again"] = r.deadLetter("b")

	// maxlen: drop-head and reject-publish-dlx.
	r.queue("dl2", nil)
	r.queue("head", amqp.Table{"x-max-length": int32(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "dl2"})
	r.publish("", r.p+"head", amqp.Publishing{Body: []byte("h1")})
	r.publish("", r.p+"head", amqp.Publishing{Body: []byte("h2")})
	out["maxlen"] = r.deadLetter("dl2")
	r.queue("rej", amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish-dlx",
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "dl2"})
	r.publish("", r.p+"rej", amqp.Publishing{Body: []byte("r1")})
	r.publish("", r.p+"rej", amqp.Publishing{Body: []byte("r2")})
	out["reject-publish-dlx"] = r.deadLetter("dl2")

	// A message expiring into its own queue is a cycle: dropped.
	r.queue("loop", amqp.Table{"x-message-ttl": int32(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "loop"})
	r.publish("", r.p+"loop", amqp.Publishing{Body: []byte("l")})
	time.Sleep(500 * time.Millisecond)
	q, err := ch.QueueDeclarePassive(r.p+"loop", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	out["cycle-messages-left"] = q.Messages

	// delivery limit on a quorum queue: x-delivery-count, then delivery_limit.
	r.queue("dl3", nil)
	r.queue("limited", amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int32(1),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": r.p + "dl3"})
	r.publish("", r.p+"limited", amqp.Publishing{Body: []byte("p")})
	var counts []any
	for range 2 {
		d := r.get("limited")
		// Sluice omits x-delivery-count on a first delivery (DESIGN §2);
		// RabbitMQ 3.x quorum queues send 0. Compare 0 as absent.
		n := d.Headers["x-delivery-count"]
		if n == int64(0) {
			n = nil
		}
		counts = append(counts, n)
		d.Nack(false, true)
	}
	out["delivery-counts"] = counts
	out["delivery_limit"] = r.deadLetter("dl3")
	return out
}

type runner struct {
	t      *testing.T
	conn   *amqp.Connection
	ch     *amqp.Channel
	p      string
	queues []string
	xs     []string
}

func (r *runner) exchange(name, kind string) {
	if err := r.ch.ExchangeDeclare(r.p+name, kind, false, true, false, false, nil); err != nil {
		r.t.Fatalf("declare exchange %s: %v", name, err)
	}
	r.xs = append(r.xs, r.p+name)
}

func (r *runner) queue(name string, args amqp.Table) {
	if _, err := r.ch.QueueDeclare(r.p+name, true, false, false, false, args); err != nil {
		r.t.Fatalf("declare queue %s: %v", name, err)
	}
	r.queues = append(r.queues, r.p+name)
}

func (r *runner) bind(queue, exchange, key string) {
	if err := r.ch.QueueBind(r.p+queue, key, r.p+exchange, false, nil); err != nil {
		r.t.Fatal(err)
	}
}

func (r *runner) publish(exchange, key string, p amqp.Publishing) {
	if err := r.ch.PublishWithContext(context.Background(), exchange, key, false, false, p); err != nil {
		r.t.Fatal(err)
	}
}

func (r *runner) get(queue string) amqp.Delivery {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d, ok, err := r.ch.Get(r.p+queue, false)
		if err != nil {
			r.t.Fatalf("get %s: %v", queue, err)
		}
		if ok {
			return d
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("no message in %s", queue)
	return amqp.Delivery{}
}

// deadLetter takes the next message of queue and returns what matters of
// it: headers (normalized), expiration, exchange and routing key.
func (r *runner) deadLetter(queue string) any {
	d := r.get(queue)
	d.Ack(false)
	return amqp.Table{"headers": normalize(d.Headers), "expiration": d.Expiration,
		"exchange": strings.TrimPrefix(d.Exchange, r.p), "routing-key": strings.TrimPrefix(d.RoutingKey, r.p),
		"body": string(d.Body)}
}

// normalize drops time values (both brokers see the same names).
func normalize(v any) any {
	switch v := v.(type) {
	case amqp.Table:
		out := amqp.Table{}
		for k, x := range v {
			if _, isTime := x.(time.Time); isTime {
				continue
			}
			out[k] = normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x)
		}
		return out
	}
	return v
}

func (r *runner) cleanup() {
	for _, q := range r.queues {
		r.ch.QueueDelete(q, false, false, false)
	}
	for _, x := range r.xs {
		r.ch.ExchangeDelete(x, false, false)
	}
}
