package cluster

// Quiescence: a group with nothing to do stops ticking, so an idle queue
// costs no heartbeats. Its leader quiesces it once every member has held
// and applied everything committed for an election timeout; it tells the
// members (a chunkQuiesce frame, snapshot.go's channel), which stop
// ticking too if they agree on the leader, term and commit. Anything
// that happens to the group wakes it where it happens: a message stepped
// (a member wakes on the leader's next append or heartbeat), a proposal,
// a membership change, a leadership transfer. A quiet member whose
// leader's node stops answering wakes and, after an election timeout,
// campaigns; a quiet leader that loses touch with a quorum wakes, and
// CheckQuorum steps it down. The transport's keepalive, one frame per
// node pair per tick whatever the number of groups, sent from the loop,
// says which nodes answer (Transport.Live).

import (
	"encoding/binary"

	"go.etcd.io/raft/v3/tracker"
)

// wake makes a quiet group tick again.
func (g *group) wake() {
	g.quiet = false
	g.idle = 0
}

// tickGroup ticks a group unless it is quiet, and quiesces it when idle.
func (h *Host) tickGroup(g *group) {
	if g.quiet {
		if g.leader && h.quorumLive(g) || !g.leader && h.tr.Live(g.lead) {
			return
		}
		// The leader's node went away, or a leader lost touch with a
		// quorum: awake, raft's election timeout or CheckQuorum acts.
		g.wake()
	}
	g.rn.Tick()
	h.maybeQuiesce(g)
}

// quorumLive reports whether a majority of a group's voters, this node
// included, are live.
func (h *Host) quorumLive(g *group) bool {
	voters := g.st.conf.GetVoters()
	live := 0
	for _, v := range voters {
		if v == h.self || h.tr.Live(v) {
			live++
		}
	}
	return live > len(voters)/2
}

func (h *Host) maybeQuiesce(g *group) {
	if !g.serving {
		g.idle = 0
		return
	}
	st := g.rn.Status()
	commit := st.GetCommit()
	// A member that lost the group has a progress claiming what it held:
	// the group stays awake until a new term starts it afresh.
	busy := st.LeadTransferee != 0 || st.Applied != commit || len(st.Progress) == 0 || g.hasLost(st.GetTerm())
	for _, pr := range st.Progress {
		busy = busy || pr.Match != commit || pr.State != tracker.StateReplicate || pr.IsPaused()
	}
	if busy {
		g.idle = 0
		return
	}
	if g.idle++; g.idle < h.cfg.ElectionTicks {
		return
	}
	body := binary.BigEndian.AppendUint64(nil, st.GetTerm())
	body = binary.BigEndian.AppendUint64(body, commit)
	frame := append(appendChunkHeader(nil, chunkHeader{kind: chunkQuiesce, group: g.id, index: commit}), body...)
	var to []uint64
	for id := range st.Progress {
		if id != h.self {
			to = append(to, id)
		}
	}
	// After this round's messages (the tick's heartbeats): a heartbeat
	// arriving after the frame would wake the member.
	h.afterReady = append(h.afterReady, func() {
		for _, id := range to {
			h.tr.SendChunk(id, frame)
		}
	})
	g.quiet = true
}

// quiesceFrom handles a leader's quiesce frame (on the loop): the member
// goes quiet if it follows that leader in that term and has applied the
// commit; otherwise it stays awake (and the leader's next message would
// wake it anyway).
func (h *Host) quiesceFrom(group, from uint64, body []byte) {
	g := h.groups[group]
	if g == nil || g.leader || len(body) != 16 {
		return
	}
	term, commit := binary.BigEndian.Uint64(body), binary.BigEndian.Uint64(body[8:])
	bs := g.rn.BasicStatus()
	if bs.Lead != from || bs.GetTerm() != term || bs.GetCommit() != commit || bs.Applied != commit {
		return
	}
	g.quiet = true
}
