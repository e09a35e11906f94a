package broker_test

import (
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/sluicetest"
	"github.com/sluicemq/sluice/internal/store/pebblestore"
)

// diskFull fails writes and syncs of the WAL with ENOSPC while armed.
type diskFull struct{ armed atomic.Bool }

func (f *diskFull) MaybeError(op errorfs.Op) error {
	if !f.armed.Load() || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return &os.PathError{Op: "inject", Path: op.Path, Err: syscall.ENOSPC}
	}
	return nil
}

func (f *diskFull) String() string { return "diskFull" }

// Issue 10, finding 3: the disk fills under a running broker. Every
// publish in flight and after gets a nack (not silence, not a crash), the
// broker raises its store alarm, and consumers still drain what the queue
// held.
func TestDiskFullNacksPublishesAndKeepsReads(t *testing.T) {
	fault := &diskFull{}
	b := sluicetest.Start(t, sluicetest.WithDataDir(t.TempDir()), sluicetest.WithStoreOptions(func(o *pebblestore.Options) {
		o.FS = errorfs.Wrap(vfs.Default, fault)
		o.MemTableSize = 1 << 20 // WAL rotations come soon
	}))
	conn := b.Dial(t)
	ch := sluicetest.Channel(t, conn)
	if _, err := ch.QueueDeclare("q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1024))
	body := make([]byte, 4<<10)
	publish := func(n int) (acks, nacks int) {
		t.Helper()
		for range n {
			if err := ch.Publish("", "q", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		timeout := time.After(10 * time.Second)
		for range n {
			select {
			case c := <-confirms:
				if c.Ack {
					acks++
				} else {
					nacks++
				}
			case <-timeout:
				t.Fatalf("%d of %d publishes got neither ack nor nack within 10s", n-acks-nacks, n)
			}
		}
		return acks, nacks
	}
	const before = 50
	if acks, _ := publish(before); acks != before {
		t.Fatalf("%d of %d acked before the disk filled", acks, before)
	}
	// The disk fills while publishes are in flight: each gets its answer,
	// and none after the first nack is acked (nothing is confirmed once
	// the store failed). The publisher fills it after its 100th publish:
	// the 1,900 sent after that cannot be written before it (armed on the
	// 100th confirm instead, the broker had at times stored all 2,000).
	go func() {
		for i := range 2000 {
			if i == 100 {
				fault.armed.Store(true)
			}
			if ch.Publish("", "q", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}) != nil {
				return
			}
		}
	}()
	firstNack, acked := uint64(0), 0
	timeout := time.After(10 * time.Second)
	for got := 0; got < 2000; got++ {
		select {
		case c := <-confirms:
			switch {
			case !c.Ack && firstNack == 0:
				firstNack = c.DeliveryTag
			case c.Ack && firstNack != 0 && c.DeliveryTag > firstNack:
				t.Fatalf("publish %d acked after publish %d was nacked", c.DeliveryTag, firstNack)
			}
			if c.Ack {
				acked++
			}
		case <-timeout:
			t.Fatalf("%d of 2000 in-flight publishes got neither ack nor nack within 10s", 2000-got)
		}
	}
	if firstNack == 0 {
		t.Fatal("no publish was nacked after the disk filled")
	}
	if acks, nacks := publish(512); acks != 0 || nacks != 512 {
		t.Fatalf("after the fence: %d acks, %d nacks; want every publish nacked", acks, nacks)
	}
	if err := b.Broker.Fenced(); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Fenced() = %v, want the store alarm naming ENOSPC", err)
	}
	// Reads go on: a consumer drains the messages confirmed before.
	got := 0
	for {
		_, ok, err := ch.Get("q", true)
		if err != nil {
			t.Fatalf("get after the fence: %v", err)
		}
		if !ok {
			break
		}
		got++
	}
	if want := before + acked; got != want {
		t.Fatalf("drained %d messages after the fence, want the %d confirmed", got, want)
	}
}
