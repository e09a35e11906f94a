package broker

import (
	"context"
	"testing"

	"github.com/sluicemq/sluice/internal/store/memstore"
)

// A vhost is durable with its definitions and messages; deleting it
// removes them, for good.
func TestVHostLifecycle(t *testing.T) {
	st := memstore.New()
	clock := newFakeClock()
	b := openOn(t, st, clock)
	if created, err := b.PutVHost("v1"); err != nil || !created {
		t.Fatalf("PutVHost = %v, %v; want created", created, err)
	}
	if created, err := b.PutVHost("v1"); err != nil || created {
		t.Fatalf("PutVHost again = %v, %v; want not created", created, err)
	}
	_, err := b.PutVHost("a\x00b")
	wantCode(t, err, InvalidArgument, `vhost name "a\x00b" has control character U+0000 at byte 1`)
	if err := b.SetPermission(Permission{User: "guest", VHost: "v1", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	conn, err := b.Connect(ConnInfo{Name: "c", User: "guest", VHost: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{t: t, b: b, conn: conn, out: &fakeOutlet{}}
	c.ch = conn.Channel(1, c.out)
	c.declareQueue("dq", true, nil)
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "dx", Type: "fanout", Durable: true}); err != nil {
		t.Fatal(err)
	}
	c.bind("dx", "dq", "", nil)
	c.publish("dx", "", "kept", true)
	conn.Close()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b = openOn(t, st, clock)
	if got := b.VHosts(); len(got) != 2 || got[0] != "/" || got[1] != "v1" {
		t.Fatalf("vhosts after restart = %v", got)
	}
	qi, err := b.Queue("v1", "dq")
	if err != nil || qi.Ready != 1 {
		t.Fatalf("queue dq after restart = %+v, %v", qi, err)
	}
	if _, err := b.Exchange("v1", "dx"); err != nil {
		t.Fatalf("exchange dx after restart: %v", err)
	}
	conn, err = b.Connect(ConnInfo{Name: "c2", User: "guest", VHost: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	ch := conn.Channel(1, &fakeOutlet{})

	if err := b.DeleteVHost("v1"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, b.DeleteVHost("v1"), NotFound, "no vhost 'v1'")
	wantCode(t, b.DeleteVHost("/"), PreconditionFailed, "vhost '/' cannot be deleted")
	// A connection still open cannot create anything in it.
	_, err = ch.DeclareQueue(QueueDecl{Name: "late", Durable: true})
	wantCode(t, err, AccessRefused, "access to vhost 'v1' refused for user 'guest'")
	_, err = b.Connect(ConnInfo{Name: "c3", User: "guest", VHost: "v1"})
	wantCode(t, err, NotAllowed, "vhost 'v1' not found")
	if ps, _ := b.Permissions("v1", ""); len(ps) != 0 {
		t.Errorf("permissions left on v1: %v", ps)
	}
	conn.Close()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b = openOn(t, st, clock)
	if got := b.VHosts(); len(got) != 1 {
		t.Fatalf("vhosts after delete and restart = %v", got)
	}
	if _, err := b.PutVHost("v1"); err != nil {
		t.Fatal(err)
	}
	if qs, _ := b.Queues("v1"); len(qs) != 0 {
		t.Errorf("queues of a recreated v1 = %+v, want none", qs)
	}
}
