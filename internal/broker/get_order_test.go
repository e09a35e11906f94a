package broker

import "testing"

// A get hands the channel's consumers what the connection published to
// them before it answers, even while the queue's dispatcher wake-up has not
// run: here it is held back for the whole test.
func TestGetDeliversToTheChannelsConsumersFirst(t *testing.T) {
	b := openBroker(t, nil)
	release := make(chan struct{})
	b.env.dispatchers.before = func() { <-release }
	t.Cleanup(func() { close(release) }) // before the broker's Close waits for them
	c := newClient(t, b)
	c.declareQueue("work", false, nil)
	c.declareQueue("other", false, nil)
	c.consume("work", false)
	c.publish("", "work", "m", false)
	if d := c.get("other", true); d != nil {
		t.Fatalf("get from an empty queue returned %q", d.Body)
	}
	if ds := c.out.deliveries(); len(ds) != 1 || string(ds[0].Body) != "m" {
		t.Fatalf("after the get the consumer holds %v, want the message published before it", bodies(ds))
	}
}
