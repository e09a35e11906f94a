package cluster

// A member coming back to a quiet group. A quiet group's leader sends
// nothing, so a member that restarts — on an empty store above all, as a
// node whose disk was lost joins again — would hear of the group only at
// its next write: its lost store undetected (the heartbeat's commit
// beyond its log, host.go's step), its metadata missing meanwhile. So a
// host, once started, greets every other node once (a chunkHello frame,
// sent again each tick until one is queued), and a node greeted wakes the
// quiet groups it leads that have the greeter as a member: the
// heartbeats resume, the member is caught up (by the log, a snapshot, or
// the lost-store hand-over), and the group quiesces again once it is.

import "slices"

// greet sends a hello to the nodes not greeted yet (on the loop, each
// tick).
func (h *Host) greet() {
	if h.greeted == nil {
		h.greeted = make(map[uint64]bool)
	}
	for _, p := range h.roster().peers {
		if p.ID != h.self && !h.greeted[p.ID] {
			h.greeted[p.ID] = h.tr.SendChunk(p.ID, appendChunkHeader(nil, chunkHeader{kind: chunkHello}))
		}
	}
}

// helloFrom wakes the quiet groups led here that have from as a member
// (on the loop).
func (h *Host) helloFrom(from uint64) {
	for _, g := range h.groups {
		if g.quiet && g.leader && (slices.Contains(g.st.conf.GetVoters(), from) || slices.Contains(g.st.conf.GetLearners(), from)) {
			g.wake()
		}
	}
}
