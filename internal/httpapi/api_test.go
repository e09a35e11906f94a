package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

func TestAuth(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.c.PutUser(ctx, "mon", api.UserPut{Password: "m", Tags: "monitoring"}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.PutUser(ctx, "plain", api.UserPut{Password: "p", Tags: []any{}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, pw, method, path string
		want                         int
	}{
		{"guest overview", "guest", "guest", "GET", "/api/overview", 200},
		{"wrong password", "guest", "nope", "GET", "/api/overview", 401},
		{"unknown user", "nobody", "x", "GET", "/api/queues", 401},
		{"no auth", "", "", "GET", "/api/queues", 401},
		{"user without tags", "plain", "p", "GET", "/api/queues", 403},
		{"monitoring lists", "mon", "m", "GET", "/api/queues", 200},
		{"monitoring cannot declare", "mon", "m", "PUT", "/api/queues/%2F/q1", 403},
		{"monitoring cannot list users", "mon", "m", "GET", "/api/users", 403},
		{"whoami without tags", "plain", "p", "GET", "/api/whoami", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.url+tc.path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pw)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want >= 400 {
				var ae api.Error
				mustJSON(t, body, &ae)
				if ae.Kind == "" || ae.Reason == "" {
					t.Fatalf("error body %s lacks error or reason", body)
				}
			}
		})
	}
}

func TestGuestOnlyFromLoopback(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		remote string
		want   int
	}{{"127.0.0.1:5000", 200}, {"[::1]:5000", 200}, {"10.1.2.3:5000", 401}} {
		req := httptest.NewRequest("GET", "/api/overview", nil)
		req.RemoteAddr = tc.remote
		req.SetBasicAuth("guest", "guest")
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("from %s: status %d, want %d (%s)", tc.remote, rec.Code, tc.want, rec.Body)
		}
	}
}

func TestQueues(t *testing.T) {
	e := start(t)
	tests := []struct {
		name, method, path, body string
		want                     int
		reason                   string // substring of the error's reason
	}{
		{"declare", "PUT", "/api/queues/%2F/orders", `{"durable":true,"arguments":{"x-max-length":10}}`, 201, ""},
		{"redeclare", "PUT", "/api/queues/%2F/orders", `{"durable":true,"arguments":{"x-max-length":10}}`, 204, ""},
		{"inequivalent", "PUT", "/api/queues/%2F/orders", `{"durable":true,"arguments":{"x-max-length":11}}`, 409, "x-max-length"},
		{"bad argument", "PUT", "/api/queues/%2F/bad", `{"arguments":{"x-max-length":"ten"}}`, 409, "x-max-length"},
		{"malformed json", "PUT", "/api/queues/%2F/q2", `{"durable":tru}`, 400, "byte"},
		{"wrong type", "PUT", "/api/queues/%2F/q2", `{"durable":"yes"}`, 400, "durable"},
		{"reserved name", "PUT", "/api/queues/%2F/amq.x", `{}`, 403, "amq."},
		{"unknown vhost", "GET", "/api/queues/nope/orders", "", 404, "nope"},
		{"get", "GET", "/api/queues/%2F/orders", "", 200, ""},
		{"get missing", "GET", "/api/queues/%2F/missing", "", 404, "missing"},
		{"list vhost", "GET", "/api/queues/%2F", "", 200, ""},
		{"method not allowed", "POST", "/api/queues/%2F/orders", "{}", 405, "POST"},
		{"unknown endpoint", "GET", "/api/nothing", "", 404, "nothing"},
		{"delete missing", "DELETE", "/api/queues/%2F/missing", "", 404, "missing"},
		{"delete", "DELETE", "/api/queues/%2F/orders", "", 204, ""},
		{"gone", "GET", "/api/queues/%2F/orders", "", 404, "orders"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.raw(t, tc.method, tc.path, tc.body)
			if status != tc.want {
				t.Fatalf("status %d (%s), want %d", status, body, tc.want)
			}
			if tc.reason != "" {
				var ae api.Error
				mustJSON(t, body, &ae)
				if !strings.Contains(ae.Reason, tc.reason) {
					t.Fatalf("reason %q does not mention %q", ae.Reason, tc.reason)
				}
			}
		})
	}
}

func TestQueueFieldsAndCounts(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "work", map[string]any{"x-queue-type": "classic"})
	_, ch := e.amqpChannel(t)
	publishConfirmed(t, ch, "", "work", amqp.Publishing{Body: []byte("a")}, amqp.Publishing{Body: []byte("bb")},
		amqp.Publishing{Body: []byte("ccc")})
	if _, ok, err := ch.Get("work", false); err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	q, err := e.c.Queue(ctx, "/", "work")
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 3 || q.MessagesReady != 2 || q.MessagesUnacknowledged != 1 || q.MessagesDelayed != 0 ||
		!q.Durable || q.Name != "work" || q.VHost != "/" || q.MessageBytesReady != 5 {
		t.Fatalf("queue %+v", q)
	}
	status, body := e.raw(t, "GET", "/api/queues/%2F/work", "")
	if status != 200 {
		t.Fatal(status)
	}
	var raw map[string]any
	mustJSON(t, body, &raw)
	for _, f := range []string{"name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "messages",
		"messages_ready", "messages_unacknowledged", "messages_delayed", "consumers", "message_stats"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("queue JSON lacks %q: %s", f, body)
		}
	}
	ov, err := e.c.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ov.QueueTotals.Messages != 3 || ov.ObjectTotals.Queues != 1 {
		t.Fatalf("overview %+v", ov)
	}
}

func TestExchangesAndBindings(t *testing.T) {
	e := start(t)
	declare(t, e.c, "q", nil)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"declare", "PUT", "/api/exchanges/%2F/events", `{"type":"topic","durable":true}`, 201},
		{"redeclare", "PUT", "/api/exchanges/%2F/events", `{"type":"topic","durable":true}`, 204},
		{"inequivalent", "PUT", "/api/exchanges/%2F/events", `{"type":"direct","durable":true}`, 409},
		{"no type", "PUT", "/api/exchanges/%2F/x2", `{}`, 400},
		{"bad type", "PUT", "/api/exchanges/%2F/x2", `{"type":"weird"}`, 400},
		{"reserved", "PUT", "/api/exchanges/%2F/amq.mine", `{"type":"direct"}`, 403},
		{"get", "GET", "/api/exchanges/%2F/events", "", 200},
		{"get default", "GET", "/api/exchanges/%2F/amq.default", "", 200},
		{"get missing", "GET", "/api/exchanges/%2F/missing", "", 404},
		{"list", "GET", "/api/exchanges", "", 200},
		{"bind", "POST", "/api/bindings/%2F/e/events/q/q", `{"routing_key":"a.*"}`, 201},
		{"bind missing exchange", "POST", "/api/bindings/%2F/e/missing/q/q", `{"routing_key":"a"}`, 404},
		{"bind missing queue", "POST", "/api/bindings/%2F/e/events/q/missing", `{"routing_key":"a"}`, 404},
		{"bind malformed", "POST", "/api/bindings/%2F/e/events/q/q", `{"routing_key":`, 400},
		{"list bindings", "GET", "/api/bindings/%2F/e/events/q/q", "", 200},
		{"queue bindings", "GET", "/api/queues/%2F/q/bindings", "", 200},
		{"unbind", "DELETE", "/api/bindings/%2F/e/events/q/q/a.*", "", 204},
		{"unbind again", "DELETE", "/api/bindings/%2F/e/events/q/q/a.*", "", 404},
		{"delete", "DELETE", "/api/exchanges/%2F/events", "", 204},
		{"delete missing", "DELETE", "/api/exchanges/%2F/events", "", 404},
		{"delete system", "DELETE", "/api/exchanges/%2F/amq.direct", "", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.raw(t, tc.method, tc.path, tc.body)
			if status != tc.want {
				t.Fatalf("status %d (%s), want %d", status, body, tc.want)
			}
		})
	}
	bs, err := e.c.Bindings(context.Background(), "/")
	if err != nil {
		t.Fatal(err)
	}
	// Only the default exchange's implicit binding of q is left.
	if len(bs) != 1 || bs[0].Source != "" || bs[0].Destination != "q" {
		t.Fatalf("bindings %+v", bs)
	}
}

func TestBindingRoutes(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "q", nil)
	if err := e.c.DeclareExchange(ctx, "/", "ex", api.ExchangeDeclare{Type: "direct"}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Bind(ctx, "/", "ex", "q", api.BindingCreate{RoutingKey: "k"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key    string
		routed bool
	}{{"k", true}, {"other", false}} {
		r, err := e.c.Publish(ctx, "/", "ex", api.Publish{RoutingKey: tc.key, Payload: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Routed != tc.routed {
			t.Errorf("publish with key %q: routed %v, want %v", tc.key, r.Routed, tc.routed)
		}
	}
	q, _ := e.c.Queue(ctx, "/", "q")
	if q.MessagesReady != 1 {
		t.Fatalf("ready %d, want 1", q.MessagesReady)
	}
}

func TestPublishGetPurge(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "q", nil)
	pri := 3
	for i, p := range []api.Publish{
		{RoutingKey: "q", Payload: "one", Properties: api.Properties{ContentType: "text/plain", Priority: &pri,
			Headers: map[string]any{"k": "v", "n": 7}}},
		{RoutingKey: "q", Payload: "AAEC", PayloadEncoding: "base64"},
		{RoutingKey: "q", Payload: "three"},
	} {
		r, err := e.c.Publish(ctx, "/", "", p)
		if err != nil || !r.Routed {
			t.Fatalf("publish %d: %v %v", i, r, err)
		}
	}
	errs := []struct {
		name string
		p    api.Publish
		path string
		want int
	}{
		{"bad encoding", api.Publish{RoutingKey: "q", Payload: "x", PayloadEncoding: "rot13"}, "amq.default", 400},
		{"bad base64", api.Publish{RoutingKey: "q", Payload: "!!", PayloadEncoding: "base64"}, "amq.default", 400},
		{"bad delivery mode", api.Publish{RoutingKey: "q", Properties: api.Properties{DeliveryMode: 5}}, "amq.default", 400},
		{"missing exchange", api.Publish{RoutingKey: "q"}, "missing", 404},
	}
	for _, tc := range errs {
		_, err := e.c.Publish(ctx, "/", tc.path, tc.p)
		wantStatus(t, tc.name, err, tc.want)
	}

	// reject_requeue_true leaves the message, now redelivered.
	got, err := e.c.Get(ctx, "/", "q", api.Get{Count: 1, AckMode: "reject_requeue_true", Encoding: "auto"})
	if err != nil || len(got) != 1 {
		t.Fatalf("get: %v %v", got, err)
	}
	m := got[0]
	if m.Payload != "one" || m.Properties.ContentType != "text/plain" || *m.Properties.Priority != 3 ||
		m.Properties.Headers["k"] != "v" || m.Properties.Headers["n"] != float64(7) || m.Redelivered || m.MessageCount != 2 {
		t.Fatalf("got %+v", m)
	}
	got, err = e.c.Get(ctx, "/", "q", api.Get{Count: 5, AckMode: "ack_requeue_false", Encoding: "auto"})
	if err != nil || len(got) != 3 {
		t.Fatalf("get: %v %v", got, err)
	}
	if !got[0].Redelivered || got[1].PayloadEncoding != "base64" || got[1].Payload != "AAEC" || got[2].Payload != "three" {
		t.Fatalf("got %+v", got)
	}
	_, err = e.c.Get(ctx, "/", "q", api.Get{AckMode: "sometimes"})
	wantStatus(t, "bad ackmode", err, 400)
	_, err = e.c.Get(ctx, "/", "missing", api.Get{AckMode: "ack_requeue_false"})
	wantStatus(t, "get missing queue", err, 404)

	for range 4 {
		if _, err := e.c.Publish(ctx, "/", "", api.Publish{RoutingKey: "q", Payload: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := e.c.Purge(ctx, "/", "q")
	if err != nil || p.MessageCount != 4 {
		t.Fatalf("purge: %+v %v", p, err)
	}
	_, err = e.c.Purge(ctx, "/", "missing")
	wantStatus(t, "purge missing", err, 404)
	q, _ := e.c.Queue(ctx, "/", "q")
	if q.Messages != 0 {
		t.Fatalf("messages after purge: %d", q.Messages)
	}
}

func TestConsumersAndChannels(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "q", nil)
	_, ch := e.amqpChannel(t)
	if err := ch.Qos(7, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("q", "my-tag", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := e.c.Consumers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ConsumerTag != "my-tag" || cs[0].Queue.Name != "q" || !cs[0].AckRequired || cs[0].PrefetchCount != 7 {
		t.Fatalf("consumers %+v", cs)
	}
	q, _ := e.c.Queue(ctx, "/", "q")
	if q.Consumers != 1 {
		t.Fatalf("queue consumers %d", q.Consumers)
	}
}

func TestConnections(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	conn, _ := e.amqpChannel(t)
	cs, err := e.c.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = e.c.CloseConnection(ctx, "no such connection")
	wantStatus(t, "close unknown", err, 404)
	// Scripts written for RabbitMQ ask with a trailing slash.
	req, _ := http.NewRequest("GET", e.url+"/api/connections/", nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var listed []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&listed); err != nil || resp.StatusCode != 200 || len(listed) != 1 {
		t.Fatalf("GET /api/connections/: %d, %v, %v", resp.StatusCode, listed, err)
	}
	resp.Body.Close()
	if len(cs) != 1 || cs[0].User != "guest" || cs[0].VHost != "/" || cs[0].ClientProperties["product"] == nil {
		t.Fatalf("connections %+v", cs)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := e.c.CloseConnection(ctx, cs[0].Name); err != nil {
		t.Fatal(err)
	}
	aerr := <-closed
	if aerr == nil || aerr.Code != amqp.ConnectionForced {
		t.Fatalf("close: %v, want 320 CONNECTION_FORCED", aerr)
	}
}

func TestMetrics(t *testing.T) {
	e := start(t)
	declare(t, e.c, "m", nil)
	for range 3 {
		if _, err := e.c.Publish(context.Background(), "/", "", api.Publish{RoutingKey: "m", Payload: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_queue_messages{queue="m",state="ready",vhost="/"} 3`,
		`sluice_queue_messages{queue="m",state="unacked",vhost="/"} 0`,
		`sluice_queue_messages{queue="m",state="delayed",vhost="/"} 0`,
		`sluice_queue_oldest_message_age_seconds{queue="m",vhost="/"}`,
		"sluice_connections ", "sluice_channels ", "go_memstats_alloc_bytes ", "sluice_disk_free_bytes ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestUsersAndPermissions(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.c.PutUser(ctx, "ops", api.UserPut{Password: "secret", Tags: "management"}); err != nil {
		t.Fatal(err)
	}
	ops := e.as("ops", "secret")
	// No permissions on "/" yet: the vhost is invisible.
	err := ops.DeclareQueue(ctx, "/", "ops.q", api.QueueDeclare{})
	wantStatus(t, "declare without permissions", err, 404)
	if err := e.c.SetPermission(ctx, "/", "ops", api.Permission{Configure: "ops\\..*", Write: ".*", Read: "ops\\..*"}); err != nil {
		t.Fatal(err)
	}
	declare(t, e.c, "other.q", nil)
	tests := []struct {
		name string
		do   func() error
		want int
	}{
		{"declare own", func() error { return ops.DeclareQueue(ctx, "/", "ops.q", api.QueueDeclare{}) }, 0},
		{"declare other", func() error { return ops.DeclareQueue(ctx, "/", "other", api.QueueDeclare{}) }, 403},
		{"browse own", func() error { _, err := ops.Browse(ctx, "/", "ops.q", 0, 10, api.Filter{}); return err }, 0},
		{"list users", func() error { _, err := ops.Users(ctx); return err }, 403},
		{"browse other", func() error { _, err := ops.Browse(ctx, "/", "other.q", 0, 10, api.Filter{}); return err }, 403},
		{"purge other", func() error { _, err := ops.Purge(ctx, "/", "other.q"); return err }, 403},
		{"redrive other", func() error { _, err := ops.Redrive(ctx, "/", "other.q", api.Redrive{}); return err }, 403},
		{"get other", func() error {
			_, err := ops.Get(ctx, "/", "other.q", api.Get{AckMode: "ack_requeue_false"})
			return err
		}, 403},
		{"bad regex", func() error {
			return e.c.SetPermission(ctx, "/", "ops", api.Permission{Configure: "(", Write: "", Read: ""})
		}, 400},
		{"permission for unknown user", func() error {
			return e.c.SetPermission(ctx, "/", "ghost", api.Permission{Configure: ".*"})
		}, 404},
		{"permission on unknown vhost", func() error {
			return e.c.SetPermission(ctx, "nope", "ops", api.Permission{Configure: ".*"})
		}, 404},
		{"both password and hash", func() error {
			return e.c.PutUser(ctx, "x", api.UserPut{Password: "a", PasswordHash: "b"})
		}, 400},
		{"bad tags", func() error { return e.c.PutUser(ctx, "x", api.UserPut{Password: "a", Tags: 5}) }, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantStatus(t, tc.name, tc.do(), tc.want) })
	}
	ps, err := e.c.Permissions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("permissions %+v, want guest's and ops'", ps)
	}
	// The password hash round-trips in RabbitMQ's format.
	us, _ := e.c.Users(ctx)
	var hash string
	for _, u := range us {
		if u.Name == "ops" {
			hash = u.PasswordHash
		}
	}
	if err := e.c.PutUser(ctx, "ops2", api.UserPut{PasswordHash: hash, Tags: "management"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.as("ops2", "secret").Whoami(ctx); err != nil {
		t.Fatalf("login with copied hash: %v", err)
	}
	if err := e.c.DeleteUser(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	_, err = ops.Whoami(ctx)
	wantStatus(t, "deleted user", err, 401)
	err = e.c.DeleteUser(ctx, "ops")
	wantStatus(t, "delete again", err, 404)
	err = e.c.DeleteUser(ctx, "guest")
	wantStatus(t, "delete self", err, 409)
	ps, _ = e.c.Permissions(ctx)
	if len(ps) != 1 {
		t.Fatalf("permissions after delete %+v", ps)
	}
}

func TestDeleteQueueConditions(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "full", nil)
	if _, err := e.c.Publish(ctx, "/", "", api.Publish{RoutingKey: "full", Payload: "x"}); err != nil {
		t.Fatal(err)
	}
	err := e.c.DeleteQueue(ctx, "/", "full", true, false)
	wantStatus(t, "if-empty", err, 409)
	if err := e.c.DeleteQueue(ctx, "/", "full", false, false); err != nil {
		t.Fatal(err)
	}
	qs, _ := e.c.Queues(ctx, "")
	if len(qs) != 0 {
		t.Fatalf("queues %v", fmt.Sprint(qs))
	}
}
