//go:build integration

package cluster

// Gets and consumers of a quorum queue through a node that does not lead
// it: the follower forwards them to the leader over the cluster transport.

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dialChannel opens a channel on nd.
func dialChannel(t *testing.T, nd *node) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(nd.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}

// basic.get through a follower takes the message on the leader; the ack
// goes back there, and a message got and not acked returns when the
// follower's channel closes, redelivered.
func TestGetThroughFollower(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "got", quorum, false); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, c, "got", 0, 3)
	l := c.leader("got")
	f := c.follower(l)
	_, ch := dialChannel(t, f)
	m, ok, err := ch.Get("got", false)
	if err != nil || !ok || string(m.Body) != "0" || m.MessageCount != 2 {
		t.Fatalf("get through follower %s: %q ok %v count %d err %v, want message 0 with 2 left", f.name, m.Body, ok, m.MessageCount, err)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	m, ok, err = ch.Get("got", false)
	if err != nil || !ok || string(m.Body) != "1" {
		t.Fatalf("second get: %q %v %v", m.Body, ok, err)
	}
	ch.Close() // message 1 unacked: back on the leader
	_, ch = dialChannel(t, f)
	m, ok, err = ch.Get("got", false)
	if err != nil || !ok || string(m.Body) != "1" || !m.Redelivered || m.Headers["x-delivery-count"] != int64(1) {
		t.Fatalf("get after the close: %q ok %v redelivered %v headers %v err %v, want 1 redelivered once", m.Body, ok, m.Redelivered, m.Headers, err)
	}
	m.Ack(false)
	if m, ok, err = ch.Get("got", true); err != nil || !ok || string(m.Body) != "2" {
		t.Fatalf("no-ack get: %q %v %v", m.Body, ok, err)
	}
	if _, ok, err = ch.Get("got", false); err != nil || ok {
		t.Fatalf("get of the emptied queue: ok %v err %v, want get-empty", ok, err)
	}
	// The leader agrees: nothing is left, nothing unacked.
	waitEmpty(t, l, "got")

	// A dead letter from a classic queue on the follower reaches the
	// quorum queue on its leader; queue.purge through the follower
	// purges there.
	if _, err := ch.QueueDeclare("src", true, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "got"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "src", false, false, amqp.Publishing{Body: []byte("dead")}); err != nil {
		t.Fatal(err)
	}
	var dead amqp.Delivery
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if dead, ok, err = ch.Get("src", false); err != nil || ok || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !ok {
		t.Fatalf("get from the classic queue: ok %v err %v", ok, err)
	}
	dead.Reject(false)
	publishConfirmed(t, c, "got", 10, 12)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		q, err := l.queue("got")
		if err == nil && q.Messages == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader holds %+v (%v), want the dead letter and 2 published", q, err)
		}
	}
	if n, err := ch.QueuePurge("got", false); err != nil || n != 3 {
		t.Fatalf("purge through follower %s: %d, %v; want 3", f.name, n, err)
	}
	waitEmpty(t, l, "got")
}

// waitEmpty waits until nd reports queue empty.
func waitEmpty(t *testing.T, nd *node, queue string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, err := nd.queue(queue)
		if err == nil && q.Messages == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reports %+v (%v), want 0 messages", nd.name, q, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A consumer on a follower with prefetch 10 and acks gets every message
// once, in order, with never more than 10 unacked.
func TestConsumeThroughFollower(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "stream", quorum, false); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	l := c.leader("stream")
	f := c.follower(l)
	_, ch := dialChannel(t, f)
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume("stream", "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume through follower %s: %v", f.name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishConfirmed(t, c, "stream", 0, n)
	}()
	start := time.Now()
	var held []amqp.Delivery
	for next := 0; next < n; {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("the consumer ended after %d messages", next)
			}
			if string(m.Body) != strconv.Itoa(next) || m.Redelivered {
				t.Fatalf("delivery %d is %q (redelivered %v)", next, m.Body, m.Redelivered)
			}
			next++
			held = append(held, m)
			if len(held) > 10 {
				t.Fatalf("%d unacked deliveries, prefetch 10", len(held))
			}
			// Ack in runs: single acks, then one multiple ack.
			if next%20 < 10 {
				for _, h := range held {
					h.Ack(false)
				}
				held = held[:0]
			} else if len(held) == 10 || next == n {
				held[len(held)-1].Ack(true)
				held = held[:0]
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("nothing delivered for 20 s after %d messages", next)
		}
	}
	<-done
	t.Logf("%d messages consumed with acks through follower %s in %v", n, f.name, time.Since(start))
	select {
	case m := <-msgs:
		t.Fatalf("an extra delivery %q", m.Body)
	case <-time.After(500 * time.Millisecond):
	}
	waitEmpty(t, l, "stream")
}

// kill -9 of the leader while a consumer reads through a follower: the
// consumer moves to the new leader, every confirmed message is consumed
// at least once, and a message consumed again is flagged redelivered.
func TestLeaderKillWhileConsumingThroughFollower(t *testing.T) {
	c := newCluster(t, 3)
	if err := declare(t, c.nodes[0], "moving", quorum, false); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	l := c.leader("moving")
	f := c.follower(l)
	var mu sync.Mutex
	count := make(map[int]int)
	bodies := make(map[string]bool)
	unflagged := 0
	consumed := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(count)
	}
	stop := make(chan struct{})
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			conn, err := amqp.Dial(f.url())
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			ch, err := conn.Channel()
			var msgs <-chan amqp.Delivery
			if err == nil {
				ch.Qos(10, 0, false)
				msgs, err = ch.Consume("moving", "", false, false, false, false, nil)
			}
			for err == nil {
				select {
				case <-stop:
					conn.Close()
					return
				case m, ok := <-msgs:
					if !ok {
						err = amqp.ErrClosed // cancelled: consume again
						t.Logf("the consumer was cancelled; consuming again")
						break
					}
					// A body is id/attempt: a publish repeated after a lost
					// confirm is another message, one consumed again is
					// a redelivery.
					idText, _, _ := strings.Cut(string(m.Body), "/")
					id, _ := strconv.Atoi(idText)
					mu.Lock()
					if bodies[string(m.Body)] && !m.Redelivered {
						unflagged++
						t.Logf("message %s consumed again unflagged (headers %v)", m.Body, m.Headers)
					}
					bodies[string(m.Body)] = true
					count[id]++
					mu.Unlock()
					m.Ack(false)
				}
			}
			conn.Close()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	published := make(chan struct{})
	go func() {
		defer close(published)
		publishAttempts(t, c, "moving", n)
	}()
	for consumed() < n/4 {
		time.Sleep(time.Millisecond)
	}
	c.kill(l)
	t.Logf("killed leader %s with %d consumed through %s", l.name, consumed(), f.name)
	<-published
	deadline := time.Now().Add(25 * time.Second)
	for consumed() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-consumerDone
	mu.Lock()
	defer mu.Unlock()
	var lost []int
	for id := range n {
		if count[id] == 0 {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d confirmed messages not consumed through the follower (first %d)", len(lost), n, lost[0])
	}
	for id := range count {
		if id < 0 || id >= n {
			t.Fatalf("consumed %d, which was never published", id)
		}
	}
	if unflagged > 0 {
		t.Fatalf("%d messages consumed again without the redelivered flag", unflagged)
	}
	dups := 0
	for _, k := range count {
		dups += k - 1
	}
	t.Logf("%d consumed, %d again after the failover (redelivered or published again)", len(count), dups)
}

// publishAttempts publishes ids [0, n) with confirms through the queue's
// leader, each as "id/attempt", publishing again what was nacked or cut
// off, until every id is confirmed once.
func publishAttempts(t *testing.T, c *cluster, queue string, n int) {
	deadline := time.Now().Add(60 * time.Second)
	attempt := 0
	for id := 0; id < n; {
		if time.Now().After(deadline) {
			t.Errorf("published only up to %d of %d in time", id, n)
			return
		}
		conn, err := amqp.Dial(c.leader(queue).url())
		if err != nil {
			continue
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		for err == nil && id < n {
			attempt++
			var dc *amqp.DeferredConfirmation
			body := strconv.Itoa(id) + "/" + strconv.Itoa(attempt)
			dc, err = ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
			if err == nil && dc.Wait() {
				id++
			} else if err == nil {
				err = amqp.ErrClosed
			}
		}
		conn.Close()
	}
}

// A classic queue lives on the node that declared it; another node serves
// it through that node: a publish, a get and a consumer on n2 of n1's
// queue.
func TestClassicQueueThroughAnotherNode(t *testing.T) {
	c := newCluster(t, 3)
	n1, n2 := c.nodes[0], c.nodes[1]
	_, ch1 := dialChannel(t, n1)
	if _, err := ch1.QueueDeclare("home", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, ch := dialChannel(t, n2)
	// n2 knows the queue once the metadata group's entry applied there.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := ch.QueueDeclarePassive("home", true, false, false, false, nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("n2 does not know n1's queue: %v", err)
		}
		_, ch = dialChannel(t, n2)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		dc, err := ch.PublishWithDeferredConfirm("", "home", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(i))})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish %d on n2 to n1's queue: %v", i, err)
		}
	}
	m, ok, err := ch.Get("home", false)
	if err != nil || !ok || string(m.Body) != "0" {
		t.Fatalf("get on n2 of n1's queue: %q ok %v err %v", m.Body, ok, err)
	}
	m.Ack(false)
	ch.Qos(5, 0, false)
	msgs, err := ch.Consume("home", "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume on n2 of n1's queue: %v", err)
	}
	for i := 1; i < 20; i++ {
		select {
		case m := <-msgs:
			if string(m.Body) != strconv.Itoa(i) {
				t.Fatalf("delivery %d is %q", i, m.Body)
			}
			m.Ack(false)
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing delivered after %d", i)
		}
	}
	waitEmpty(t, n1, "home")
}
