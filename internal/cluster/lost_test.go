package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/tracker"

	"github.com/sluicemq/sluice/internal/store/memstore"
)

// leaderProgress runs fn on tn's loop with its raft status of group q,
// if tn leads it.
func leaderProgress(tn *testNode, q uint64, fn func(st *leaderView)) {
	tn.h.do(context.Background(), func() {
		g := tn.h.groups[q]
		if g == nil || !g.leader {
			return
		}
		st := g.rn.Status()
		fn(&leaderView{last: g.st.last(), transferee: st.LeadTransferee, progress: st.Progress})
	})
}

type leaderView struct {
	last, transferee uint64
	progress         map[uint64]tracker.Progress
}

// A leader whose one other member is down — its progress still says
// Replicate, as nothing told raft — while the third comes back on an
// empty store never hands its leadership to the down member (raft would
// refuse every write while that transfer is pending, again each election
// timeout). No other member can take over, so the leader stops hearing
// the lost one, steps down, and the next term starts the lost member
// afresh: it catches up by snapshot and the group takes writes again.
func TestLostMemberWithOtherDown(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.CompactEntries = 5 })
	q := NewQueueID()
	if err := c.nodes[0].h.CreateQueue(ctx(t), q, []byte("def"), nil); err != nil {
		t.Fatal(err)
	}
	l := c.leader(q)
	var followers []*testNode
	for _, tn := range c.nodes {
		if tn != l {
			followers = append(followers, tn)
		}
	}
	down, wiped := followers[0], followers[1]
	writeLoad(t, c, q, 1, 30)
	// Compacted: the lost member can only catch up by a snapshot.
	waitFor(t, "the leader compacts its log", func() bool { return logFirst(l.st, q) > 1 })
	waitFor(t, "both members replicate all of the log", func() bool {
		ok := false
		leaderProgress(l, uint64(q), func(v *leaderView) {
			ok = true
			for _, tn := range followers {
				pr := v.progress[tn.h.Self()]
				ok = ok && pr.State == tracker.StateReplicate && pr.Match == v.last
			}
		})
		return ok
	})
	c.net.down(down.h.Self())
	c.net.down(wiped.h.Self())
	wiped.st, wiped.join = memstore.New(), true
	c.start(wiped)

	var toDown atomic.Bool
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			for _, tn := range []*testNode{l, wiped} {
				leaderProgress(tn, uint64(q), func(v *leaderView) {
					if v.transferee == down.h.Self() {
						toDown.Store(true)
					}
				})
			}
		}
	}()
	writeLoad(t, c, q, 31, 60, down)
	nl := c.leader(q, down)
	want := queueState(t, nl.st, q)
	waitFor(t, wiped.name+" holds the leader's queue", func() bool { return queueState(t, wiped.st, q) == want })
	close(stop)
	<-watched
	if toDown.Load() {
		t.Fatal("a leader handed its leadership to the member that is down")
	}
}
