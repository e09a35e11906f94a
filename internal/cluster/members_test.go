package cluster

import (
	"errors"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/internal/store"
)

func members(t *testing.T, tn *testNode, q store.QueueID) []string {
	t.Helper()
	gs, _ := tn.h.QueueStatus(q)
	return gs.Members
}

// Shrinking a queue's group to its leader alone: it commits with the
// others down. Growing it back: the nodes, down while the log moved on,
// catch up (by snapshot) and vote again, and a new leader among them
// holds every write.
func TestShrinkAndGrow(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 10 })
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	writeLoad(t, c, q, 1, 20)
	l := c.leader(q)
	var others []*testNode
	for _, tn := range c.nodes {
		if tn != l {
			others = append(others, tn)
		}
	}
	// Through a follower: raft forwards the change to the leader.
	if err := others[0].h.RemoveMember(ctx(t), q, others[0].name); err != nil {
		t.Fatal(err)
	}
	if err := l.h.RemoveMember(ctx(t), q, others[1].name); err != nil {
		t.Fatal(err)
	}
	if err := l.h.RemoveMember(ctx(t), q, others[1].name); err != nil {
		t.Fatalf("removing a non-member again: %v", err)
	}
	if err := l.h.RemoveMember(ctx(t), q, l.name); !errors.Is(err, ErrLastMember) {
		t.Fatalf("removing the last member: %v", err)
	}
	if got := members(t, l, q); !slices.Equal(got, []string{l.name}) {
		t.Fatalf("members after shrink %v", got)
	}
	if err := l.h.AddMember(ctx(t), q, "nope"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("adding an unknown node: %v", err)
	}
	for _, tn := range others {
		c.net.down(tn.h.Self())
	}
	writeLoad(t, c, q, 21, 120, others...)
	waitFor(t, "compaction", func() bool { return logFirst(l.st, q) > 40 })
	for _, tn := range others {
		c.start(tn)
		if err := l.h.AddMember(ctx(t), q, tn.name); err != nil {
			t.Fatal(err)
		}
	}
	want := queueState(t, l.st, q)
	for _, tn := range others {
		waitFor(t, tn.name+" catches up after the grow", func() bool { return queueState(t, tn.st, q) == want })
		if got := members(t, tn, q); len(got) != 3 {
			t.Fatalf("members after grow %v", got)
		}
	}
	c.net.down(l.h.Self())
	nl := c.leader(q, l)
	if got := queueState(t, nl.st, q); got != want {
		t.Fatalf("the new leader's queue differs")
	}
}

// A queue's initial group size picks its voters: the creating node first,
// then others; the rest of the nodes are learners, which define the queue
// and know its leader. Growing a learner makes it a voter.
func TestInitialGroupSize(t *testing.T) {
	c := newTestCluster(t, 4)
	q := NewQueueID()
	n1 := c.nodes[0]
	if got := n1.h.PickMembers(q, 0); got != nil {
		t.Fatalf("size 0 picks %v, want every node (nil)", got)
	}
	if got := n1.h.PickMembers(q, 4); got != nil {
		t.Fatalf("size 4 of 4 picks %v, want every node (nil)", got)
	}
	pick := n1.h.PickMembers(q, 2)
	if len(pick) != 2 || pick[0] != "n1" || pick[1] == "n1" {
		t.Fatalf("picked %v, want n1 and one other", pick)
	}
	if err := n1.h.CreateQueue(ctx(t), q, []byte("def"), pick); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(pick)
	slices.Sort(want)
	for _, tn := range c.nodes {
		waitFor(t, tn.name+" defines the queue", func() bool { return string(tn.rec.def(q)) == "def" })
		waitFor(t, tn.name+" knows the members and leader", func() bool {
			gs, _ := tn.h.QueueStatus(q)
			return slices.Equal(gs.Members, want) && gs.Leader == "n1"
		})
	}
	// The other member and n1 commit alone: the learners do not count.
	var learners []*testNode
	for _, tn := range c.nodes {
		if !slices.Contains(pick, tn.name) {
			learners = append(learners, tn)
			c.net.down(tn.h.Self())
		}
	}
	if err := n1.rs.Apply(put(q, 1), true); err != nil {
		t.Fatal(err)
	}
	c.start(learners[0])
	if err := learners[0].h.AddMember(ctx(t), q, learners[0].name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the grown node holds the write", func() bool {
		return slices.Equal(contents(t, learners[0].st, q), []string{"1=msg 1"})
	})
	if got := members(t, n1, q); len(got) != 3 || !slices.Contains(got, learners[0].name) {
		t.Fatalf("members after grow %v", got)
	}
	if err := n1.h.CreateQueue(ctx(t), NewQueueID(), nil, []string{"n2"}); err == nil {
		t.Fatal("creating a group without the creating node succeeded")
	}
}

// Queues all declared on one node end up led by every node: the busy
// leader hands leaderships on to members leading fewer.
func TestLeadersSpread(t *testing.T) {
	c := newTestCluster(t, 3)
	var qs []store.QueueID
	for range 6 {
		q := NewQueueID()
		if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	waitFor(t, "two groups led by each node", func() bool {
		leads := map[string]int{}
		for _, q := range qs {
			leads[c.leader(q).name]++
		}
		return leads["n1"] == 2 && leads["n2"] == 2 && leads["n3"] == 2
	})
}
