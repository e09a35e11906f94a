//go:build integration

package rabbitcompare

// Issue 11's corners, run against RabbitMQ and Sluice: sender-selected
// distribution (CC/BCC), user-id validation, transactions (returns and
// TTL at commit, uncommitted acks on close) and unexpected frames.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

func TestCornersMatchRabbitMQ(t *testing.T) {
	rabbitURL := rabbitURLOrSkip(t)
	prefix := fmt.Sprintf("cmp-%d-", time.Now().UnixNano())
	rabbit := corners(t, rabbitURL, prefix)
	sluice := corners(t, sluicetest.Start(t).URL(), prefix)
	compareResults(t, rabbit, sluice, nil)
}

// corners runs each case against url on connections of its own (several
// end in a channel or connection error) and returns what each observed.
func corners(t *testing.T, url, prefix string) map[string]any {
	t.Helper()
	out := map[string]any{}
	run := func(name string, f func(r *runner) any) {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		r := &runner{t: t, ch: ch, p: prefix + name + "-", conn: conn}
		out[name] = f(r)
		if ch2, err := conn.Channel(); err == nil {
			r.ch = ch2
			r.cleanup()
		}
	}
	run("cc-direct", func(r *runner) any {
		r.exchange("x", "direct")
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			r.queue(k, nil)
			r.bind(k, "x", "k"+k)
		}
		r.queue("empty", nil)
		r.bind("empty", "x", "")
		r.publish(r.p+"x", "ka", amqp.Publishing{Body: []byte("m"), Headers: amqp.Table{
			"CC": []any{"kb", "", int32(7), "ka"}, "BCC": []any{"kc", "kb"}, "other": "kept"}})
		return r.gotAll("a", "b", "c", "d", "e", "empty")
	})
	run("cc-topic-and-e2e", func(r *runner) any {
		r.exchange("t", "topic")
		r.exchange("d", "direct")
		if err := r.ch.ExchangeBind(r.p+"d", "#", r.p+"t", false, nil); err != nil {
			r.t.Fatal(err)
		}
		r.queue("star", nil)
		r.bind("star", "t", "a.*")
		r.queue("hash", nil)
		r.bind("hash", "t", "b.#")
		r.queue("via", nil)
		r.bind("via", "d", "z")
		r.publish(r.p+"t", "a.x", amqp.Publishing{Body: []byte("m"), Headers: amqp.Table{
			"CC": []any{"b.y.z"}, "BCC": []any{"z"}}})
		return r.gotAll("star", "hash", "via")
	})
	run("cc-default-exchange", func(r *runner) any {
		for _, k := range []string{"a", "b", "c"} {
			r.queue(k, nil)
		}
		r.publish("", r.p+"a", amqp.Publishing{Body: []byte("m"), Headers: amqp.Table{
			"CC": []any{r.p + "b"}, "BCC": []any{r.p + "c", r.p + "missing"}}})
		return r.gotAll("a", "b", "c")
	})
	run("cc-not-array", func(r *runner) any {
		r.queue("a", nil)
		r.publish("", r.p+"a", amqp.Publishing{Headers: amqp.Table{"CC": "k"}})
		return r.channelError()
	})
	run("bcc-not-array", func(r *runner) any {
		r.queue("a", nil)
		r.publish("", r.p+"a", amqp.Publishing{Headers: amqp.Table{"BCC": int32(1)}})
		return r.channelError()
	})
	run("user-id-other", func(r *runner) any {
		r.queue("a", nil)
		r.publish("", r.p+"a", amqp.Publishing{UserId: "somebody"})
		return r.channelError()
	})
	run("user-id-self", func(r *runner) any {
		r.queue("a", nil)
		r.publish("", r.p+"a", amqp.Publishing{UserId: "guest", Body: []byte("m")})
		d := r.get("a")
		return d.UserId
	})
	run("tx-return-at-commit", func(r *runner) any {
		returns := r.ch.NotifyReturn(make(chan amqp.Return, 4))
		if err := r.ch.Tx(); err != nil {
			r.t.Fatal(err)
		}
		if err := r.ch.PublishWithContext(context.Background(), "", r.p+"nowhere", true, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			r.t.Fatal(err)
		}
		if err := r.ch.Qos(0, 0, false); err != nil { // a round trip
			r.t.Fatal(err)
		}
		before := len(returns)
		if err := r.ch.TxCommit(); err != nil {
			r.t.Fatal(err)
		}
		return []any{before, len(returns)}
	})
	run("tx-routing", func(r *runner) any {
		returns := r.ch.NotifyReturn(make(chan amqp.Return, 4))
		r.exchange("x", "direct")
		r.queue("late", nil)
		r.queue("gone", nil)
		r.bind("gone", "x", "g")
		if err := r.ch.Tx(); err != nil {
			r.t.Fatal(err)
		}
		// Bound after the publish, before the commit.
		r.publish(r.p+"x", "l", amqp.Publishing{Body: []byte("late")})
		r.bind("late", "x", "l")
		// Its only queue deleted after the publish, before the commit.
		if err := r.ch.PublishWithContext(context.Background(), r.p+"x", "g", true, false, amqp.Publishing{Body: []byte("gone")}); err != nil {
			r.t.Fatal(err)
		}
		if _, err := r.ch.QueueDelete(r.p+"gone", false, false, false); err != nil {
			r.t.Fatal(err)
		}
		if err := r.ch.TxCommit(); err != nil {
			r.t.Fatal(err)
		}
		return []any{r.count("late"), len(returns)}
	})
	run("tx-ttl-from-commit", func(r *runner) any {
		r.queue("qttl", amqp.Table{"x-message-ttl": int32(300)})
		r.queue("mttl", nil)
		if err := r.ch.Tx(); err != nil {
			r.t.Fatal(err)
		}
		r.publish("", r.p+"qttl", amqp.Publishing{Body: []byte("q")})
		r.publish("", r.p+"mttl", amqp.Publishing{Body: []byte("m"), Expiration: "300"})
		time.Sleep(500 * time.Millisecond)
		if err := r.ch.TxCommit(); err != nil {
			r.t.Fatal(err)
		}
		return []any{r.count("qttl"), r.count("mttl")}
	})
	run("tx-close-requeues-uncommitted-acks", func(r *runner) any {
		r.queue("a", nil)
		r.publish("", r.p+"a", amqp.Publishing{Body: []byte("m")})
		tx, err := r.conn.Channel()
		if err != nil {
			r.t.Fatal(err)
		}
		if err := tx.Tx(); err != nil {
			r.t.Fatal(err)
		}
		d, ok, err := tx.Get(r.p+"a", false)
		if err != nil || !ok {
			r.t.Fatalf("get: %v %v", ok, err)
		}
		if err := d.Ack(false); err != nil {
			r.t.Fatal(err)
		}
		tx.Close()
		d = r.get("a")
		return []any{string(d.Body), d.Redelivered}
	})
	run("update-secret", func(r *runner) any {
		err := r.conn.UpdateSecret("not the password", "rotation")
		return fmt.Sprint(err)
	})
	run("unbind-missing", func(r *runner) any {
		r.exchange("x", "direct")
		r.queue("q", nil)
		var out []any
		for _, b := range [][2]string{{"q", "x"}, {"no-queue", "x"}, {"q", "no-exchange"}} {
			ch, err := r.conn.Channel()
			if err != nil {
				r.t.Fatal(err)
			}
			out = append(out, fmt.Sprint(ch.QueueUnbind(r.p+b[0], "k", r.p+b[1], nil)))
			ch.Close()
		}
		return out
	})
	run("crlf-names", func(r *runner) any {
		if err := r.ch.ExchangeDeclare(r.p+"x\r\n1", "fanout", false, true, false, false, nil); err != nil {
			r.t.Fatal(err)
		}
		r.xs = append(r.xs, r.p+"x1")
		q, err := r.ch.QueueDeclare(r.p+"q\n1", false, false, false, false, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		r.queues = append(r.queues, r.p+"q1")
		out := []any{strings.TrimPrefix(q.Name, r.p)}
		out = append(out, fmt.Sprint(r.ch.ExchangeDeclarePassive(r.p+"x\r1", "fanout", false, true, false, false, nil)))
		_, err = r.ch.QueueDeclarePassive(r.p+"q1\r", false, false, false, false, nil)
		out = append(out, fmt.Sprint(err))
		out = append(out, fmt.Sprint(r.ch.QueueBind(r.p+"\nq1", "", r.p+"x1\n", false, nil)))
		_, err = r.ch.QueueDelete(r.p+"q\r\n1", false, false, false)
		out = append(out, fmt.Sprint(err))
		_, err = r.ch.QueueDeclarePassive(r.p+"q1", false, false, false, false, nil)
		return append(out, fmt.Sprint(err))
	})
	run("passive-declare-renews-lease", func(r *runner) any {
		r.queue("lease", amqp.Table{"x-expires": int32(1000)})
		for range 5 {
			time.Sleep(400 * time.Millisecond)
			if _, err := r.ch.QueueDeclarePassive(r.p+"lease", true, false, false, false, nil); err != nil {
				return fmt.Sprint(err)
			}
		}
		return "alive"
	})
	for name, f := range frameCases {
		out[name] = f(t, url)
	}
	return out
}

// gotAll takes what each queue holds and returns, per queue, the bodies
// and headers of its messages.
func (r *runner) gotAll(queues ...string) any {
	out := amqp.Table{}
	for _, q := range queues {
		var msgs []any
		for {
			d, ok, err := r.ch.Get(r.p+q, true)
			if err != nil {
				r.t.Fatalf("get %s: %v", q, err)
			}
			if !ok {
				break
			}
			msgs = append(msgs, amqp.Table{"body": string(d.Body), "headers": normalize(d.Headers)})
		}
		out[q] = msgs
	}
	return out
}

func (r *runner) count(queue string) int {
	q, err := r.ch.QueueDeclarePassive(r.p+queue, true, false, false, false, nil)
	if err != nil {
		r.t.Fatalf("passive declare %s: %v", queue, err)
	}
	return q.Messages
}

// channelError waits for the channel to be closed by the broker and
// returns the code and text.
func (r *runner) channelError() any {
	closed := r.ch.NotifyClose(make(chan *amqp.Error, 1))
	// A round trip makes sure the close, if any, has been sent.
	r.ch.Qos(0, 0, false)
	select {
	case e := <-closed:
		if e == nil {
			return "closed without error"
		}
		return fmt.Sprintf("%d %s", e.Code, e.Reason)
	case <-time.After(5 * time.Second):
		return "channel stayed open"
	}
}
