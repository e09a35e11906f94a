//go:build integration

package crash

import (
	"context"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

// TestRedriveTaskResumesAfterKill: a redrive task survives kill -9 of the
// broker (issue 12; issue 10 finding 12). Its audit entry is there before
// it reports a move; after the restart the task resumes where it stopped
// with its progress intact: it finishes with every message moved exactly
// once and none counted as failed (a task restarted from scratch would
// fail on the messages already gone; one that lost its place would leave
// some behind).
func TestRedriveTaskResumesAfterKill(t *testing.T) {
	const total = 3000
	data := t.TempDir()
	b := start(t, data)
	conn, ch := dial(t, b.url())
	declare(t, ch, "orders")
	declare(t, ch, "dlq")
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, total))
	died := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 1; i <= total; i++ {
		err := ch.PublishWithContext(context.Background(), "", "dlq", false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: []byte("msg-" + strconv.Itoa(i)),
			Headers: amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "reason": "rejected", "queue": "orders",
				"exchange": "", "routing-keys": []any{"orders"}, "time": died}}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for range total {
		if c := <-confirms; !c.Ack {
			t.Fatalf("publish %d nacked", c.DeliveryTag)
		}
	}
	conn.Close()

	ctx := context.Background()
	c := api.NewClient("http://"+b.http, "guest", "guest")
	task, err := c.Redrive(ctx, "/", "dlq", api.Redrive{Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := c.Audit(ctx)
	if err != nil || len(audit) != 1 || audit[0].Action != "redrive" {
		t.Fatalf("audit right after the task started: %+v %v", audit, err)
	}
	var before api.Task
	waitFor(t, "a third moved", func() bool {
		before, err = c.Task(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		return before.Moved >= total/3
	})
	b.kill()

	b = start(t, data)
	c = api.NewClient("http://"+b.http, "guest", "guest")
	var after api.Task
	waitFor(t, "the resumed task to finish", func() bool {
		after, err = c.Task(ctx, task.ID)
		return err == nil && after.State != "running"
	})
	if after.State != "done" || after.Total != total || after.Done != total || after.Moved != total || after.Failed != 0 {
		t.Fatalf("resumed task %+v (had moved %d before the kill)", after, before.Moved)
	}
	audit, err = c.Audit(ctx)
	if err != nil || len(audit) != 1 || audit[0].Count != total {
		t.Fatalf("audit after the resumed task: %+v %v", audit, err)
	}
	if src := drain(t, b.url(), "dlq"); len(src) != 0 {
		t.Errorf("%d messages left in dlq", len(src))
	}
	dst := drain(t, b.url(), "orders")
	for n := 1; n <= total; n++ {
		if dst[n] != 1 {
			t.Errorf("msg-%d is in orders %d times, want once", n, dst[n])
		}
	}
	t.Logf("killed with %d of %d moved; resumed and finished", before.Moved, total)
}
