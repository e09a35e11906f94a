package cluster

import (
	"errors"
	"slices"
	"testing"
)

// Shrinking a queue's group off a node and growing it back: the removed
// node's copy stops following, the others commit on their own, and the
// node added again catches up (by a snapshot: the log moved on) to the
// leader's state.
func TestShrinkAndGrow(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 10 })
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def")); err != nil {
		t.Fatal(err)
	}
	writeLoad(t, c, q, 1, 20)
	l := c.leader(q)
	var out *testNode
	for _, tn := range c.nodes {
		if tn != l {
			out = tn
			break
		}
	}
	if err := l.h.RemoveMember(ctx(t), q, out.name); err != nil {
		t.Fatal(err)
	}
	if err := l.h.RemoveMember(ctx(t), q, out.name); err != nil {
		t.Fatalf("removing a non-member again: %v", err)
	}
	gs, _ := l.h.QueueStatus(q)
	if slices.Contains(gs.Members, out.name) || len(gs.Members) != 2 {
		t.Fatalf("members after shrink %v", gs.Members)
	}
	if err := l.h.AddMember(ctx(t), q, "nope"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("adding an unknown node: %v", err)
	}
	before := len(contents(t, out.st, q))
	writeLoad(t, c, q, 21, 120)
	if got := len(contents(t, out.st, q)); got != before {
		t.Fatalf("removed member went on applying: %d messages, had %d", got, before)
	}
	l = c.leader(q)
	waitFor(t, "compaction", func() bool { return logFirst(l.st, q) > 40 })
	if err := l.h.AddMember(ctx(t), q, out.name); err != nil {
		t.Fatal(err)
	}
	want := queueState(t, l.st, q)
	waitFor(t, out.name+" catches up after the grow", func() bool { return queueState(t, out.st, q) == want })
	writeLoad(t, c, q, 121, 130)
	l = c.leader(q)
	want = queueState(t, l.st, q)
	waitFor(t, out.name+" follows the log", func() bool { return queueState(t, out.st, q) == want })
	gs, _ = out.h.QueueStatus(q)
	if len(gs.Members) != 3 {
		t.Fatalf("members after grow %v", gs.Members)
	}
	// A group of one cannot lose its last member.
	if err := l.h.RemoveMember(ctx(t), q, out.name); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		if tn != l && tn != out {
			if err := l.h.RemoveMember(ctx(t), q, tn.name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.h.RemoveMember(ctx(t), q, l.name); !errors.Is(err, ErrLastMember) {
		t.Fatalf("removing the last member: %v", err)
	}
}
