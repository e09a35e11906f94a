package broker

import (
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

func TestTxModeRules(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	wantCode(t, c.ch.CommitTx(nil), PreconditionFailed, "channel is not transactional")
	wantCode(t, c.ch.RollbackTx(), PreconditionFailed, "channel is not transactional")
	if err := c.ch.SelectTx(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.ch.SelectConfirm(), PreconditionFailed, "cannot switch from tx to confirm mode")
	c2 := c.channel(2)
	if err := c2.ch.SelectConfirm(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c2.ch.SelectTx(), PreconditionFailed, "cannot switch from confirm to tx mode")
}

func TestTxPublishHeldUntilCommit(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", false, nil)
	if err := c.ch.SelectTx(); err != nil {
		t.Fatal(err)
	}
	var dones int
	for _, body := range []string{"a", "b"} {
		routed, err := c.ch.Publish(newMsg("", "q", body, true), false, func(error) { dones++ })
		if err != nil || !routed {
			t.Fatalf("publish: %v %v", routed, err)
		}
	}
	st, _ := c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
	if st.Messages != 0 {
		t.Fatalf("%d messages visible before commit", st.Messages)
	}
	if err := c.ch.CommitTx(nil); err != nil {
		t.Fatal(err)
	}
	st, _ = c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
	if st.Messages != 2 || dones != 2 {
		t.Fatalf("after commit: %d messages, %d dones", st.Messages, dones)
	}
	c.ch.Publish(newMsg("", "q", "c", false), false, nil)
	if err := c.ch.RollbackTx(); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.CommitTx(nil); err != nil {
		t.Fatal(err)
	}
	st, _ = c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
	if st.Messages != 2 {
		t.Fatalf("rolled-back publish arrived: %d messages", st.Messages)
	}
}

func TestTxAcksHeldAndRolledBack(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.fill("q", 2)
	if err := c.ch.SelectTx(); err != nil {
		t.Fatal(err)
	}
	d1 := c.get("q", false)
	d2 := c.get("q", false)
	if err := c.ch.Ack(d1.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.RollbackTx(); err != nil {
		t.Fatal(err)
	}
	// The rolled-back ack's delivery is unacked again: it can be acked.
	if err := c.ch.Ack(d2.DeliveryTag, true); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.CommitTx(nil); err != nil {
		t.Fatal(err)
	}
	c.ch.Close()
	other := newClient(t, c.b)
	if d := other.get("q", true); d != nil {
		t.Fatalf("acked message came back: %q", d.Body)
	}
}

func TestDirectReplyTo(t *testing.T) {
	b := openBroker(t, nil)
	client := newClient(t, b)
	server := newClient(t, b)
	server.declareQueue("rpc", false, nil)

	_, err := client.ch.Consume(ConsumeRequest{Queue: replyToQueue})
	wantCode(t, err, PreconditionFailed, "reply consumer cannot acknowledge")

	req := newMsg("", "rpc", "ping", false)
	req.Properties.Flags |= message.FlagReplyTo
	req.Properties.ReplyTo = replyToQueue
	_, err = client.ch.Publish(req, false, nil)
	wantCode(t, err, PreconditionFailed, "fast reply consumer does not exist")

	if _, err := client.ch.DeclareQueue(QueueDecl{Name: replyToQueue, Passive: true}); err != nil {
		t.Fatalf("passive declare of %s: %v", replyToQueue, err)
	}
	_, err = client.ch.DeclareQueue(QueueDecl{Name: replyToPrefix + "nobody", Passive: true})
	wantCode(t, err, NotFound, "")
	tag, err := client.ch.Consume(ConsumeRequest{Queue: replyToQueue, NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	req = newMsg("", "rpc", "ping", false)
	req.Properties.Flags |= message.FlagReplyTo
	req.Properties.ReplyTo = replyToQueue
	client.publishMsg(req)
	got := server.get("rpc", true)
	addr := got.Properties.ReplyTo
	if !strings.HasPrefix(addr, replyToPrefix) || len(addr) <= len(replyToPrefix) {
		t.Fatalf("reply-to rewritten to %q", addr)
	}
	if st, err := server.ch.DeclareQueue(QueueDecl{Name: addr}); err != nil || st.Consumers != 1 {
		t.Fatalf("declare of the reply address: %+v %v", st, err)
	}
	if !server.publish("", addr, "pong", false) {
		t.Fatal("reply not routed")
	}
	ds := client.out.exactly(t, 1)
	if string(ds[0].Body) != "pong" || ds[0].ConsumerTag != tag || ds[0].RoutingKey != addr {
		t.Fatalf("reply delivery %+v", ds[0])
	}
	if err := client.ch.Cancel(tag); err != nil {
		t.Fatal(err)
	}
	if server.publish("", addr, "late", false) {
		t.Fatal("reply to a cancelled reply consumer was routed")
	}
}
