package cluster

// Leader spreading: a node that leads more than its share of the groups
// hands one of them to a member that leads fewer, every spreadEvery
// ticks, so that leaders spread over the nodes when a node joins, comes
// back after a failover, or when many queues were declared on one node.

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// spreadEvery is how many ticks apart a node looks at its share (with
// 100 ms ticks, 10 s: long after an election settles).
const spreadEvery = 100

// maybeSpread transfers the leadership of groups this node leads to
// voters that lead at least two groups fewer (so that a transfer never
// just moves the imbalance) and are up to date with the log, until no
// such voter is left. On the loop.
func (h *Host) maybeSpread() {
	leads := h.leadCounts()
	for _, g := range h.groups {
		if !g.serving || g.id == nodesGroup || g.id == MetaGroup || leads[h.self] < 2 {
			continue
		}
		st := g.rn.Status()
		if st.LeadTransferee != raft.None {
			continue
		}
		to := uint64(0)
		for id := range st.Config.Voters.IDs() {
			pr, ok := st.Progress[id]
			// Replicating and holding everything committed: it answers
			// (RecentActive would not do: CheckQuorum clears it every
			// election timeout, and this runs on a multiple of it).
			if id == h.self || !ok || pr.State != tracker.StateReplicate || pr.Match < st.GetCommit() {
				continue
			}
			if leads[id] <= leads[h.self]-2 && (to == 0 || leads[id] < leads[to]) {
				to = id
			}
		}
		if to == 0 {
			continue
		}
		h.log.Info("cluster: handing a group's leadership on to spread leaders",
			"group", fmt.Sprintf("%x", g.id), "to", h.Name(to), "leads", leads[h.self], "they lead", leads[to])
		g.wake()
		g.rn.TransferLeader(to)
		leads[h.self]--
		leads[to]++
	}
}
