package broker

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestConcurrentChurn runs publishers, consumers that ack, nack and close,
// queue deletes and redeclares at once, to catch deadlocks and races
// (run with -race). Every persistent message published to the durable
// queue is accounted for at the end.
func TestConcurrentChurn(t *testing.T) {
	b := openBroker(t, nil)
	setup := newClient(t, b)
	setup.declareQueue("work", true, nil)
	setup.declareExchange("fan", kindFanout, nil)
	setup.bind("fan", "work", "", nil)

	const publishers, perPublisher = 4, 200
	var wg sync.WaitGroup
	for p := range publishers {
		c := newClient(t, b)
		wg.Go(func() {
			for i := range perPublisher {
				c.publish("fan", "", fmt.Sprintf("%d-%d", p, i), true)
			}
		})
	}
	stop := make(chan struct{})
	var consumers sync.WaitGroup
	for k := range 3 {
		consumers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(k), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := newClient(t, b)
				if err := c.ch.Qos(0, uint16(1+rng.IntN(20)), rng.IntN(2) == 0); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.ch.Consume(ConsumeRequest{Queue: "work"}); err != nil {
					t.Error(err)
					return
				}
				deadline := time.Now().Add(20 * time.Millisecond)
				for time.Now().Before(deadline) {
					ds := c.out.deliveries()
					if len(ds) == 0 {
						time.Sleep(time.Millisecond)
						continue
					}
					d := ds[len(ds)-1]
					var err error
					switch rng.IntN(4) {
					case 0:
						err = c.ch.Nack(d.DeliveryTag, true, true)
					default:
						err = c.ch.Ack(d.DeliveryTag, true)
					}
					if err != nil && CodeOf(err) != PreconditionFailed {
						t.Error(err)
					}
				}
				c.conn.Close() // unacked ones return
			}
		})
	}
	// Churn on a side queue meanwhile.
	wg.Go(func() {
		c := newClient(t, b)
		for i := range 50 {
			name := fmt.Sprint("side", i%3)
			c.declareQueue(name, false, nil)
			c.bind("fan", name, "", nil)
			if _, err := c.ch.DeleteQueue(name, false, false); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	close(stop)
	consumers.Wait()

	// Drain what is left; with the acked ones it adds up to all published.
	q := b.vhosts["/"].queues["work"]
	q.mu.Lock()
	ready, unacked := q.ready.len(), len(q.unacked)
	q.mu.Unlock()
	if unacked != 0 {
		t.Fatalf("%d unacked after every consumer connection closed", unacked)
	}
	n := countMessages(t, b.env.st, q.id)
	if n != ready {
		t.Fatalf("store holds %d records, index %d ready", n, ready)
	}
	t.Logf("%d left ready of %d published", ready, publishers*perPublisher)
}
