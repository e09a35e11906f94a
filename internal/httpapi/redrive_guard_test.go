package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

// putOrderSchema registers schema "order": an object with an integer
// order and a number amount.
func putOrderSchema(t *testing.T, e *testEnv) {
	t.Helper()
	err := e.c.Do(context.Background(), http.MethodPut, "/api/schemas/%2F/order", nil, map[string]any{"schema": map[string]any{
		"type": "object", "required": []any{"order", "amount"},
		"properties": map[string]any{"order": map[string]any{"type": "integer"}, "amount": map[string]any{"type": "number"}},
	}}, nil)
	if err != nil {
		t.Fatalf("put schema: %v", err)
	}
}

// deadLetters publishes persistent dead letters of queue from into dlq,
// one per body, and returns their ids.
func deadLetters(t *testing.T, e *testEnv, ch *amqp.Channel, from string, bodies ...string) []uint64 {
	t.Helper()
	var msgs []amqp.Publishing
	for _, b := range bodies {
		msgs = append(msgs, amqp.Publishing{Headers: death(from, "rejected", 1, time.Now()), Body: []byte(b),
			ContentType: "application/json", DeliveryMode: amqp.Persistent})
	}
	before, _ := e.c.Browse(context.Background(), "/", "dlq", 0, 1000, api.Filter{})
	publishConfirmed(t, ch, "", "dlq", msgs...)
	page, err := e.c.Browse(context.Background(), "/", "dlq", 0, 1000, api.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, m := range page.Messages[len(before.Messages):] {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestRedriveInvalidMessageRefused: a redrive checks each message against
// the target's x-schema, as a publish there would be; the one it refuses
// is answered 422 with the schema's errors and stays in the dead letter
// queue, ready; the valid one moves. An edit is checked against its own
// queue's x-schema the same way.
func TestRedriveInvalidMessageRefused(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	putOrderSchema(t, e)
	declare(t, e.c, "orders", map[string]any{"x-schema": "order"})
	declare(t, e.c, "dlq", nil)
	_, ch := e.amqpChannel(t)
	ids := deadLetters(t, e, ch, "orders", `{"order":1,"amount":"lots"}`, `{"order":2,"amount":9.5}`)

	task, err := e.c.Redrive(ctx, "/", "dlq", api.Redrive{})
	if err != nil {
		t.Fatal(err)
	}
	task = waitTask(t, e.c, task.ID)
	if task.State != "done" || task.Moved != 1 || task.Failed != 1 || len(task.Errors) != 1 {
		t.Fatalf("task %+v", task)
	}
	te := task.Errors[0]
	if te.ID != ids[0] || te.Status != 422 || len(te.Errors) == 0 || te.Errors[0].Pointer != "/amount" ||
		!strings.Contains(te.Reason, "schema 'order'") {
		t.Fatalf("the invalid message's result %+v", te)
	}
	m, err := e.c.Message(ctx, "/", "dlq", ids[0])
	if err != nil || m.State != "ready" || m.Payload != `{"order":1,"amount":"lots"}` {
		t.Fatalf("the refused message in dlq: %+v %v", m, err)
	}
	if q, _ := e.c.Queue(ctx, "/", "orders"); q.Messages != 1 {
		t.Fatalf("orders holds %d, want the valid message only", q.Messages)
	}

	// An explicit target is checked the same way.
	task, _ = e.c.Redrive(ctx, "/", "dlq", api.Redrive{IDs: ids[:1], Target: "orders"})
	if task = waitTask(t, e.c, task.ID); task.Failed != 1 || task.Errors[0].Status != 422 {
		t.Fatalf("to an explicit target: %+v", task)
	}

	// An edit the queue's schema refuses is 422 and changes nothing.
	page, _ := e.c.Browse(ctx, "/", "orders", 0, 10, api.Filter{})
	bad := `{"order":"two"}`
	_, err = e.c.EditMessage(ctx, "/", "orders", page.Messages[0].ID, api.MessageEdit{Payload: &bad})
	wantStatus(t, "edit against the schema", err, 422)
	if got, _ := e.c.Message(ctx, "/", "orders", page.Messages[0].ID); got.Payload != `{"order":2,"amount":9.5}` {
		t.Fatalf("a refused edit changed the message: %s", got.Payload)
	}
	// Fixed in the dead letter queue, it goes.
	fixed := `{"order":1,"amount":3}`
	if _, err := e.c.EditMessage(ctx, "/", "dlq", ids[0], api.MessageEdit{Payload: &fixed}); err != nil {
		t.Fatal(err)
	}
	task, _ = e.c.Redrive(ctx, "/", "dlq", api.Redrive{IDs: ids[:1]})
	if task = waitTask(t, e.c, task.ID); task.Moved != 1 {
		t.Fatalf("the fixed message: %+v", task)
	}
}

// TestRedriveChecksWritePermissionOfEachDestination: issue 10 finding 5 —
// a user who may read and write a dead letter queue cannot redrive a
// message into a queue of the vhost it may not write, whatever its x-death
// names; a queue it may write gets its message.
func TestRedriveChecksWritePermissionOfEachDestination(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for _, q := range []string{"dlq", "home", "secret"} {
		declare(t, e.c, q, nil)
	}
	if err := e.c.PutUser(ctx, "ops", api.UserPut{Password: "secret", Tags: "management"}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.SetPermission(ctx, "/", "ops", api.Permission{Configure: "", Write: "^(dlq|home)$", Read: "^dlq$"}); err != nil {
		t.Fatal(err)
	}
	ops := e.as("ops", "secret")
	_, ch := e.amqpChannel(t)
	intoSecret := deadLetters(t, e, ch, "secret", `{"n":1}`)
	intoHome := deadLetters(t, e, ch, "home", `{"n":2}`)

	task, err := ops.Redrive(ctx, "/", "dlq", api.Redrive{})
	if err != nil {
		t.Fatal(err)
	}
	task = waitTask(t, e.c, task.ID)
	if task.Moved != 1 || task.Failed != 1 || task.Errors[0].ID != intoSecret[0] || task.Errors[0].Status != 403 ||
		!strings.Contains(task.Errors[0].Reason, "secret") {
		t.Fatalf("task %+v", task)
	}
	for q, want := range map[string]int{"secret": 0, "home": 1, "dlq": 1} {
		if got, _ := e.c.Queue(ctx, "/", q); got.Messages != want {
			t.Errorf("%s holds %d, want %d", q, got.Messages, want)
		}
	}
	_ = intoHome
	_, err = ops.Redrive(ctx, "/", "dlq", api.Redrive{Target: "secret"})
	wantStatus(t, "an explicit target without write permission", err, 403)
	// An administrator may.
	task, _ = e.c.Redrive(ctx, "/", "dlq", api.Redrive{})
	if task = waitTask(t, e.c, task.ID); task.Moved != 1 {
		t.Fatalf("administrator's redrive %+v", task)
	}
}

// TestEditBrokerHeadersRefused: the headers the broker owns (x-death,
// x-first-death-*, x-last-death-*, x-delivery-count, x-redrive-count)
// cannot be added, removed or changed by an edit (400, naming the header),
// or x-death could aim a redrive anywhere; other headers can.
func TestEditBrokerHeadersRefused(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "dlq", nil)
	_, ch := e.amqpChannel(t)
	h := death("orders", "rejected", 1, time.Now())
	h["x-first-death-queue"] = "orders"
	publishConfirmed(t, ch, "", "dlq", amqp.Publishing{Headers: h, Body: []byte("x"), DeliveryMode: amqp.Persistent})
	page, _ := e.c.Browse(ctx, "/", "dlq", 0, 10, api.Filter{})
	m := page.Messages[0]
	edits := map[string]func(h map[string]any){
		"x-death":             func(h map[string]any) { h["x-death"].([]any)[0].(map[string]any)["queue"] = "secret" },
		"x-death removed":     func(h map[string]any) { delete(h, "x-death") },
		"x-first-death-queue": func(h map[string]any) { h["x-first-death-queue"] = "secret" },
		"x-last-death-reason": func(h map[string]any) { h["x-last-death-reason"] = "expired" },
		"x-redrive-count":     func(h map[string]any) { h["x-redrive-count"] = 7 },
		"x-delivery-count":    func(h map[string]any) { h["x-delivery-count"] = 1 },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			got, _ := e.c.Message(ctx, "/", "dlq", m.ID)
			props := got.Properties
			edit(props.Headers)
			_, err := e.c.EditMessage(ctx, "/", "dlq", m.ID, api.MessageEdit{Properties: &props})
			wantStatus(t, name, err, 400)
			header, _, _ := strings.Cut(name, " ")
			if !strings.Contains(err.Error(), "'"+header+"'") {
				t.Fatalf("the reason does not name the header: %v", err)
			}
			after, _ := e.c.Message(ctx, "/", "dlq", m.ID)
			if after.Death == nil || after.Death.Queue != "orders" || len(after.Properties.Headers) != len(m.Properties.Headers) {
				t.Fatalf("a refused edit changed the message: %+v", after.Properties.Headers)
			}
		})
	}
	props := m.Properties
	props.Headers["tenant"] = "acme"
	if _, err := e.c.EditMessage(ctx, "/", "dlq", m.ID, api.MessageEdit{Properties: &props}); err != nil {
		t.Fatalf("an edit that keeps the broker's headers: %v", err)
	}
}
