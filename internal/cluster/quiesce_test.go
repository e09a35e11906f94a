package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

func isQuiet(tn *testNode, q store.QueueID) bool {
	var quiet bool
	tn.h.do(context.Background(), func() {
		if g := tn.h.groups[uint64(q)]; g != nil {
			quiet = g.quiet
		}
	})
	return quiet
}

func (n *memNet) sentTo(group uint64) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent[group]
}

// An idle group goes quiet on every member and sends nothing; a write
// wakes it; a quiet group whose leader's node goes away elects another
// leader, which holds every write.
func TestQuiescence(t *testing.T) {
	c := newTestCluster(t, 3)
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	if err := l.rs.Apply(put(q, 1), true); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" quiesces", func() bool { return isQuiet(tn, q) })
	}
	before := c.net.sentTo(uint64(q))
	time.Sleep(200 * time.Millisecond) // 20 ticks
	if sent := c.net.sentTo(uint64(q)) - before; sent != 0 {
		t.Fatalf("a quiet group sent %d messages", sent)
	}
	if err := l.rs.Apply(put(q, 2), true); err != nil {
		t.Fatalf("a write to a quiet group: %v", err)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" applies the write and quiesces again", func() bool {
			return len(contents(t, tn.st, q)) == 2 && isQuiet(tn, q)
		})
	}
	c.net.down(l.h.Self())
	nl := c.leader(q, l)
	if err := nl.rs.Apply(put(q, 3), true); err != nil {
		t.Fatal(err)
	}
	if got := len(contents(t, nl.st, q)); got != 3 {
		t.Fatalf("new leader holds %d messages, want 3", got)
	}
}

// Over TCP: a quiet group whose leader's loop stops (its host stopped,
// its transport still connected) fails over: the keepalives come from the
// loop, so the leader's node stops being live for the members.
func TestTCPQuietLeaderStuck(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.Nodes = map[string]string{"n1": freeAddr(t), "n2": freeAddr(t), "n3": freeAddr(t)}
	nodes := map[string]*tcpNode{}
	for _, name := range []string{"n1", "n2", "n3"} {
		c := cfg
		c.Node = name
		nodes[name] = startTCPNode(t, c, memstore.New())
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	q := NewQueueID()
	if err := nodes["n1"].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	if err := nodes["n1"].rs.Apply(put(q, 1), true); err != nil {
		t.Fatal(err)
	}
	quiet := func(n *tcpNode) bool {
		var v bool
		n.h.do(context.Background(), func() { g := n.h.groups[uint64(q)]; v = g != nil && g.quiet })
		return v
	}
	for name, n := range nodes {
		waitFor(t, name+" quiet", func() bool { return quiet(n) })
	}
	stuck := nodes["n1"]
	stuck.h.Stop() // the loop stops; the connections stay
	delete(nodes, "n1")
	t.Cleanup(func() { stuck.tr.Close() })
	waitFor(t, "a new leader", func() bool {
		for _, n := range nodes {
			if gs, ok := n.h.QueueStatus(q); ok && gs.Serving {
				return n.rs.Apply(put(q, 2), true) == nil
			}
		}
		return false
	})
}

// A quiet leader cut off from the others steps down (it wakes when it
// loses touch with a quorum), and the others elect a leader.
func TestQuietLeaderCutOffStepsDown(t *testing.T) {
	c := newTestCluster(t, 3)
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" quiesces", func() bool { return isQuiet(tn, q) })
	}
	c.net.mu.Lock()
	c.net.cut[l.h.Self()] = true
	c.net.mu.Unlock()
	waitFor(t, "the cut-off leader steps down", func() bool { gs, _ := l.h.QueueStatus(q); return !gs.Serving })
	nl := c.leader(q, l)
	if nl == l {
		t.Fatal("the cut-off node still leads")
	}
}
