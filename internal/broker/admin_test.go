package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// deadLetter is a persistent message with the x-death header of a message
// rejected from queue.
func deadLetter(queue, body string) *message.Message {
	m := newMsg("", "dlq", body, true)
	m.Properties.Flags |= message.FlagHeaders
	m.Properties.Headers = message.Table{"x-death": []any{message.Table{
		"count": int64(1), "reason": "rejected", "queue": queue, "exchange": "",
		"routing-keys": []any{queue}, "time": time.Unix(1700000000, 0).UTC(),
	}}}
	return m
}

func browseIDs(t *testing.T, b *Broker, queue string) ([]uint64, []string) {
	t.Helper()
	p, err := b.Browse("/", queue, 0, 1000, Select{})
	if err != nil {
		t.Fatalf("browse %s: %v", queue, err)
	}
	var ids []uint64
	var states []string
	for _, m := range p.Messages {
		ids = append(ids, m.ID)
		states = append(states, fmt.Sprintf("%s:%s:%d", m.Message.Body, m.State, m.Deliveries))
	}
	return ids, states
}

func TestAdminUsersPermissionsAuditSurviveRestart(t *testing.T) {
	st := memstore.New()
	b1, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.SeedPermissions(); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.PutUser("ops", "pw", "", []string{TagManagement}); err != nil {
		t.Fatal(err)
	}
	if err := b1.SetPermission(Permission{User: "ops", VHost: "/", Configure: "^ops", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	if _, err := access.NewAuditLog(b1, nil).Record(access.AuditEntry{User: "ops", Action: "purge", VHost: "/", Queue: "q", Count: 3}); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close(context.Background())
	if err := b2.SeedPermissions(); err != nil {
		t.Fatal(err)
	}
	if err := b2.Authenticate(Login{User: "ops", Password: "pw", Remote: "192.0.2.1:5000"}); err != nil {
		t.Fatalf("ops after restart: %v", err)
	}
	if u, _ := b2.User("ops"); !u.HasTag(TagManagement) {
		t.Fatalf("tags after restart: %+v", u)
	}
	ps, err := b2.Permissions("", "")
	if err != nil || len(ps) != 2 {
		t.Fatalf("permissions after restart: %+v %v", ps, err)
	}
	p, err := b2.Permission("/", "ops")
	if err != nil || p.Configure != "^ops" {
		t.Fatalf("ops permission: %+v %v", p, err)
	}
	es, err := access.NewAuditLog(b2, nil).Entries("", 0)
	if err != nil || len(es) != 1 || es[0].Action != "purge" || es[0].Count != 3 {
		t.Fatalf("audit after restart: %+v %v", es, err)
	}
	if err := b2.DeleteUser("ops"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := b2.Permissions("", "ops"); len(ps) != 0 {
		t.Fatalf("permissions of a deleted user: %+v", ps)
	}
}

// moveOuts are the moves of the messages ids of queue from into queue to,
// as they are (the dead-letter workflow's redrive rewrites them first).
func moveOuts(t *testing.T, b *Broker, from string, ids []uint64, to string) []MoveOut {
	t.Helper()
	outs := make([]MoveOut, len(ids))
	for i, id := range ids {
		sm, err := b.Message("/", from, id)
		if err != nil {
			t.Fatalf("message %d: %v", id, err)
		}
		outs[i] = MoveOut{ID: id, Message: sm.Message, Queue: to, Version: sm.Version}
	}
	return outs
}

// moveTo moves the messages ids of queue from into queue to.
func moveTo(t *testing.T, b *Broker, from string, ids []uint64, to string) []error {
	t.Helper()
	errs, err := b.Move("/", from, moveOuts(t, b, from, ids, to), MoveOptions{})
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	return errs
}

// TestMoveSurvivesRestart: moved messages are in the target queue only,
// as the mover gave them, after a restart; the others stay in place.
func TestMoveSurvivesRestart(t *testing.T) {
	st := memstore.New()
	b1, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b1)
	c.declareQueue("orders", true, nil)
	c.declareQueue("dlq", true, nil)
	for i := range 4 {
		c.publishMsg(deadLetter("orders", fmt.Sprint(i)))
	}
	ids, _ := browseIDs(t, b1, "dlq")
	for _, err := range moveTo(t, b1, "dlq", []uint64{ids[1], ids[3]}, "orders") {
		if err != nil {
			t.Fatal(err)
		}
	}
	c.conn.Close()
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2, err := Open(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close(context.Background())
	_, dlq := browseIDs(t, b2, "dlq")
	_, orders := browseIDs(t, b2, "orders")
	if fmt.Sprint(dlq) != "[0:ready:0 2:ready:0]" || fmt.Sprint(orders) != "[1:ready:0 3:ready:0]" {
		t.Fatalf("after restart dlq %v orders %v", dlq, orders)
	}
	if d := newClient(t, b2).get("orders", true); d.Redelivered || d.Properties.Headers["x-death"] == nil {
		t.Fatalf("moved delivery %+v", d)
	}
}

// TestRedriveFailedApplyChangesNothing: a move whose store write fails
// leaves the message ready in its dead letter queue and nothing in the
// target.
func TestRedriveFailedApplyChangesNothing(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	b := openBroker(t, st)
	c := newClient(t, b)
	c.declareQueue("orders", true, nil)
	c.declareQueue("dlq", true, nil)
	c.publishMsg(deadLetter("orders", "a"))
	ids, _ := browseIDs(t, b, "dlq")
	st.fail.Store(true)
	res := moveTo(t, b, "dlq", ids, "orders")
	st.fail.Store(false)
	if len(res) != 1 || res[0] == nil {
		t.Fatalf("move on a failing store: %+v", res)
	}
	_, dlq := browseIDs(t, b, "dlq")
	_, orders := browseIDs(t, b, "orders")
	if fmt.Sprint(dlq) != "[a:ready:0]" || len(orders) != 0 {
		t.Fatalf("dlq %v orders %v", dlq, orders)
	}
	if d := c.get("dlq", true); d == nil || string(d.Body) != "a" {
		t.Fatalf("the message is not deliverable from the dlq: %+v", d)
	}
}

// TestBrowseStatesAndOrder: requeued messages keep their place; unacked
// ones are listed as unacked with their delivery count.
func TestBrowseStatesAndOrder(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareQueue("q", false, nil)
	for i := range 4 {
		c.publish("", "q", fmt.Sprint(i), false)
	}
	d0 := c.get("q", false)
	d1 := c.get("q", false)
	if err := c.ch.Nack(d0.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	_, states := browseIDs(t, b, "q")
	if fmt.Sprint(states) != "[0:ready:1 1:unacked:1 2:ready:0 3:ready:0]" {
		t.Fatalf("states %v", states)
	}
	_ = d1
	info, _ := b.Queue("/", "q")
	if info.Ready != 3 || info.Unacked != 1 {
		t.Fatalf("counts %+v", info)
	}
	// Delete and replace work on a requeued (back-heap) entry too.
	ids, _ := browseIDs(t, b, "q")
	if err := b.ReplaceMessage("/", "q", ids[0], newMsg("", "q", "zero!", false), AnyVersion); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteMessage("/", "q", ids[2]); err != nil {
		t.Fatal(err)
	}
	wantCode(t, b.DeleteMessage("/", "q", ids[1]), PreconditionFailed, "")
	wantCode(t, b.DeleteMessage("/", "q", ids[2]), NotFound, "")
	_, states = browseIDs(t, b, "q")
	if fmt.Sprint(states) != "[zero!:ready:1 1:unacked:1 3:ready:0]" {
		t.Fatalf("states after edits %v", states)
	}
	info, _ = b.Queue("/", "q")
	if info.Ready != 2 || info.ReadyBytes != 6 {
		t.Fatalf("counts after edits %+v", info)
	}
	if got := string(c.get("q", true).Body); got != "zero!" {
		t.Fatalf("first delivery %q", got)
	}
}
