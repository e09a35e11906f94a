package cluster

import "testing"

// A new queue's leader is told it serves only once the queue's definition
// applied there, not at its term's first entry before it; a leader
// elected later, its definition applied long before (on its store since
// a restart), is told too.
func TestServingFollowsDefinition(t *testing.T) {
	c := newTestCluster(t, 3)
	for range 3 {
		q := NewQueueID()
		if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
			t.Fatal(err)
		}
		l := c.leader(q)
		waitFor(t, "the leader serves", func() bool { return l.rec.isServing(q) })
	}
	for _, tn := range c.nodes {
		tn.rec.mu.Lock()
		unknown := tn.rec.unknown
		tn.rec.mu.Unlock()
		if unknown != 0 {
			t.Errorf("%s was told %d times it serves a queue it did not know", tn.name, unknown)
		}
	}
	// Failover onto a node restarted on its store: told from its stored
	// definition.
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" defines the queue", func() bool { return string(tn.rec.def(q)) == "def" })
	}
	var f *testNode
	for _, tn := range c.nodes {
		if tn != l {
			f = tn
			break
		}
	}
	c.net.down(f.h.Self())
	c.start(f)
	c.net.down(l.h.Self())
	nl := c.leader(q, l)
	waitFor(t, nl.name+" serves after the failover", func() bool { return nl.rec.isServing(q) })
}
