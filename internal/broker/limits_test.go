package broker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openClocked(t *testing.T) (*Broker, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := testConfig()
	cfg.Now = clock.Now
	b, err := Open(cfg, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, clock
}

func (c *testClient) ready(q string) uint32 {
	c.t.Helper()
	st, err := c.ch.DeclareQueue(QueueDecl{Name: q, Passive: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return st.Messages
}

func TestQueueMessageTTL(t *testing.T) {
	b, clock := openClocked(t)
	c := newClient(t, b)
	c.declareQueue("q", false, message.Table{"x-message-ttl": int32(1000)})
	c.publish("", "q", "old", false)
	clock.advance(600 * time.Millisecond)
	c.publish("", "q", "new", false)
	clock.advance(600 * time.Millisecond)
	if n := c.ready("q"); n != 1 {
		t.Fatalf("%d ready after the first TTL passed, want 1", n)
	}
	if d := c.get("q", true); d == nil || string(d.Body) != "new" {
		t.Fatalf("got %+v, want new", d)
	}
}

func TestPerMessageExpiration(t *testing.T) {
	b, clock := openClocked(t)
	c := newClient(t, b)
	c.declareQueue("q", false, message.Table{"x-message-ttl": int32(10_000)})
	m := newMsg("", "q", "short", false)
	m.Properties.Flags |= message.FlagExpiration
	m.Properties.Expiration = "100"
	c.publishMsg(m)
	c.publish("", "q", "long", false)
	clock.advance(200 * time.Millisecond)
	if d := c.get("q", true); d == nil || string(d.Body) != "long" {
		t.Fatalf("got %+v, want long", d)
	}
	bad := newMsg("", "q", "x", false)
	bad.Properties.Flags |= message.FlagExpiration
	bad.Properties.Expiration = "soon"
	_, err := c.ch.Publish(bad, false, nil)
	wantCode(t, err, PreconditionFailed, `invalid expiration <<"soon">>: no_integer`)
}

func TestZeroTTLDeliversToWaitingConsumer(t *testing.T) {
	b, clock := openClocked(t)
	c := newClient(t, b)
	c.declareQueue("q", false, message.Table{"x-message-ttl": int32(0)})
	c.publish("", "q", "dropped", false)
	clock.advance(time.Millisecond)
	if n := c.ready("q"); n != 0 {
		t.Fatalf("%d ready with TTL 0 and no consumer", n)
	}
	c.consume("q", true)
	c.publish("", "q", "delivered", false)
	if got := bodies(c.out.exactly(t, 1)); got[0] != "delivered" {
		t.Fatalf("got %v", got)
	}
}

func TestMaxLengthDropHead(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", false, message.Table{"x-max-length": int32(2)})
	for i := range 4 {
		c.publish("", "q", fmt.Sprint(i), false)
	}
	var got []string
	for d := c.get("q", true); d != nil; d = c.get("q", true) {
		got = append(got, string(d.Body))
	}
	if want := []string{"2", "3"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMaxLengthRejectPublish(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", false, message.Table{"x-max-length": int32(2), "x-overflow": "reject-publish"})
	var errs []error
	for i := range 3 {
		done := make(chan error, 1)
		if _, err := c.ch.Publish(newMsg("", "q", fmt.Sprint(i), false), false, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		errs = append(errs, <-done)
	}
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("done errors %v, want only the third refused", errs)
	}
	if n := c.ready("q"); n != 2 {
		t.Fatalf("%d ready, want 2", n)
	}
	if d := c.get("q", true); string(d.Body) != "0" {
		t.Fatalf("head %q, want 0", d.Body)
	}
}

func TestMaxLengthBytes(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", false, message.Table{"x-max-length-bytes": int32(10)})
	c.publish("", "q", "12345", false)
	c.publish("", "q", "67890", false)
	c.publish("", "q", "abc", false)
	if d := c.get("q", true); string(d.Body) != "67890" {
		t.Fatalf("head %q, want 67890 after the oldest was dropped", d.Body)
	}
}

func TestSingleActiveConsumer(t *testing.T) {
	b := openBroker(t, nil)
	c1 := newClient(t, b)
	c2 := newClient(t, b)
	c1.declareQueue("q", false, message.Table{"x-single-active-consumer": true})
	tag1 := c1.consume("q", true)
	c2.consume("q", true)
	for i := range 3 {
		c1.publish("", "q", fmt.Sprint(i), false)
	}
	c1.out.exactly(t, 3)
	if n := len(c2.out.deliveries()); n != 0 {
		t.Fatalf("inactive consumer got %d", n)
	}
	if err := c1.ch.Cancel(tag1); err != nil {
		t.Fatal(err)
	}
	c1.publish("", "q", "next", false)
	c2.out.exactly(t, 1)
}

func TestQueueExpiresWhenUnused(t *testing.T) {
	b, clock := openClocked(t)
	c := newClient(t, b)
	c.declareQueue("q", false, message.Table{"x-expires": int32(1000)})
	c.declareQueue("kept", false, message.Table{"x-expires": int32(1000)})
	tag := c.consume("kept", false)
	clock.advance(700 * time.Millisecond)
	c.declareQueue("q", false, message.Table{"x-expires": int32(1000)}) // a redeclare is a use
	clock.advance(700 * time.Millisecond)
	b.housekeep()
	// A passive declare is a use too (TestPassiveDeclareRenewsLease), so
	// look without one.
	if !queueExists(b, "q") {
		t.Fatal("queue expired 700ms after its redeclare")
	}
	clock.advance(400 * time.Millisecond)
	b.housekeep()
	if queueExists(b, "q") {
		t.Fatal("unused queue still there after x-expires")
	}
	if _, err := c.ch.DeclareQueue(QueueDecl{Name: "kept", Passive: true}); err != nil {
		t.Fatalf("queue with a consumer expired: %v", err)
	}
	if err := c.ch.Cancel(tag); err != nil {
		t.Fatal(err)
	}
	clock.advance(1100 * time.Millisecond)
	b.housekeep()
	if _, err := c.ch.DeclareQueue(QueueDecl{Name: "kept", Passive: true}); CodeOf(err) != NotFound {
		t.Fatalf("queue unused since its consumer left still there: %v", err)
	}
}

func TestHousekeepingDropsExpiredMessages(t *testing.T) {
	b, clock := openClocked(t)
	c := newClient(t, b)
	c.declareQueue("q", true, message.Table{"x-message-ttl": int32(100)})
	c.publish("", "q", "a", true)
	clock.advance(time.Second)
	b.housekeep()
	q := b.vhosts["/"].queues["q"]
	q.mu.Lock()
	n := q.ready.len()
	q.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d messages left after TTL and housekeeping", n)
	}
}

func TestPriorityQueue(t *testing.T) {
	st := memstore.New()
	b := openBroker(t, st)
	c := newClient(t, b)
	c.declareQueue("pq", true, message.Table{"x-max-priority": int32(5)})
	c.declareQueue("plain", false, nil)
	for _, p := range []struct {
		body string
		prio uint8
	}{{"low", 1}, {"high", 5}, {"clamped", 9}, {"none", 0}} {
		for _, q := range []string{"pq", "plain"} {
			m := newMsg("", q, p.body, true)
			m.Properties.Flags |= message.FlagPriority
			m.Properties.Priority = p.prio
			c.publishMsg(m)
		}
	}
	// A requeued message goes back to its level and place.
	d := c.get("pq", false)
	if string(d.Body) != "high" {
		t.Fatalf("first from priority queue %q, want high", d.Body)
	}
	if err := c.ch.Nack(d.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	drain := func(c *testClient, q string) []string {
		var got []string
		for d := c.get(q, true); d != nil; d = c.get(q, true) {
			got = append(got, string(d.Body))
		}
		return got
	}
	if got, want := drain(c, "plain"), []string{"low", "high", "clamped", "none"}; !slices.Equal(got, want) {
		t.Errorf("queue without x-max-priority: %v, want %v", got, want)
	}
	// After a restart the levels come back too.
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2 := newClient(t, openBroker(t, st))
	if got, want := drain(c2, "pq"), []string{"high", "clamped", "low", "none"}; !slices.Equal(got, want) {
		t.Errorf("priority queue: %v, want %v", got, want)
	}
}

// queueExists looks a queue up in vhost "/" without using it.
func queueExists(b *Broker, name string) bool {
	vh := b.vhosts["/"]
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	return vh.queues[name] != nil
}

func TestPassiveDeclareRenewsLease(t *testing.T) {
	b, clock := openClocked(t)
	c := newClient(t, b)
	c.declareQueue("q", false, message.Table{"x-expires": int32(1000)})
	for range 3 {
		clock.advance(700 * time.Millisecond)
		b.housekeep()
		if _, err := c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true}); err != nil {
			t.Fatalf("queue expired although passively declared 700ms before: %v", err)
		}
	}
	clock.advance(1100 * time.Millisecond)
	b.housekeep()
	if queueExists(b, "q") {
		t.Fatal("queue still there 1100ms after its last use")
	}
}
