package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

// An administrator creates a vhost, clients use it over AMQP, and deleting
// it removes its queues and closes its connections.
func TestVHostsCreateUseDelete(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	status, _ := e.raw(t, http.MethodPut, "/api/vhosts/orders", "")
	if status != http.StatusCreated {
		t.Fatalf("PUT new vhost: %d, want 201", status)
	}
	status, _ = e.raw(t, http.MethodPut, "/api/vhosts/orders", `{"description":"again"}`)
	if status != http.StatusNoContent {
		t.Fatalf("PUT existing vhost: %d, want 204", status)
	}
	vs, err := e.c.VHosts(ctx)
	if err != nil || len(vs) != 2 || vs[1].Name != "orders" {
		t.Fatalf("vhosts = %+v, %v", vs, err)
	}
	if err := e.c.PutUser(ctx, "mon", api.UserPut{Password: "pw", Tags: "monitoring"}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "monitoring user creates a vhost", e.as("mon", "pw").PutVHost(ctx, "x"), 403)

	url := e.sb.URLFor("guest", "guest", "orders")
	_, err = amqp.Dial(url)
	wantAMQPError(t, "connect without permissions", err, amqp.NotAllowed,
		"NOT_ALLOWED - access to vhost 'orders' refused for user 'guest'")
	if err := e.c.SetPermission(ctx, "orders", "guest", api.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("connect to orders: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("new", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, ch, "", "new", amqp.Publishing{Body: []byte("o1")})
	q, err := e.c.Queue(ctx, "orders", "new")
	if err != nil || q.MessagesReady != 1 {
		t.Fatalf("queue orders/new = %+v, %v", q, err)
	}
	if _, err := e.c.Queue(ctx, "/", "new"); api.StatusOf(err) != 404 {
		t.Fatalf("queue /new: %v, want 404 (vhosts are apart)", err)
	}

	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := e.c.DeleteVHost(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	select {
	case ce := <-closed:
		if ce == nil || ce.Code != amqp.ConnectionForced {
			t.Errorf("connection closed with %v, want 320", ce)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection to the deleted vhost still open")
	}
	wantStatus(t, "queue of the deleted vhost", func() error { _, err := e.c.Queue(ctx, "orders", "new"); return err }(), 404)
	wantStatus(t, "delete it again", e.c.DeleteVHost(ctx, "orders"), 404)
	wantStatus(t, "delete /", e.c.DeleteVHost(ctx, "/"), 409)
	if vs, _ := e.c.VHosts(ctx); len(vs) != 1 {
		t.Errorf("vhosts after delete = %+v", vs)
	}
}
