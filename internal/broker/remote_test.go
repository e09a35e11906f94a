package broker

import (
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
)

var quorumArgs = message.Table{"x-queue-type": "quorum"}

// remoteSetup makes a cluster of names whose first node leads quorum
// queue q, holding n persistent messages "0".."n-1"; it returns a client
// on each node.
func remoteSetup(t *testing.T, n int, names ...string) (*fakeNet, map[string]*testClient) {
	t.Helper()
	net := newFakeNet(t, names...)
	cs := make(map[string]*testClient)
	for _, name := range names {
		cs[name] = newClient(t, net.nodes[name].b)
	}
	cs[names[0]].declareQueue("q", true, quorumArgs)
	for i := range n {
		cs[names[0]].publish("", "q", strconv.Itoa(i), true)
	}
	return net, cs
}

// counts returns a node's ready and unacked counts of q.
func queueCounts(t *testing.T, b *Broker, name string) (ready, unacked int) {
	t.Helper()
	q, err := b.vhost("/").queueFor(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready.len(), len(q.unacked)
}

func waitCounts(t *testing.T, b *Broker, name string, ready, unacked int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, u := queueCounts(t, b, name)
		if r == ready && u == unacked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d ready, %d unacked; want %d, %d", name, r, u, ready, unacked)
		}
		time.Sleep(time.Millisecond)
	}
}

// basic.get through a follower: the leader takes the message, the ack
// goes back to it; get-empty and no-ack work as on the leader.
func TestRemoteGetAck(t *testing.T) {
	net, cs := remoteSetup(t, 3, "n1", "n2")
	f := cs["n2"]
	d := f.get("q", false)
	if d == nil || string(d.Body) != "0" || d.MessageCount != 2 {
		t.Fatalf("get through the follower: %+v, want message 0 with 2 left", d)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 2, 1)
	if err := f.ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 2, 0)
	if d := f.get("q", true); d == nil || string(d.Body) != "1" {
		t.Fatalf("no-ack get: %+v", d)
	}
	// A reject without requeue drops it; with requeue it is back.
	d = f.get("q", false)
	if err := f.ch.Nack(d.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 1, 0)
	d = f.get("q", false)
	if !d.Redelivered || d.Properties.Headers["x-delivery-count"] != int64(1) {
		t.Fatalf("requeued message got again: redelivered %v, headers %v", d.Redelivered, d.Properties.Headers)
	}
	if err := f.ch.Nack(d.DeliveryTag, false, false); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 0, 0)
	if d := f.get("q", false); d != nil {
		t.Fatalf("get of an empty queue: %+v, want get-empty", d)
	}
	// An unknown tag is the same channel error as on the leader.
	wantCode(t, f.ch.Ack(99, false), PreconditionFailed, "unknown delivery tag 99")
}

// A message got through a follower and not acked comes back on the
// leader, redelivered, when the follower's link is lost or its channel
// closes; a later ack of it is ignored.
func TestRemoteGetReturnsOnLinkLoss(t *testing.T) {
	net, cs := remoteSetup(t, 2, "n1", "n2")
	f := cs["n2"]
	d := f.get("q", false)
	waitCounts(t, net.nodes["n1"].b, "q", 1, 1)
	net.cut("n1", "n2")
	waitCounts(t, net.nodes["n1"].b, "q", 2, 0)
	if err := f.ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatalf("ack after the link was lost: %v", err)
	}
	net.heal("n1", "n2")
	d = f.get("q", false)
	if string(d.Body) != "0" || !d.Redelivered || d.Properties.Headers["x-delivery-count"] != int64(1) {
		t.Fatalf("after the loss: %q redelivered %v headers %v, want 0 redelivered once", d.Body, d.Redelivered, d.Properties.Headers)
	}
	f.ch.Close()
	waitCounts(t, net.nodes["n1"].b, "q", 2, 0)
}

// A consumer on a follower with prefetch 10 gets every message, never
// more than 10 unacked, and its acks (single and multiple) reach the
// leader.
func TestRemoteConsumePrefetch(t *testing.T) {
	const n = 300
	net, cs := remoteSetup(t, n, "n1", "n2")
	f := cs["n2"]
	if err := f.ch.Qos(0, 10, false); err != nil {
		t.Fatal(err)
	}
	f.consume("q", false)
	acked := 0
	seen := 0
	for acked < n {
		ds := f.out.waitDeliveries(t, min(acked+10, n))
		if len(ds)-acked > 10 {
			t.Fatalf("%d delivered, %d acked: more than the prefetch of 10 unacked", len(ds), acked)
		}
		for ; seen < len(ds); seen++ {
			if string(ds[seen].Body) != strconv.Itoa(seen) {
				t.Fatalf("delivery %d is %q", seen, ds[seen].Body)
			}
		}
		last := ds[len(ds)-1]
		if (len(ds)/10)%2 == 0 {
			if err := f.ch.Ack(last.DeliveryTag, true); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, d := range ds[acked:] {
				if err := f.ch.Ack(d.DeliveryTag, false); err != nil {
					t.Fatal(err)
				}
			}
		}
		acked = len(ds)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 0, 0)
	// basic.cancel reaches the leader: its consumer goes.
	ch := f.ch
	ch.mu.Lock()
	var tag string
	for t := range ch.consumers {
		tag = t
	}
	ch.mu.Unlock()
	if err := ch.Cancel(tag); err != nil {
		t.Fatal(err)
	}
	q, _ := net.nodes["n1"].b.vhost("/").queueFor(nil, "q")
	if _, consumers := q.counts(); consumers != 0 {
		t.Fatalf("the leader has %d consumers after the follower's cancel", consumers)
	}
}

// A client that does not read (its output is full) stalls its own remote
// consumer: the leader sends at most the window, and the follower holds
// at most that.
func TestRemoteConsumeSlowClient(t *testing.T) {
	n := remoteWindow * 3
	net, cs := remoteSetup(t, n, "n1", "n2")
	f := cs["n2"]
	f.conn.SetOutputFull(true)
	f.consume("q", true)
	time.Sleep(100 * time.Millisecond)
	ready, _ := queueCounts(t, net.nodes["n1"].b, "q")
	if sent := n - ready; sent > remoteWindow {
		t.Fatalf("the leader sent %d deliveries to a client that reads nothing, window %d", sent, remoteWindow)
	}
	if got := len(f.out.deliveries()); got != 0 {
		t.Fatalf("a client with a full output got %d deliveries", got)
	}
	f.conn.SetOutputFull(false)
	ds := f.out.waitDeliveries(t, remoteWindow)
	for len(ds) < n {
		f.ch.Written(len(ds)) // the front door reports no-ack deliveries written
		ds = f.out.waitDeliveries(t, min(len(ds)+1, n))
	}
	for i, d := range ds {
		if string(d.Body) != strconv.Itoa(i) {
			t.Fatalf("delivery %d is %q", i, d.Body)
		}
	}
}

// When the leader moves, a follower's consumer re-attaches to the new
// leader; its unacked messages come back redelivered with their
// x-delivery-count; the old leader's consumer moves too.
func TestRemoteConsumeLeaderMoves(t *testing.T) {
	net, cs := remoteSetup(t, 5, "n1", "n2", "n3")
	f, l := cs["n2"], cs["n1"]
	f.ch.Qos(0, 3, false)
	f.consume("q", false)
	l.ch.Qos(0, 1, false)
	f.out.waitDeliveries(t, 3)
	l.consume("q", false)
	l.out.waitDeliveries(t, 1)
	id := net.nodes["n1"].b.vhost("/").queues["q"].id
	net.moveLeader(id, "n3")
	// 5 messages: 4 were unacked (0 to 3), they come again from n3,
	// flagged, with message 4.
	fds := f.out.waitDeliveries(t, 6)
	lds := l.out.waitDeliveries(t, 2)
	for _, d := range append(fds[3:], lds[1:]...) {
		want := string(d.Body) != "4"
		if d.Redelivered != want || want && d.Properties.Headers["x-delivery-count"] != int64(1) {
			t.Fatalf("after the move %q: redelivered %v headers %v", d.Body, d.Redelivered, d.Properties.Headers)
		}
	}
	for _, c := range []*testClient{f, l} {
		ds := c.out.deliveries()
		if err := c.ch.Ack(ds[len(ds)-1].DeliveryTag, true); err != nil {
			t.Fatal(err)
		}
	}
	// The rest arrive and every ack lands on n3.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]bool{}
		for _, c := range []*testClient{f, l} {
			ds := c.out.deliveries()
			for _, d := range ds {
				got[string(d.Body)] = true
			}
			c.ch.Ack(ds[len(ds)-1].DeliveryTag, true)
		}
		r, u := queueCounts(t, net.nodes["n3"].b, "q")
		if len(got) == 5 && r == 0 && u == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range []*testClient{f, l} {
				for _, d := range c.out.deliveries() {
					t.Logf("%q %v %v", d.Body, d.Redelivered, d.DeliveryTag)
				}
			}
			t.Fatalf("after the move: consumed %v, n3 holds %d ready %d unacked", got, r, u)
		}
		time.Sleep(time.Millisecond)
	}
	if c := append(f.out.cancels(), l.out.cancels()...); len(c) != 0 {
		t.Fatalf("consumers cancelled %v, want them moved", c)
	}
}

// A consumer whose queue has no reachable leader for long is cancelled
// (basic.cancel), so that its client consumes again.
func TestRemoteConsumeCancelledWithoutLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out moveTimeout")
	}
	net, cs := remoteSetup(t, 1, "n1", "n2")
	f := cs["n2"]
	tag := f.consume("q", false)
	f.out.waitDeliveries(t, 1)
	net.cut("n1", "n2")
	deadline := time.Now().Add(moveTimeout + 5*time.Second)
	for len(f.out.cancels()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no basic.cancel for a consumer whose leader is unreachable")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := f.out.cancels(); c[0] != tag {
		t.Fatalf("cancelled %v, want %s", c, tag)
	}
}

// queue.purge through a follower purges on the leader.
func TestRemotePurge(t *testing.T) {
	net, cs := remoteSetup(t, 4, "n1", "n2")
	n, err := cs["n2"].ch.PurgeQueue("q")
	if err != nil || n != 4 {
		t.Fatalf("purge through the follower: %d, %v; want 4", n, err)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 0, 0)
}

// A consumer is attached only where its quorum queue is served, in one
// step with the check: on a node that stops serving before the attach,
// addConsumer refuses.
func TestAddConsumerChecksServing(t *testing.T) {
	net, cs := remoteSetup(t, 0, "n1", "n2")
	b := net.nodes["n1"].b
	q := b.vhost("/").queues["q"]
	b.Serving(q.id, false)
	c := &consumer{tag: "x", ch: cs["n1"].ch, q: q}
	if err := q.addConsumer(c); !isNotServed(err) {
		t.Fatalf("addConsumer on a node that stopped serving: %v, want not served", err)
	}
	if _, err := q.get(cs["n1"].ch, false); !isNotServed(err) {
		t.Fatalf("get on a node that stopped serving: %v, want not served", err)
	}
}

// A dead letter and a delayed publish routed into a quorum queue from a
// node that does not lead it reach the queue on its leader.
func TestRemoteDeadLetterAndDelay(t *testing.T) {
	net, cs := remoteSetup(t, 0, "n1", "n2")
	f := cs["n2"]
	f.declareQueue("src", true, message.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q"})
	f.publish("", "src", "dead", true)
	d := f.get("src", false)
	if err := f.ch.Nack(d.DeliveryTag, false, false); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 1, 0)
	waitCounts(t, net.nodes["n2"].b, "src", 0, 0)
	m := newMsg("", "q", "later", true)
	m.Properties.Flags |= message.FlagHeaders
	m.Properties.Headers = message.Table{"x-delay": int64(50)}
	f.publishMsg(m)
	waitCounts(t, net.nodes["n1"].b, "q", 2, 0)
	var got []string
	for range 2 {
		d := f.get("q", true)
		if d == nil {
			t.Fatal("get-empty, want the dead letter and the delayed message")
		}
		got = append(got, string(d.Body))
	}
	if got[0] != "dead" || got[1] != "later" {
		t.Fatalf("the quorum queue holds %v, want [dead later]", got)
	}
}

// A follower flags a message it handed its client before a failover as
// redelivered even when the old leader's record of the delivery was lost
// with it.
func TestRemoteRedeliveredAfterLostMark(t *testing.T) {
	for range 20 {
		net, cs := remoteSetup(t, 4, "n1", "n2", "n3")
		f := cs["n2"]
		f.ch.Qos(0, 3, false)
		f.consume("q", false)
		old := f.out.waitDeliveries(t, 3)
		id := net.nodes["n1"].b.vhost("/").queues["q"].id
		net.moveLeaderFlushed(id, "n3", false)
		f.ch.Ack(old[2].DeliveryTag, true) // ignored: the old leader's
		ds := f.out.waitDeliveries(t, 6)
		f.ch.Ack(ds[5].DeliveryTag, true)
		ds = f.out.waitDeliveries(t, 7)
		for _, d := range ds[3:] {
			want := string(d.Body) != "3"
			if d.Redelivered != want || want && d.Properties.Headers["x-delivery-count"] == nil {
				t.Fatalf("after the failover %q: redelivered %v headers %v, want %v", d.Body, d.Redelivered, d.Properties.Headers, want)
			}
		}
	}
}

// Two consumers on one follower channel share its session; a global
// prefetch of 5 holds across them, and a transaction's acks reach the
// leader at commit.
func TestRemoteSharedSessionGlobalPrefetchTx(t *testing.T) {
	const n = 40
	net, cs := remoteSetup(t, n, "n1", "n2")
	f := cs["n2"]
	if err := f.ch.Qos(0, 5, true); err != nil {
		t.Fatal(err)
	}
	f.consume("q", false)
	f.consume("q", false)
	if err := f.ch.SelectTx(); err != nil {
		t.Fatal(err)
	}
	acked := 0
	for acked < n {
		ds := f.out.waitDeliveries(t, min(acked+5, n))
		if len(ds)-acked > 5 {
			t.Fatalf("%d delivered, %d acked: more than the global prefetch of 5", len(ds), acked)
		}
		for _, d := range ds[acked:] {
			if err := f.ch.Ack(d.DeliveryTag, false); err != nil {
				t.Fatal(err)
			}
		}
		if _, u := queueCounts(t, net.nodes["n1"].b, "q"); u != len(ds)-acked {
			t.Fatalf("before the commit the leader holds %d unacked, want %d", u, len(ds)-acked)
		}
		if err := f.ch.CommitTx(nil); err != nil {
			t.Fatal(err)
		}
		acked = len(ds)
	}
	waitCounts(t, net.nodes["n1"].b, "q", 0, 0)
	tags := map[string]int{}
	for _, d := range f.out.deliveries() {
		tags[d.ConsumerTag]++
	}
	if len(tags) != 2 {
		t.Fatalf("deliveries by consumer %v, want both consumers fed", tags)
	}
}

// A consumer timeout on the leader takes a delivery back from a follower's
// consumer too: its credit frees there, and the message comes again.
func TestRemoteConsumerTimeout(t *testing.T) {
	net, cs := remoteSetup(t, 0, "n1", "n2")
	l, f := cs["n1"], cs["n2"]
	l.declareQueue("slow", true, message.Table{"x-queue-type": "quorum", "x-consumer-timeout": int32(50)})
	l.publish("", "slow", "m", true)
	f.ch.Qos(0, 1, false)
	f.consume("slow", false)
	first := f.out.waitDeliveries(t, 1)[0]
	time.Sleep(100 * time.Millisecond)
	net.nodes["n1"].b.housekeep()
	second := f.out.waitDeliveries(t, 2)[1]
	if string(second.Body) != "m" || !second.Redelivered {
		t.Fatalf("after the timeout: %q redelivered %v", second.Body, second.Redelivered)
	}
	if err := f.ch.Ack(first.DeliveryTag, false); err != nil {
		t.Fatalf("late ack: %v", err)
	}
	if err := f.ch.Ack(second.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, net.nodes["n1"].b, "slow", 0, 0)
}

// basic.qos global raised on a follower's channel after its consumer
// started reaches the leader's session.
func TestRemoteGlobalQosChange(t *testing.T) {
	_, cs := remoteSetup(t, 10, "n1", "n2")
	f := cs["n2"]
	f.ch.Qos(0, 2, true)
	f.consume("q", false)
	f.out.waitDeliveries(t, 2)
	f.ch.Qos(0, 6, true)
	f.out.waitDeliveries(t, 6)
	time.Sleep(50 * time.Millisecond)
	if n := len(f.out.deliveries()); n != 6 {
		t.Fatalf("%d delivered with a global prefetch of 6", n)
	}
}
