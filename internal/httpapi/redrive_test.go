package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

// TestDeadLetterScenario is the workflow of the issue end to end: dead
// letters in a DLQ, browse (nothing changes), edit one, redrive a filtered
// subset back to the queue each died in, consume them there with
// amqp091-go.
//
// The broker does not dead-letter yet, so the dead letters are published
// into the DLQ with the x-death header the broker would write.
func TestDeadLetterScenario(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	ch := fillDLQ(t, e)

	page, err := e.c.Browse(ctx, "/", "dlq", 0, 100, api.Filter{Reason: "rejected"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 4 {
		t.Fatalf("rejected dead letters: %d, want 4", len(page.Messages))
	}
	fixed := `{"order":1,"fixed":true}`
	if _, err := e.c.EditMessage(ctx, "/", "dlq", page.Messages[1].ID, api.MessageEdit{Payload: &fixed}); err != nil {
		t.Fatal(err)
	}

	task, err := e.c.Redrive(ctx, "/", "dlq", api.Redrive{Filter: &api.Filter{Source: "orders", Header: "tenant=acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if task.Total != 2 || task.Kind != "redrive" {
		t.Fatalf("task %+v", task)
	}
	task = waitTask(t, e.c, task.ID)
	if task.State != "done" || task.Moved != 2 || task.Failed != 0 || task.Done != 2 {
		t.Fatalf("finished task %+v", task)
	}

	dlq, _ := e.c.Queue(ctx, "/", "dlq")
	orders, _ := e.c.Queue(ctx, "/", "orders")
	if dlq.Messages != 4 || orders.Messages != 2 {
		t.Fatalf("after redrive: dlq %d orders %d, want 4 and 2", dlq.Messages, orders.Messages)
	}
	deliveries, err := ch.Consume("orders", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`{"order":0}`, fixed} {
		select {
		case d := <-deliveries:
			if string(d.Body) != want || d.Redelivered {
				t.Fatalf("delivery %d: %s (redelivered %v), want %s", i, d.Body, d.Redelivered, want)
			}
			if n, _ := d.Headers["x-redrive-count"].(int64); n != 1 {
				t.Fatalf("x-redrive-count %#v", d.Headers["x-redrive-count"])
			}
			xd, ok := d.Headers["x-death"].([]any)
			if !ok || len(xd) != 1 || xd[0].(amqp.Table)["queue"] != "orders" {
				t.Fatalf("x-death not kept: %#v", d.Headers["x-death"])
			}
			if d.RoutingKey != "orders" {
				t.Fatalf("routing key %q, want the original orders", d.RoutingKey)
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %d did not come", i)
		}
	}
	es, _ := e.c.Audit(ctx)
	if len(es) != 2 || es[1].Action != "redrive" || es[1].Count != 2 || len(es[1].IDs) != 2 {
		t.Fatalf("audit %+v", es)
	}
}

func TestRedrive(t *testing.T) {
	ctx := context.Background()
	ids := func(e *testEnv) []uint64 {
		p, err := e.c.Browse(ctx, "/", "dlq", 0, 100, api.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, m := range p.Messages {
			out = append(out, m.ID)
		}
		return out
	}
	t.Run("all back to their queues", func(t *testing.T) {
		e := start(t)
		fillDLQ(t, e)
		task, err := e.c.Redrive(ctx, "/", "dlq", api.Redrive{})
		if err != nil {
			t.Fatal(err)
		}
		task = waitTask(t, e.c, task.ID)
		if task.Moved != 6 {
			t.Fatalf("task %+v", task)
		}
		for q, want := range map[string]int{"dlq": 0, "orders": 4, "payments": 2} {
			if got, _ := e.c.Queue(ctx, "/", q); got.Messages != want {
				t.Errorf("%s: %d messages, want %d", q, got.Messages, want)
			}
		}
	})
	t.Run("ids to a target queue, twice", func(t *testing.T) {
		e := start(t)
		fillDLQ(t, e)
		declare(t, e.c, "retry", nil)
		all := ids(e)
		task, err := e.c.Redrive(ctx, "/", "dlq", api.Redrive{IDs: all[4:], Target: "retry"})
		if err != nil {
			t.Fatal(err)
		}
		if task = waitTask(t, e.c, task.ID); task.Moved != 2 {
			t.Fatalf("task %+v", task)
		}
		// Back into the DLQ by exchange, then check the count grew.
		p, _ := e.c.Browse(ctx, "/", "dlq", 0, 100, api.Filter{})
		if len(p.Messages) != 4 {
			t.Fatalf("dlq holds %d", len(p.Messages))
		}
		_, ch := e.amqpChannel(t)
		d, ok, err := ch.Get("retry", false)
		if err != nil || !ok || d.Headers["x-redrive-count"] != int64(1) {
			t.Fatalf("retry get: %v %v %v", ok, err, d.Headers)
		}
		// A message unacked in retry cannot be redriven: its result says so.
		rp, _ := e.c.Browse(ctx, "/", "retry", 0, 10, api.Filter{})
		if rp.Messages[0].State != "unacked" {
			t.Fatalf("retry's first message is %s", rp.Messages[0].State)
		}
		failures := []struct {
			r    api.Redrive
			want string
		}{
			{api.Redrive{IDs: []uint64{rp.Messages[0].ID}, Target: "orders"}, "unacked"},
			{api.Redrive{IDs: []uint64{999}, Target: "orders"}, "no message 999"},
			{api.Redrive{IDs: []uint64{rp.Messages[1].ID}, TargetExchange: "amq.direct"}, "unroutable"},
		}
		for _, f := range failures {
			task, err = e.c.Redrive(ctx, "/", "retry", f.r)
			if err != nil {
				t.Fatal(err)
			}
			task = waitTask(t, e.c, task.ID)
			if task.Moved != 0 || task.Failed != 1 || !strings.Contains(task.Errors[0].Reason, f.want) {
				t.Fatalf("task %+v, want a failure mentioning %q", task, f.want)
			}
		}
		if q, _ := e.c.Queue(ctx, "/", "retry"); q.Messages != 2 {
			t.Fatalf("retry holds %d after failed redrives", q.Messages)
		}
	})
	t.Run("dry run moves nothing", func(t *testing.T) {
		e := start(t)
		fillDLQ(t, e)
		task, err := e.c.Redrive(ctx, "/", "dlq", api.Redrive{DryRun: true, Filter: &api.Filter{Reason: "expired"}})
		if err != nil {
			t.Fatal(err)
		}
		task = waitTask(t, e.c, task.ID)
		if task.Moved != 2 || len(task.Moves) != 2 || task.Moves[0].To != "queue 'payments'" {
			t.Fatalf("dry run %+v", task)
		}
		if q, _ := e.c.Queue(ctx, "/", "dlq"); q.Messages != 6 {
			t.Fatalf("dlq %d after dry run", q.Messages)
		}
		if es, _ := e.c.Audit(ctx); len(es) != 0 {
			t.Fatalf("a dry run is audited: %+v", es)
		}
	})
	t.Run("source queue gone", func(t *testing.T) {
		e := start(t)
		fillDLQ(t, e)
		if err := e.c.DeleteQueue(ctx, "/", "payments", false, false); err != nil {
			t.Fatal(err)
		}
		task, _ := e.c.Redrive(ctx, "/", "dlq", api.Redrive{})
		task = waitTask(t, e.c, task.ID)
		if task.Moved != 4 || task.Failed != 2 || !strings.Contains(task.Errors[0].Reason, "payments") {
			t.Fatalf("task %+v", task)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		e := start(t)
		fillDLQ(t, e)
		task, err := e.c.Redrive(ctx, "/", "dlq", api.Redrive{Rate: 1})
		if err != nil {
			t.Fatal(err)
		}
		task, err = e.c.CancelTask(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if task.State != "cancelled" || task.Moved >= 6 {
			t.Fatalf("cancelled task %+v", task)
		}
		_, err = e.c.CancelTask(ctx, task.ID)
		wantStatus(t, "cancel twice", err, 409)
		q, _ := e.c.Queue(ctx, "/", "dlq")
		if q.Messages+task.Moved != 6 {
			t.Fatalf("dlq %d + moved %d != 6", q.Messages, task.Moved)
		}
	})
	t.Run("errors", func(t *testing.T) {
		e := start(t)
		fillDLQ(t, e)
		tests := []struct {
			name, path, body string
			want             int
		}{
			{"missing queue", "/api/queues/%2F/nope/redrive", `{}`, 404},
			{"missing target", "/api/queues/%2F/dlq/redrive", `{"target":"nope"}`, 404},
			{"missing target exchange", "/api/queues/%2F/dlq/redrive", `{"target_exchange":"nope"}`, 404},
			{"bad filter", "/api/queues/%2F/dlq/redrive", `{"filter":{"since":"soon"}}`, 400},
			{"malformed", "/api/queues/%2F/dlq/redrive", `{"ids":[1,}`, 400},
			{"ids not numbers", "/api/queues/%2F/dlq/redrive", `{"ids":["a"]}`, 400},
			{"negative rate", "/api/queues/%2F/dlq/redrive", `{"rate":-1}`, 400},
			{"both targets", "/api/queues/%2F/dlq/redrive", `{"target":"orders","target_exchange":"amq.direct"}`, 400},
			{"ids and filter", "/api/queues/%2F/dlq/redrive", `{"ids":[1],"filter":{}}`, 400},
			{"unknown task", "/api/tasks/abc", ``, 404},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				method := "POST"
				if strings.HasPrefix(tc.path, "/api/tasks") {
					method = "GET"
				}
				status, body := e.raw(t, method, tc.path, tc.body)
				if status != tc.want {
					t.Fatalf("status %d (%s), want %d", status, body, tc.want)
				}
			})
		}
		if q, _ := e.c.Queue(ctx, "/", "dlq"); q.Messages != 6 {
			t.Fatalf("a refused redrive moved messages: dlq %d", q.Messages)
		}
	})
}

// TestRejectBrowseRedriveConsume: messages rejected through AMQP land in
// the dead letter queue by the broker's own dead lettering; they are
// browsed, one is edited, the rejected ones go back and are consumed.
func TestRejectBrowseRedriveConsume(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "dlq", nil)
	declare(t, e.c, "work", map[string]any{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
	_, ch := e.amqpChannel(t)
	publishConfirmed(t, ch, "", "work", amqp.Publishing{Body: []byte("bad 1"), DeliveryMode: amqp.Persistent},
		amqp.Publishing{Body: []byte("bad 2"), DeliveryMode: amqp.Persistent})
	for range 2 {
		d, ok, err := ch.Get("work", false)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	var page api.MessagePage
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		page, err = e.c.Browse(ctx, "/", "dlq", 0, 10, api.Filter{Reason: "rejected", Source: "work"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(page.Messages) != 2 || page.Messages[0].Death == nil || page.Messages[0].Death.Queue != "work" {
		t.Fatalf("dead letters: %+v", page)
	}
	good := "good 2"
	if _, err := e.c.EditMessage(ctx, "/", "dlq", page.Messages[1].ID, api.MessageEdit{Payload: &good}); err != nil {
		t.Fatal(err)
	}
	task, err := e.c.Redrive(ctx, "/", "dlq", api.Redrive{Filter: &api.Filter{Reason: "rejected"}})
	if err != nil {
		t.Fatal(err)
	}
	if task = waitTask(t, e.c, task.ID); task.Moved != 2 {
		t.Fatalf("task %+v", task)
	}
	for _, want := range []string{"bad 1", good} {
		d, ok, err := ch.Get("work", true)
		if err != nil || !ok || string(d.Body) != want || d.Headers["x-redrive-count"] != int64(1) {
			t.Fatalf("get from work: %v %v %q %v, want %q", ok, err, d.Body, d.Headers, want)
		}
		if xd, _ := d.Headers["x-death"].([]any); len(xd) != 1 {
			t.Fatalf("x-death history lost: %v", d.Headers)
		}
	}
}
