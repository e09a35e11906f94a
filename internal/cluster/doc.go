// Package cluster replicates quorum queues and the shared metadata over
// etcd-io/raft: one Raft group per replicated queue and one metadata
// group, all of a node's groups driven by one Host whose logs live in the
// node's store, and the TCP transport between nodes.
//
// # The replicated state machine
//
// A replicated queue's state is what the node's store holds for its queue
// id: message records, index entries, per-message states, its floor. Every
// write to it is a log entry of the queue's group carrying the store
// operations (codec.go), and applying an entry applies those operations to
// the member's local store: deterministic by construction (no clock, no
// randomness; times travel inside the records). The first data entry of a
// group is the queue's definition, which each member hands to its broker
// (Handler.DefineQueue). Only the leader's broker serves a queue and
// writes it (it assigns the seqs); it starts once it has applied every
// entry committed before its term (Handler.Serving), by rebuilding the
// queue from its local store as a restart does.
//
// Store (replicated.go) is the store.Store the broker writes through: a
// batch's operations on replicated queues are proposed to their groups and
// waited for (synced writes), the rest goes to the local store. A synced
// write that returned without error was fsynced by a majority of the
// group's members.
//
// # The metadata group
//
// One more group, MetaGroup, over every node (meta.go), bootstrapped by
// each first node's New with the same membership (a node that joins a
// running cluster is made a voter by AddNode). Its entries (cmdMeta) are the
// shared metadata writes of the nodes' brokers: Store routes a batch's
// metadata ops as the route given to ShareMeta says (cmd/sluice derives
// it from records.SharingOf) once the host has started, proposes them from
// any node (Raft forwards a follower's proposal), proposes again after a
// lost attempt and waits for the commit. Every member applies them to its
// local store; a MetaCreate op applies only where its key is absent or
// holds the same value, decided at apply from the store and the round's
// earlier entries, so every member decides alike. The broker hears of the
// entries it did not make itself (MetaHandler), and of its own creations
// that lost. Its log is compacted like a queue group's once ShareMeta
// gave the route; its snapshot is the shared metadata keys of the store
// (metasnap.go), so a member with an empty store catches up by the log or
// a snapshot.
//
// Forwarding (forward.go): a broker-level request from one node to
// another on the same connection, and its reply with a body (a publish,
// get, consume or purge of a queue led elsewhere). Messages (remote.go):
// one-way broker-level frames on that connection (a remote consumer's
// deliveries and acks), with PeerDown when a connection ends; a
// LeaderWatcher handler hears every leader change.
//
// Snapshots (snapshot.go): every member compacts its own log below its
// applied index, keeping CompactEntries entries; a member behind its
// leader's first index gets the queue's state streamed in bounded chunks
// on the same connection and installs it atomically, then follows the
// log. A member that lost its store is started from nothing by a leader
// that hands leadership on (memberLost).
//
// Membership (members.go): a queue's voters are chosen at creation
// (PickMembers) and settled through the metadata group when they are not
// every node (placement.go: the first choice in its log wins), the other
// nodes are learners; any member grows (adds or
// promotes) or shrinks (demotes to learner) a voter with one raft
// ConfChange at a time; a new member catches up by the log or a snapshot.
// The node list (nodes.go) is one more group, over all nodes, whose
// entries add or remove one node, in log order; AddNode and RemoveNode
// change it at run time, and the stored list wins over Config.Nodes at start.
//
// Leaders spread (spread.go): a node leading two or more groups than a
// caught-up voter transfers leadership to it. Idle groups quiesce
// (quiesce.go): no ticks and no heartbeats until something happens, with
// one keepalive per node pair per tick telling which nodes are live; a
// started node greets the others once, which wakes the quiet groups
// they lead with it as a member (rejoin.go), so a restarted or wiped
// member is caught up without waiting for a write.
//
// # Layout in the store
//
//	queue logQueue(g) (1<<62 | g), seq = index  -> a raftpb.Entry
//	queue stageQueue(g) (3<<62 | g)              -> an incoming snapshot's messages and states
//	meta cluster/g/<g>/hard                       -> raftpb.HardState
//	meta cluster/g/<g>/conf                       -> raftpb.ConfState
//	meta cluster/g/<g>/applied                    -> u64, written with the applied ops
//	meta cluster/g/<g>/trunc                      -> u64 index, u64 term of the entry before the first
//	meta cluster/g/<g>/def                        -> the queue's definition as last applied (for snapshots);
//	                                                 for the nodes group (g = 1<<61), the node list
//	meta cluster/g/<g>/stage/{def,floor,d/<due><seq>,done} -> an incoming snapshot's rest; done: u64 index, u64 term
//	meta cluster/g/<g>/install                    -> present while a snapshot is copied from the stage
//	meta cluster/groups/<g>                       -> the groups this node hosts
//	meta cluster/place/<g>                        -> a queue's first voters, written by the metadata group
//
// The metadata group is g = MetaGroup (1<<60): its log is queue
// logQueue(1<<60), its applied entries' keys are the broker's own
// metadata keys (records.SharingOf), written in place in the meta
// keyspace; an incoming snapshot's keys are staged under
// cluster/g/<g>/stage/m/<key>.
//
// Old logs may hold cmdCompact entries (a leader-proposed compaction of
// an earlier version); they still apply.
//
// # Goroutines
//
// Host owns two: the loop, which owns every RawNode and storage (and
// sends the keepalives each tick), and the
// notifier, which runs the loop's effects (handler calls, proposer
// wake-ups) in order, outside the loop; one per outgoing snapshot
// transfer (at most maxSnapSends), and one per snapshot being installed
// (it copies the stage into the queue off the loop). TCPTransport owns a listener
// goroutine and, per peer, a reader and a writer. Start starts them; Stop
// and Close stop and wait for them.
//
// # Dependencies
//
// cluster imports store only; the broker never imports cluster. cmd/sluice
// hands the broker the cluster's Store and a narrow interface for quorum
// queue declarations and status, and hands the host the broker as its
// Handler.
package cluster
