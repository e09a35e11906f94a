package broker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/sluicetest"
	"github.com/sluicemq/sluice/internal/store"
)

// slowSyncStore makes every fsync take syncDelay, as a slow disk would.
type slowSyncStore struct {
	store.Store
	syncDelay time.Duration
}

func (s slowSyncStore) Apply(b *store.Batch, sync bool) error {
	if sync {
		time.Sleep(s.syncDelay)
	}
	return s.Store.Apply(b, sync)
}

func (s slowSyncStore) ApplyAsync(b *store.Batch) (func() error, error) {
	wait, err := s.Store.ApplyAsync(b)
	if err != nil {
		return nil, err
	}
	return func() error { time.Sleep(s.syncDelay); return wait() }, nil
}

// A durable queue declare waits for its fsync with no vhost lock held, so
// publishing in the same vhost does not stall behind 100 of them: the
// publish→confirm p99 during the declares stays within 50 ms of the p99
// before them, on a disk whose every fsync takes 30 ms. (With the vhost
// lock held across a declare's fsyncs, every publish that arrives during
// one waits for them.)
func TestDurableDeclaresDoNotStallPublishing(t *testing.T) {
	const syncDelay = 30 * time.Millisecond
	b := sluicetest.Start(t, sluicetest.WithDataDir(t.TempDir()),
		sluicetest.WithStoreWrapper(func(st store.Store) store.Store { return slowSyncStore{st, syncDelay} }))
	pubCh := sluicetest.Channel(t, b.Dial(t))
	if _, err := pubCh.QueueDeclare("target", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := pubCh.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pubCh.NotifyPublish(make(chan amqp091.Confirmation, 1))
	// publish sends transient messages (no fsync of their own) one at a
	// time for d, and returns each one's publish→confirm latency.
	publish := func(d time.Duration, stop <-chan struct{}) []time.Duration {
		var lat []time.Duration
		for end := time.Now().Add(d); time.Now().Before(end); {
			select {
			case <-stop:
				return lat
			default:
			}
			start := time.Now()
			if err := pubCh.PublishWithContext(context.Background(), "", "target", false, false,
				amqp091.Publishing{Body: []byte("m")}); err != nil {
				t.Fatal(err)
			}
			if c := <-confirms; !c.Ack {
				t.Fatal("publish nacked")
			}
			lat = append(lat, time.Since(start))
		}
		return lat
	}
	base := p99(publish(500*time.Millisecond, nil))

	declCh := sluicetest.Channel(t, b.Dial(t))
	stop := make(chan struct{})
	var during []time.Duration
	var wg sync.WaitGroup
	wg.Go(func() { during = publish(time.Minute, stop) })
	declStart := time.Now()
	for i := range 100 {
		if _, err := declCh.QueueDeclare(fmt.Sprintf("declared-%d", i), true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	declTook := time.Since(declStart)
	close(stop)
	wg.Wait()
	got := p99(during)
	t.Logf("publish→confirm p99 %v before, %v during 100 durable declares (%d publishes; the declares took %v)",
		base, got, len(during), declTook)
	if len(during) < 100 {
		t.Fatalf("only %d publishes confirmed during 100 declares", len(during))
	}
	if got > base+50*time.Millisecond {
		t.Fatalf("publish p99 %v during durable declares, %v before: publishing stalled", got, base)
	}
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}
