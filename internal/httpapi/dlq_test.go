package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

// fillDLQ declares orders, payments and their dead letter queue dlq, and
// puts six dead letters into dlq: 0..3 rejected from orders (2 with header
// tenant=acme), 4..5 expired from payments.
func fillDLQ(t *testing.T, e *testEnv) *amqp.Channel {
	t.Helper()
	for _, q := range []string{"orders", "payments"} {
		declare(t, e.c, q, map[string]any{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
	}
	declare(t, e.c, "dlq", nil)
	_, ch := e.amqpChannel(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var msgs []amqp.Publishing
	for i := range 6 {
		queue, reason := "orders", "rejected"
		if i >= 4 {
			queue, reason = "payments", "expired"
		}
		h := death(queue, reason, 1, at.Add(time.Duration(i)*time.Hour))
		if i < 2 {
			h["tenant"] = "acme"
		}
		msgs = append(msgs, amqp.Publishing{Headers: h, Body: []byte(fmt.Sprintf(`{"order":%d}`, i)),
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: fmt.Sprint(i)})
	}
	publishConfirmed(t, ch, "", "dlq", msgs...)
	return ch
}

func TestBrowse(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	fillDLQ(t, e)
	page, err := e.c.Browse(ctx, "/", "dlq", 0, 4, api.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 4 || !page.More {
		t.Fatalf("first page: %d messages, more %v", len(page.Messages), page.More)
	}
	m := page.Messages[0]
	if m.State != "ready" || m.DeliveryCount != 0 || m.Payload != `{"order":0}` || m.PayloadEncoding != "string" ||
		m.Death == nil || m.Death.Queue != "orders" || m.Death.Reason != "rejected" || m.Death.Count != 1 ||
		m.Properties.ContentType != "application/json" || m.Properties.MessageID != "0" {
		t.Fatalf("first message %+v (death %+v)", m, m.Death)
	}
	xd, ok := m.Properties.Headers["x-death"].([]any)
	if !ok || len(xd) != 1 || xd[0].(map[string]any)["queue"] != "orders" {
		t.Fatalf("x-death not decoded: %#v", m.Properties.Headers["x-death"])
	}
	next, err := e.c.Browse(ctx, "/", "dlq", page.Next, 4, api.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Messages) != 2 || next.More || next.Messages[0].ID <= m.ID || next.Messages[0].Properties.MessageID != "4" {
		t.Fatalf("second page %+v", next)
	}

	filters := []struct {
		name string
		f    api.Filter
		want []string // message ids
	}{
		{"reason", api.Filter{Reason: "expired"}, []string{"4", "5"}},
		{"source", api.Filter{Source: "orders"}, []string{"0", "1", "2", "3"}},
		{"header value", api.Filter{Header: "tenant=acme"}, []string{"0", "1"}},
		{"header exists", api.Filter{Header: "tenant"}, []string{"0", "1"}},
		{"body", api.Filter{Body: `"order":3`}, []string{"3"}},
		{"time range", api.Filter{Since: "2026-01-02T04:00:00Z", Until: "2026-01-02T06:00:00Z"}, []string{"1", "2"}},
		{"combined", api.Filter{Source: "orders", Header: "tenant=acme", Body: "1"}, []string{"1"}},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			p, err := e.c.Browse(ctx, "/", "dlq", 0, 100, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range p.Messages {
				got = append(got, m.Properties.MessageID)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	bad := []struct{ name, query, mention string }{
		{"since", "since=yesterday", "since"},
		{"reason", "reason=tired", "reason"},
		{"after", "after=x", "after"},
		{"limit", "limit=0", "limit"},
		{"header", "header==v", "header"},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.name, func(t *testing.T) {
			status, body := e.raw(t, "GET", "/api/queues/%2F/dlq/messages?"+tc.query, "")
			if status != 400 || !strings.Contains(string(body), tc.mention) {
				t.Fatalf("status %d body %s, want 400 naming %s", status, body, tc.mention)
			}
		})
	}
	_, err = e.c.Browse(ctx, "/", "nope", 0, 10, api.Filter{})
	wantStatus(t, "browse missing queue", err, 404)
}

// TestBrowseChangesNothing: browsing leaves counts, order, delivery counts
// and the redelivered flag as they were.
func TestBrowseChangesNothing(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	ch := fillDLQ(t, e)
	before, _ := e.c.Queue(ctx, "/", "dlq")
	for range 3 {
		if _, err := e.c.Browse(ctx, "/", "dlq", 0, 100, api.Filter{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.Message(ctx, "/", "dlq", 1); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := e.c.Queue(ctx, "/", "dlq")
	if before.MessagesReady != 6 || after.MessagesReady != 6 || after.MessagesUnacknowledged != 0 {
		t.Fatalf("before %+v after %+v", before, after)
	}
	for i := range 6 {
		d, ok, err := ch.Get("dlq", true)
		if err != nil || !ok {
			t.Fatalf("get %d: %v %v", i, ok, err)
		}
		if d.Redelivered || d.MessageId != fmt.Sprint(i) || d.Headers["x-delivery-count"] != nil {
			t.Fatalf("delivery %d: redelivered %v id %s headers %v", i, d.Redelivered, d.MessageId, d.Headers)
		}
	}
}

func TestMessageReadEditDelete(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	ch := fillDLQ(t, e)
	page, _ := e.c.Browse(ctx, "/", "dlq", 0, 100, api.Filter{})
	ids := make([]uint64, len(page.Messages))
	for i, m := range page.Messages {
		ids[i] = m.ID
	}

	fixed := `{"order":2,"fixed":true}`
	key := "orders.fixed"
	m, err := e.c.EditMessage(ctx, "/", "dlq", ids[2], api.MessageEdit{Payload: &fixed, RoutingKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != ids[2] || m.Payload != fixed || m.RoutingKey != key || m.Death == nil || m.Death.Queue != "orders" {
		t.Fatalf("edited %+v", m)
	}
	// Edit headers: x-death keeps its types (its time stays a timestamp).
	props := m.Properties
	props.Headers["tenant"] = "globex"
	if _, err := e.c.EditMessage(ctx, "/", "dlq", ids[2], api.MessageEdit{Properties: &props}); err != nil {
		t.Fatal(err)
	}
	got, _ := e.c.Message(ctx, "/", "dlq", ids[2])
	if got.Properties.Headers["tenant"] != "globex" || got.Death == nil || got.Death.Time.IsZero() || got.Payload != fixed {
		t.Fatalf("after header edit %+v", got)
	}
	if err := e.c.DeleteMessage(ctx, "/", "dlq", ids[5]); err != nil {
		t.Fatal(err)
	}

	// Take message 0 with an AMQP get and keep it unacked: edits are 409.
	d, ok, err := ch.Get("dlq", false)
	if err != nil || !ok || d.MessageId != "0" {
		t.Fatalf("get: %v %v %v", ok, err, d.MessageId)
	}
	body := "x"
	tests := []struct {
		name string
		do   func() error
		want int
	}{
		{"read unacked", func() error { _, err := e.c.Message(ctx, "/", "dlq", ids[0]); return err }, 0},
		{"edit unacked", func() error {
			_, err := e.c.EditMessage(ctx, "/", "dlq", ids[0], api.MessageEdit{Payload: &body})
			return err
		}, 409},
		{"delete unacked", func() error { return e.c.DeleteMessage(ctx, "/", "dlq", ids[0]) }, 409},
		{"read deleted", func() error { _, err := e.c.Message(ctx, "/", "dlq", ids[5]); return err }, 404},
		{"edit deleted", func() error {
			_, err := e.c.EditMessage(ctx, "/", "dlq", ids[5], api.MessageEdit{Payload: &body})
			return err
		}, 404},
		{"delete deleted", func() error { return e.c.DeleteMessage(ctx, "/", "dlq", ids[5]) }, 404},
		{"edit nothing", func() error { _, err := e.c.EditMessage(ctx, "/", "dlq", ids[1], api.MessageEdit{}); return err }, 400},
		{"edit bad base64", func() error {
			_, err := e.c.EditMessage(ctx, "/", "dlq", ids[1], api.MessageEdit{Payload: &body, PayloadEncoding: "base64"})
			return err
		}, 400},
		{"read in missing queue", func() error { _, err := e.c.Message(ctx, "/", "nope", 1); return err }, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantStatus(t, tc.name, tc.do(), tc.want) })
	}
	status, _ := e.raw(t, "GET", "/api/queues/%2F/dlq/messages/abc", "")
	if status != 400 {
		t.Fatalf("non-numeric id: status %d", status)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	// The ack travels asynchronously: until it lands the edit is 409.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = e.c.EditMessage(ctx, "/", "dlq", ids[0], api.MessageEdit{Payload: &body})
		if api.StatusOf(err) != 409 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	wantStatus(t, "edit consumed", err, 404)

	// The edited message is delivered edited, in its place.
	for _, want := range []string{"1", "2", "3", "4"} {
		d, ok, err := ch.Get("dlq", true)
		if err != nil || !ok || d.MessageId != want {
			t.Fatalf("get: %v %v %s, want %s", ok, err, d.MessageId, want)
		}
		if want == "2" && (string(d.Body) != fixed || d.RoutingKey != key || d.Headers["tenant"] != "globex") {
			t.Fatalf("edited delivery: %s %s %v", d.Body, d.RoutingKey, d.Headers)
		}
		if want == "2" {
			if _, isTime := d.Headers["x-death"].([]any)[0].(amqp.Table)["time"].(time.Time); !isTime {
				t.Fatalf("x-death time lost its type: %#v", d.Headers["x-death"])
			}
		}
	}
	es, err := e.c.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range es {
		actions = append(actions, a.Action)
		if a.User != "guest" || a.Queue != "dlq" || a.Time.IsZero() {
			t.Fatalf("audit entry %+v", a)
		}
	}
	if strings.Join(actions, ",") != "edit,edit,delete" {
		t.Fatalf("audit actions %v", actions)
	}
}

// TestBrowseByState: the state filter is the server's, so a page holds
// the unacked and delayed messages however many ready ones come first.
func TestBrowseByState(t *testing.T) {
	e := start(t)
	declare(t, e.c, "jobs", map[string]any{"x-retry-backoff": "1h"})
	_, ch := e.amqpChannel(t)
	var msgs []amqp.Publishing
	for i := range 10 {
		msgs = append(msgs, amqp.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	publishConfirmed(t, ch, "", "jobs", msgs...)
	if err := ch.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume("jobs", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 0 is returned with an hour's backoff (delayed); 1 and 2 stay
	// delivered (unacked); 3..9 are ready.
	if err := (<-d).Nack(false, true); err != nil {
		t.Fatal(err)
	}
	<-d
	<-d
	bodies := func(query string) string {
		t.Helper()
		var page api.MessagePage
		deadline := time.Now().Add(5 * time.Second)
		for {
			status, body := e.raw(t, "GET", "/api/queues/%2F/jobs/messages?"+query, "")
			if status != 200 {
				t.Fatalf("%s: %d %s", query, status, body)
			}
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range page.Messages {
				got = append(got, m.State+":"+m.Payload)
			}
			if len(got) > 0 || time.Now().After(deadline) {
				return strings.Join(got, ",") + fmt.Sprintf(" more=%v", page.More)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for query, want := range map[string]string{
		"state=delayed":         "delayed:0 more=false",
		"state=unacked":         "unacked:1,unacked:2 more=false",
		"state=ready":           "ready:3,ready:4,ready:5,ready:6,ready:7,ready:8,ready:9 more=false",
		"state=ready&limit=2":   "ready:3,ready:4 more=true",
		"state=unacked&limit=1": "unacked:1 more=true",
		"state=unacked&body=1":  "unacked:1 more=false",
	} {
		if got := bodies(query); got != want {
			t.Errorf("%s: %s, want %s", query, got, want)
		}
	}
	if status, body := e.raw(t, "GET", "/api/queues/%2F/jobs/messages?state=sleeping", ""); status != 400 || !strings.Contains(string(body), "state") {
		t.Errorf("state=sleeping: %d %s, want 400 naming state", status, body)
	}
}
