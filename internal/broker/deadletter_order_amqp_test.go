package broker_test

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/sluicetest"
	"github.com/sluicemq/sluice/internal/store"
)

// slowApplyStore makes every batch take applyDelay to apply, synced or not,
// so a dead letter's move (one batch) is still in flight when the client's
// next request arrives.
type slowApplyStore struct {
	store.Store
	applyDelay time.Duration
}

func (s slowApplyStore) Apply(b *store.Batch, sync bool) error {
	time.Sleep(s.applyDelay)
	return s.Store.Apply(b, sync)
}

func (s slowApplyStore) ApplyAsync(b *store.Batch) (func() error, error) {
	time.Sleep(s.applyDelay)
	return s.Store.ApplyAsync(b)
}

// A basic.get or a passive queue.declare that follows a reject (or a
// requeue past x-delivery-limit) on the same connection sees the dead
// letter in its queue: the connection waits for the dead letters its
// settles started, as it waits for its publishes. amqp091-go's own
// TestDeclareArgsRejectToDeadLetterQueue relies on the dead letter showing
// up within ten gets; with every store batch taking 30 ms the first get
// after the reject came back empty before this wait.
func TestGetAfterRejectSeesTheDeadLetter(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithStoreWrapper(func(st store.Store) store.Store {
		return slowApplyStore{st, 30 * time.Millisecond}
	}))
	ch := sluicetest.Channel(t, b.Dial(t))
	if _, err := ch.QueueDeclare("dlq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		queue string
		args  amqp091.Table
		nack  func(d amqp091.Delivery) error
	}{
		{"rejects", amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"},
			func(d amqp091.Delivery) error { return d.Reject(false) }},
		{"limited", amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq", "x-delivery-limit": 0},
			func(d amqp091.Delivery) error { return d.Nack(false, true) }},
	} {
		if _, err := ch.QueueDeclare(c.queue, false, false, false, false, c.args); err != nil {
			t.Fatal(err)
		}
		ds, err := ch.Consume(c.queue, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			dlPublish(t, ch, "", c.queue, amqp091.Publishing{Body: []byte(c.queue)})
			var d amqp091.Delivery
			select {
			case d = <-ds:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no delivery", c.queue)
			}
			if err := c.nack(d); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				q, err := ch.QueueDeclarePassive("dlq", false, false, false, false, nil)
				if err != nil {
					t.Fatal(err)
				}
				if q.Messages != 1 {
					t.Fatalf("%s: passive declare right after the settle counts %d dead letters, want 1", c.queue, q.Messages)
				}
			}
			got, ok, err := ch.Get("dlq", true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Fatalf("%s, round %d: the get right after the settle found the dead-letter queue empty", c.queue, i)
			}
			if string(got.Body) != c.queue {
				t.Fatalf("%s: got %q from the dead-letter queue", c.queue, got.Body)
			}
			if _, ok := got.Headers["x-death"].([]any); !ok {
				t.Fatalf("%s: x-death is %T, want an array", c.queue, got.Headers["x-death"])
			}
		}
	}
}
