package broker

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

// fill declares queue q and publishes n messages "0".."n-1" to it.
func (c *testClient) fill(q string, n int) {
	c.t.Helper()
	c.declareQueue(q, false, nil)
	for i := range n {
		c.publish("", q, fmt.Sprint(i), false)
	}
}

// settled waits for the outlet to stop growing at n deliveries: it polls
// for n, then checks no more arrived after the broker had its chance.
func (o *fakeOutlet) exactly(t *testing.T, n int) []*Delivery {
	t.Helper()
	ds := o.waitDeliveries(t, n)
	if len(ds) != n {
		t.Fatalf("got %d deliveries, want exactly %d", len(ds), n)
	}
	return ds
}

func TestPrefetchPerConsumer(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	if err := c.ch.Qos(0, 2, false); err != nil {
		t.Fatal(err)
	}
	c.fill("q", 5)
	c.consume("q", false)
	ds := c.out.exactly(t, 2)
	// Dispatch is synchronous with the consume: no more than 2 arrive.
	if got := bodies(c.out.deliveries()); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("got %v", got)
	}
	if err := c.ch.Ack(ds[0].DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	ds = c.out.exactly(t, 3)
	if string(ds[2].Body) != "2" {
		t.Fatalf("after ack got %q", ds[2].Body)
	}
	// A later Qos does not change the existing consumer's limit.
	if err := c.ch.Qos(0, 10, false); err != nil {
		t.Fatal(err)
	}
	c.publish("", "q", "x", false)
	c.out.exactly(t, 3)
}

func TestPrefetchGlobalSharedByChannel(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	if err := c.ch.Qos(0, 3, true); err != nil {
		t.Fatal(err)
	}
	c.fill("a", 5)
	c.fill("b", 5)
	c.consume("a", false)
	c.consume("b", false)
	ds := c.out.exactly(t, 3)
	if err := c.ch.Ack(ds[2].DeliveryTag, true); err != nil {
		t.Fatal(err)
	}
	c.out.exactly(t, 6)
}

func TestPrefetchSizeNotImplemented(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	wantCode(t, c.ch.Qos(1000, 0, false), NotImplemented, "prefetch_size!=0 (1000)")
}

func TestAckMultipleAndUnknownTag(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.fill("q", 5)
	c.consume("q", false)
	ds := c.out.exactly(t, 5)
	for i, d := range ds {
		if d.DeliveryTag != uint64(i+1) {
			t.Fatalf("delivery %d has tag %d", i, d.DeliveryTag)
		}
	}
	wantCode(t, c.ch.Ack(9, false), PreconditionFailed, "unknown delivery tag 9")
	wantCode(t, c.ch.Ack(9, true), PreconditionFailed, "unknown delivery tag 9")
	if err := c.ch.Ack(3, true); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.ch.Ack(2, false), PreconditionFailed, "unknown delivery tag 2")
	if err := c.ch.Ack(0, true); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.ch.Ack(5, false), PreconditionFailed, "unknown delivery tag 5")
	st, _ := c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
	if st.Messages != 0 {
		t.Fatalf("%d messages left", st.Messages)
	}
}

func TestNackRequeueKeepsOrderAndRedelivers(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.fill("q", 5)
	var got []*Delivery
	for range 5 {
		got = append(got, c.get("q", false))
	}
	// Return 3 and 1 (in that order), reject 4 without requeue.
	if err := c.ch.Nack(got[3].DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.Nack(got[1].DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.Nack(got[4].DeliveryTag, false, false); err != nil {
		t.Fatal(err)
	}
	c.publish("", "q", "5", false)
	var order []string
	for {
		d := c.get("q", true)
		if d == nil {
			break
		}
		order = append(order, fmt.Sprintf("%s:%v", d.Body, d.Redelivered))
	}
	if want := []string{"1:true", "3:true", "5:false"}; !slices.Equal(order, want) {
		t.Fatalf("order after requeue %v, want %v", order, want)
	}
}

func TestNackMultiple(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.fill("q", 4)
	c.consume("q", false)
	ds := c.out.exactly(t, 4)
	if err := c.ch.Nack(ds[2].DeliveryTag, true, false); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.Ack(ds[3].DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	st, _ := c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
	if st.Messages != 0 {
		t.Fatalf("%d messages left after nack multiple without requeue", st.Messages)
	}
}

func TestChannelCloseRequeues(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.fill("q", 3)
	c.consume("q", false)
	c.out.exactly(t, 3)
	c.ch.Close()
	other := newClient(t, b)
	other.consume("q", false)
	ds := other.out.exactly(t, 3)
	for i, d := range ds {
		if string(d.Body) != fmt.Sprint(i) || !d.Redelivered {
			t.Fatalf("delivery %d: %q redelivered=%v", i, d.Body, d.Redelivered)
		}
	}
}

func TestRecoverRequeues(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.fill("q", 2)
	c.consume("q", false)
	c.out.exactly(t, 2)
	wantCode(t, c.ch.Recover(false), NotImplemented, "requeue=false")
	if err := c.ch.Recover(true); err != nil {
		t.Fatal(err)
	}
	ds := c.out.exactly(t, 4)
	if !ds[2].Redelivered || !ds[3].Redelivered || ds[2].DeliveryTag != 3 {
		t.Fatalf("redeliveries %+v %+v", ds[2], ds[3])
	}
}

func TestConsumerTagRules(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareQueue("q", false, nil)
	tag := c.consume("q", false)
	if len(tag) < len("amq.ctag-")+1 || tag[:9] != "amq.ctag-" {
		t.Fatalf("generated tag %q", tag)
	}
	_, err := c.ch.Consume(ConsumeRequest{Queue: "q", Tag: tag})
	wantCode(t, err, NotAllowed, fmt.Sprintf("attempt to reuse consumer tag '%s'", tag))
	_, err = c.ch.Consume(ConsumeRequest{Queue: "missing"})
	wantCode(t, err, NotFound, "no queue 'missing' in vhost '/'")
	// Exclusive consume on a queue with consumers, and the reverse.
	_, err = c.ch.Consume(ConsumeRequest{Queue: "q", Exclusive: true})
	wantCode(t, err, ResourceLocked, "queue 'q' in vhost '/' in exclusive use")
	c.declareQueue("x", false, nil)
	if _, err := c.ch.Consume(ConsumeRequest{Queue: "x", Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	other := newClient(t, b)
	_, err = other.ch.Consume(ConsumeRequest{Queue: "x"})
	wantCode(t, err, ResourceLocked, "queue 'x' in vhost '/' in exclusive use")
	if err := c.ch.Cancel("no-such-tag"); err != nil {
		t.Fatalf("cancel unknown tag: %v", err)
	}
}

func TestConsumerPriority(t *testing.T) {
	b := openBroker(t, nil)
	low := newClient(t, b)
	high := newClient(t, b)
	low.declareQueue("q", false, nil)
	if err := high.ch.Qos(0, 2, false); err != nil {
		t.Fatal(err)
	}
	if _, err := low.ch.Consume(ConsumeRequest{Queue: "q"}); err != nil {
		t.Fatal(err)
	}
	if _, err := high.ch.Consume(ConsumeRequest{Queue: "q", Args: message.Table{"x-priority": int32(5)}}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		low.publish("", "q", fmt.Sprint(i), false)
	}
	if got := bodies(high.out.exactly(t, 2)); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("high priority consumer got %v", got)
	}
	if got := bodies(low.out.exactly(t, 2)); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("low priority consumer got %v", got)
	}
	_, err := high.ch.Consume(ConsumeRequest{Queue: "q", Args: message.Table{"x-priority": "high"}})
	wantCode(t, err, PreconditionFailed, "")
}

func TestFlowPausesDeliveries(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", false, nil)
	c.consume("q", false)
	c.ch.SetFlow(false)
	c.publish("", "q", "a", false)
	if n := len(c.out.deliveries()); n != 0 {
		t.Fatalf("%d deliveries while flow is off", n)
	}
	c.ch.SetFlow(true)
	c.out.exactly(t, 1)
}

func TestNoAckPacedByOutletWindow(t *testing.T) {
	cfg := testConfig()
	cfg.OutletWindow = 3
	b, err := Open(cfg, nil2store())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(t.Context()) })
	c := newClient(t, b)
	c.fill("q", 5)
	c.consume("q", true)
	c.out.exactly(t, 3)
	c.ch.Written(2)
	c.out.exactly(t, 5)
	st, _ := c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
	if st.Messages != 0 {
		t.Fatalf("%d messages left", st.Messages)
	}
}

func TestDeliveryCountHeader(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.fill("q", 1)
	d := c.get("q", false)
	if _, ok := d.Properties.Headers["x-delivery-count"]; ok {
		t.Fatalf("first delivery carries x-delivery-count")
	}
	for want := int64(1); want <= 2; want++ {
		if err := c.ch.Nack(d.DeliveryTag, false, true); err != nil {
			t.Fatal(err)
		}
		d = c.get("q", false)
		if got := d.Properties.Headers["x-delivery-count"]; got != want || d.Properties.Flags&message.FlagHeaders == 0 {
			t.Fatalf("x-delivery-count = %v (%T), want %d", got, got, want)
		}
	}
}

func TestChannelCloseAutoDeletesQueue(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	if _, err := c.ch.DeclareQueue(QueueDecl{Name: "ad", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	c.consume("ad", false)
	c.ch.Close()
	other := newClient(t, b)
	_, err := other.ch.DeclareQueue(QueueDecl{Name: "ad", Passive: true})
	wantCode(t, err, NotFound, "no queue 'ad' in vhost '/'")
}

func TestRejectIsNackOfOne(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.fill("q", 2)
	c.consume("q", false)
	ds := c.out.exactly(t, 2)
	wantCode(t, c.ch.Nack(7, false, false), PreconditionFailed, "unknown delivery tag 7")
	if err := c.ch.Nack(ds[1].DeliveryTag, false, false); err != nil {
		t.Fatal(err)
	}
	// Only the second is gone; the first is still unacked.
	if err := c.ch.Ack(ds[0].DeliveryTag, false); err != nil {
		t.Fatalf("first delivery no longer unacked: %v", err)
	}
}

func TestUnackedIndexStaysSmall(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", true, nil)
	c.publish("", "q", "held", true)
	held := c.get("q", false) // unacked for the whole test
	for i := range 500 {
		c.publish("", "q", fmt.Sprint(i), true)
		d := c.get("q", false)
		if err := c.ch.Ack(d.DeliveryTag, false); err != nil {
			t.Fatal(err)
		}
	}
	q := c.ch.vh.queues["q"]
	q.mu.Lock()
	n := q.unackedSeqs.len()
	q.mu.Unlock()
	if n > 100 {
		t.Fatalf("unacked seq heap holds %d entries for 1 unacked message", n)
	}
	if err := c.ch.Ack(held.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	if f, _ := c.b.env.st.Floor(q.id); f != 502 {
		t.Fatalf("floor %d after all acked, want 502", f)
	}
}
