package cluster

// The host: every Raft group of this node, driven by one loop goroutine.
//
// The loop owns the groups' RawNodes and storages. It ticks them, steps
// the messages the transport delivers, proposes what callers hand it and,
// after each round of events, handles every group's Ready together: all
// groups' new entries and hard states go into one store batch applied with
// one fsync, then their messages are sent, then their committed entries
// are applied to the local store (one unsynced batch, with each group's
// applied index), then each group advances. Effects outside the loop —
// the handler's DefineQueue and Serving calls and the wake-up of waiting
// proposers — go in order to the notifier goroutine, so a handler may call
// back into the host (propose) without deadlocking the loop.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemq/sluice/internal/store"
)

// Errors a proposer may see. Neither says whether the entry was
// committed: a proposal that timed out or whose leader stepped down may
// still be applied later (at-least-once).
var (
	ErrNotLeader = errors.New("cluster: this node does not lead the queue's group")
	ErrNoGroup   = errors.New("cluster: no such group on this node")
	ErrTimeout   = errors.New("cluster: proposal not committed in time")
	ErrStopped   = errors.New("cluster: host stopped")
	// ErrTooLarge: the command would not fit the transport's frames
	// (Config.MaxMessageSize), so it is not proposed.
	ErrTooLarge = errors.New("cluster: write too large to replicate")
)

// Handler is what the host tells the broker. Calls come from the host's
// notifier goroutine, one at a time, in log order.
type Handler interface {
	// DefineQueue is called when a group's definition entry applies on
	// this node (again after a restart that replays it: it must be
	// idempotent).
	DefineQueue(id store.QueueID, def []byte) error
	// Serving says this node now leads the queue's group and has applied
	// every entry committed before its term (true), or no longer leads it
	// (false). Only a serving node's writes to the queue are accepted.
	Serving(id store.QueueID, serving bool)
	// QueueDeleted is called when a group's deletion entry applies on this
	// node, after the queue's messages are dropped from the local store
	// (idempotent, as DefineQueue).
	QueueDeleted(id store.QueueID)
}

// Transport carries Raft messages between nodes. Send must not block; it
// may drop messages (Raft retransmits). SendChunk sends a snapshot frame
// (snapshot.go) in order with the messages; it must not block either and
// reports whether the frame was queued. Keepalive, called every tick,
// sends every node a frame; Live reports whether a node has been heard
// from within about an election timeout (quiesce.go).
type Transport interface {
	Send(to uint64, group uint64, m *pb.Message)
	SendChunk(to uint64, data []byte) bool
	Keepalive()
	Live(to uint64) bool
}

// Config configures a Host.
type Config struct {
	Node  string            // this node's name
	Nodes map[string]string // every node's name and cluster address, this one's included
	// Join: this node joins a running cluster, whose member adds it
	// (AddNode); it does not start the cluster's node list with Nodes.
	// Once a node list is stored, it wins over Nodes (nodes.go).
	Join bool
	// Tick is Raft's logical clock period; ElectionTicks and
	// HeartbeatTicks count it.
	Tick           time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// CompactEntries is how many applied entries each member keeps in a
	// group's log when it compacts it (once twice as many are applied);
	// a member further behind its leader gets a snapshot.
	CompactEntries int
	// MaxMessageSize is the largest message body the broker takes
	// (--max-message-size; 0 for DefaultMaxMessageSize). The transport's
	// frames, and so the largest entry, are sized from it (transport.go).
	MaxMessageSize int64
	Logger         *slog.Logger
}

func DefaultConfig() Config {
	return Config{Tick: 100 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1, CompactEntries: 4096}
}

func (c Config) Validate() error {
	if c.Node == "" {
		return errors.New("cluster: no node name")
	}
	if _, ok := c.Nodes[c.Node]; !ok {
		return fmt.Errorf("cluster: node %q is not in the cluster list", c.Node)
	}
	if c.Tick <= 0 || c.ElectionTicks <= c.HeartbeatTicks || c.HeartbeatTicks <= 0 {
		return errors.New("cluster: need tick > 0 and election ticks > heartbeat ticks > 0")
	}
	if c.MaxMessageSize < 0 || frameLimit(c.MaxMessageSize) > math.MaxUint32 {
		return fmt.Errorf("cluster: max message size %d: a replicated message is at most %d bytes", c.MaxMessageSize, math.MaxUint32-frameEnvelope)
	}
	ids := make(map[uint64]string)
	for n := range c.Nodes {
		id := NodeID(n)
		if other, ok := ids[id]; ok {
			return fmt.Errorf("cluster: node names %q and %q hash to the same id", n, other)
		}
		ids[id] = n
	}
	return nil
}

// NodeID is the Raft id of a node: a hash of its name, so it is the same
// on every node and stays the same when the list is reordered.
func NodeID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// Host runs this node's groups. Its exported methods are safe for
// concurrent use.
type Host struct {
	cfg  Config
	self uint64
	st   store.Store
	log  *slog.Logger
	ros  atomic.Pointer[roster] // the nodes (nodes.go)

	tr      Transport
	handler Handler
	onNodes func(map[string]string) // set before Start (nodes.go)

	recv    chan inbound
	props   chan proposal
	ctrl    chan func()
	started chan struct{} // closed by Start, once tr and handler are set
	stop    chan struct{}
	wg      sync.WaitGroup

	notes *notifier

	leaders sync.Map // group id -> leader's node id, as last known (read without the loop)

	nextID  atomic.Uint64
	wmu     sync.Mutex
	waiters map[uint64]*waiter // guarded by wmu

	// Snapshot transfers (snapshot.go).
	snapMu    sync.Mutex
	snapSends map[snapKey]chan uint32 // outgoing, their acks; guarded by snapMu
	rxMu      sync.Mutex              // held while staging a chunk or starting an install
	rx        map[uint64]*snapRecv    // incoming by group; guarded by rxMu
	copying   map[uint64]bool         // groups whose stage is being copied; guarded by rxMu

	// Owned by the loop.
	groups     map[uint64]*group
	applied    []uint64 // ids of this node's proposals applied in this round
	afterReady []func() // run once the round's groups advanced
	// metaStaged: the metadata keys this round's entries wrote (nil:
	// deleted); metaMine: this node's metadata entries of the round
	// (meta.go).
	metaStaged map[string][]byte
	metaMine   []metaMine
	// metaRoute: the route given to ShareMeta, which says which metadata
	// keys the metadata group's snapshot carries (metasnap.go).
	metaRoute atomic.Pointer[func(store.Op) MetaRoute]
	// greeted: the nodes this one said hello to since it started (rejoin.go)
	greeted map[uint64]bool
}

type inbound struct {
	group uint64
	m     *pb.Message
	// quiesce, when m is nil: a leader's quiesce frame from node from,
	// delivered in order with its messages (quiesce.go)
	quiesce []byte
	from    uint64
}

type proposal struct {
	group uint64
	data  []byte
	id    uint64
}

type waiter struct {
	group uint64
	done  chan error // buffered 1
}

// group is one Raft group, owned by the loop.
type group struct {
	id      uint64
	rn      *raft.RawNode
	st      *groupStorage
	listed  bool   // its key under groupsPrefix is written
	leader  bool   // raft state is leader
	term    uint64 // the term it leads in
	serving bool   // told the handler it serves (leader, term's first entry applied)
	lead    uint64 // the leader as last known
	// campaign: bootstrapped here, to campaign once its membership applies
	campaign bool
	// defined: its queue's definition applied here since the start
	defined bool
	// lostAt: when a member last reported it lost the group (snapshot.go)
	lostAt time.Time
	// quiet: not ticking (quiesce.go); idle: ticks it had nothing to do
	quiet bool
	idle  int
	// installing: a snapshot's stage is being copied off the loop; the
	// group takes no Ready until it ends, then held (the snapshot's
	// Ready) goes on, or installErr stops the loop (snapshot.go).
	installing  bool
	held        *raft.Ready
	installErr  error
	installKeys []string // the metadata group's: the keys the install dropped (metasnap.go)
}

// New opens the host's groups from st (the node's local store). The host
// does nothing until Start.
func New(cfg Config, st store.Store) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Host{
		cfg: cfg, self: NodeID(cfg.Node), st: st, log: log,
		recv: make(chan inbound, 4096), props: make(chan proposal, 4096), ctrl: make(chan func(), 64),
		started: make(chan struct{}), stop: make(chan struct{}), waiters: make(map[uint64]*waiter), groups: make(map[uint64]*group),
		snapSends: make(map[snapKey]chan uint32), rx: make(map[uint64]*snapRecv),
		copying: make(map[uint64]bool),
	}
	// Proposal ids start from the clock so that an entry this node
	// proposed before a restart, applied again on replay, never completes
	// a new proposal's waiter.
	h.nextID.Store(uint64(time.Now().UnixNano()))
	if err := h.loadRoster(); err != nil { // nodes.go
		return nil, err
	}
	var ids []uint64
	err := st.ScanMeta(groupsPrefix, func(key string, _ []byte) bool {
		var id uint64
		if _, err := fmt.Sscanf(key[len(groupsPrefix):], "%x", &id); err == nil {
			ids = append(ids, id)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("open cluster host: list groups: %w", err)
	}
	for _, id := range ids {
		if err := h.resumeInstall(id); err != nil {
			return nil, fmt.Errorf("open group %x: %w", id, err)
		}
		g, err := h.openGroup(id)
		if err != nil {
			return nil, err
		}
		g.listed = true
		h.groups[id] = g
	}
	if err := h.startNodesGroup(); err != nil { // nodes.go
		return nil, err
	}
	if err := h.openMeta(); err != nil { // meta.go
		return nil, err
	}
	return h, nil
}

// Leader returns the name of the node leading a replicated queue's group
// as this node last heard ("" when unknown).
func (h *Host) Leader(id store.QueueID) string {
	v, ok := h.leaders.Load(uint64(id))
	if !ok {
		return ""
	}
	return h.Name(v.(uint64))
}

// Self returns this node's Raft id.
func (h *Host) Self() uint64 { return h.self }

// Name returns the name of a node id ("" when unknown).
func (h *Host) Name(id uint64) string { return h.roster().names[id] }

func (h *Host) openGroup(id uint64) (*group, error) {
	gs, err := openStorage(h.st, id)
	if err != nil {
		return nil, err
	}
	applied, err := loadApplied(h.st, id)
	if err != nil {
		return nil, err
	}
	gs.applied = applied
	rn, err := raft.NewRawNode(&raft.Config{
		ID: h.self, ElectionTick: h.cfg.ElectionTicks, HeartbeatTick: h.cfg.HeartbeatTicks,
		Storage: gs, Applied: applied,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum: true, PreVote: true, StepDownOnRemoval: true,
		// Followers' proposals are forwarded to the leader; propose lets
		// only definitions through from a follower.
		Logger: raftLogger{h.log.With("group", fmt.Sprintf("%x", id))},
	})
	if err != nil {
		return nil, fmt.Errorf("open group %x: %w", id, err)
	}
	return &group{id: id, rn: rn, st: gs}, nil
}

// Start runs the host: the loop and the notifier. tr carries messages to
// the other nodes; handler hears of definitions and leadership.
func (h *Host) Start(tr Transport, handler Handler) {
	h.tr, h.handler = tr, handler
	h.notes = newNotifier()
	close(h.started)
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.notes.run(h.stop) }()
	go func() { defer h.wg.Done(); h.run() }()
}

// Stop ends the loop and the notifier and fails the waiting proposals.
// The transport is the caller's to close (after Stop).
func (h *Host) Stop() {
	close(h.stop)
	h.wg.Wait()
	h.wmu.Lock()
	for id, w := range h.waiters {
		w.done <- ErrStopped
		delete(h.waiters, id)
	}
	h.wmu.Unlock()
}

// Deliver hands the host a message received from another node. It blocks
// while the loop is behind (backpressure on the connection).
func (h *Host) Deliver(group uint64, m *pb.Message) {
	select {
	case h.recv <- inbound{group: group, m: m}:
	case <-h.stop:
	}
}

// do runs fn on the loop and waits for it.
func (h *Host) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case h.ctrl <- func() { fn(); close(done) }:
	case <-h.stop:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-h.stop:
		return ErrStopped
	}
}

func (h *Host) run() {
	t := time.NewTicker(h.cfg.Tick)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			ticks++
			h.tr.Keepalive()
			h.greet() // rejoin.go
			for _, g := range h.groups {
				h.tickGroup(g) // quiesce.go
				if ticks%compactEvery == 0 {
					if err := h.maybeCompact(g); err != nil {
						h.log.Error("cluster: compact a raft log; stopping the raft loop", "err", err)
						h.failAll(err)
						<-h.stop
						return
					}
				}
			}
			if ticks%spreadEvery == 0 {
				h.maybeSpread() // spread.go
			}
		case in := <-h.recv:
			h.step(in)
		case p := <-h.props:
			h.propose(p)
		case fn := <-h.ctrl:
			fn()
		}
		// Take whatever else is waiting, so one Ready round (one fsync)
		// covers as much as possible.
	drain:
		for range 1024 {
			select {
			case in := <-h.recv:
				h.step(in)
			case p := <-h.props:
				h.propose(p)
			default:
				break drain
			}
		}
		if err := h.handleReady(); err != nil {
			// A store that cannot write makes this node unable to take
			// part; raft must not advance past what is not durable.
			h.log.Error("cluster: persist raft state; stopping the raft loop", "err", err)
			h.failAll(err)
			<-h.stop
			return
		}
		for _, fn := range h.afterReady {
			fn()
		}
		h.afterReady = h.afterReady[:0]
	}
}

const (
	// compactEvery is how many ticks apart a member looks at compacting
	// its group's log.
	compactEvery = 50
)

// maybeCompact drops a group's log below its applied index, keeping the
// last CompactEntries applied entries for members slightly behind. Every
// member compacts its own log, whether or not the others have the
// entries: a member behind the leader's first index gets a snapshot.
// The metadata group's log is compacted alike once ShareMeta said which
// keys its snapshot carries (metasnap.go); before, it is kept whole.
func (h *Host) maybeCompact(g *group) error {
	keep := uint64(h.cfg.CompactEntries)
	if g.id == MetaGroup && h.metaRoute.Load() == nil || g.st.applied < g.st.first+2*keep {
		return nil
	}
	var b store.Batch
	g.st.stageCompact(&b, g.st.applied-keep)
	return h.st.Apply(&b, false)
}

func (h *Host) step(in inbound) {
	if in.m == nil {
		h.quiesceFrom(in.group, in.from, in.quiesce)
		return
	}
	g := h.groups[in.group]
	if g == nil {
		// A group this node has not heard of: another node created it
		// with this one as a member. Join with an empty log; the leader
		// sends the log from its first entry, membership included.
		switch in.m.GetType() {
		case pb.MsgApp, pb.MsgHeartbeat, pb.MsgVote, pb.MsgPreVote, pb.MsgSnap:
		default:
			return
		}
		var err error
		if g, err = h.openGroup(in.group); err != nil {
			h.log.Error("cluster: create group", "group", in.group, "err", err)
			return
		}
		h.groups[in.group] = g
	}
	if in.m.GetType() == pb.MsgHeartbeat && in.m.GetCommit() > g.st.last() {
		// The leader commits to this node what it saw the node hold
		// (min of its match and the commit), and it sees the node hold
		// only what the node acked after writing it: more than the
		// node's log holds means the node lost its store. Raft would
		// panic; the leader is told, and hands its leadership on to one
		// that starts this member afresh (memberLost, snapshot.go).
		h.tr.SendChunk(in.m.GetFrom(), appendChunkHeader(nil, chunkHeader{kind: chunkLost, group: in.group}))
		return
	}
	if g.quiet && !(g.leader && in.m.GetType() == pb.MsgHeartbeatResp) {
		// Any message wakes a quiet group, but a quiet leader's late
		// heartbeat answers (quiesce.go).
		g.wake()
	}
	if err := g.rn.Step(in.m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		h.log.Debug("cluster: step", "group", in.group, "err", err)
	}
}

func (h *Host) propose(p proposal) {
	g := h.groups[p.group]
	if g == nil {
		h.finish(p.id, ErrNoGroup)
		return
	}
	// Only the serving leader's broker writes a queue (it assigns the
	// seqs): its raft state is checked too, since a Step may have demoted
	// it since the last Ready, and Raft would forward the write. A
	// definition may come from any member (a queue declared again on a
	// follower after its deletion): Raft forwards it to the leader.
	g.wake()
	if k := cmdKind(p.data[0]); k != cmdDefine && k != cmdNodes && k != cmdNodeChange && k != cmdMeta && (!g.leader || g.rn.BasicStatus().RaftState != raft.StateLeader) {
		h.finish(p.id, ErrNotLeader)
		return
	}
	if err := g.rn.Propose(p.data); err != nil {
		h.finish(p.id, fmt.Errorf("%w: %v", ErrNotLeader, err))
	}
}

// finish completes a waiter now (from the loop, for a proposal that never
// entered the log); it reports whether one was waiting.
func (h *Host) finish(id uint64, err error) bool {
	h.wmu.Lock()
	w := h.waiters[id]
	delete(h.waiters, id)
	h.wmu.Unlock()
	if w != nil {
		w.done <- err
	}
	return w != nil
}

func (h *Host) failAll(err error) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	for id, w := range h.waiters {
		w.done <- err
		delete(h.waiters, id)
	}
}

// failGroup fails the waiters of a group whose leadership this node lost.
func (h *Host) failGroup(group uint64) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	for id, w := range h.waiters {
		if w.group == group {
			w.done <- ErrNotLeader
			delete(h.waiters, id)
		}
	}
}

type ready struct {
	g    *group
	rd   raft.Ready
	sent bool // its messages went out before the fsync
}

func (h *Host) send(g *group, msgs []*pb.Message) {
	for _, m := range msgs {
		if m.GetType() == pb.MsgSnap {
			h.sendSnapshot(g.id, m)
			continue
		}
		h.tr.Send(m.GetTo(), g.id, m)
	}
}

// leads reports whether g is leader as of rd.
func leads(g *group, rd raft.Ready) bool {
	if rd.SoftState != nil {
		return rd.SoftState.RaftState == raft.StateLeader
	}
	return g.leader
}

func (h *Host) handleReady() error {
	var rds []ready
	var persist store.Batch
	var notes []func()
	for _, g := range h.groups {
		var rd raft.Ready
		switch {
		case g.installing:
			continue // its held Ready goes on once the copy ends
		case g.installErr != nil:
			return g.installErr
		case g.held != nil:
			// The snapshot is installed: its Ready's entries, hard state,
			// messages and commits go on, before any later ones.
			rd, g.held = *g.held, nil
			n, err := h.installedNotes(g)
			if err != nil {
				return err
			}
			notes = append(notes, n...)
		case g.rn.HasReady():
			rd = g.rn.Ready()
			if !raft.IsEmptySnap(rd.Snapshot) {
				// Installed before the entries that follow it; the copy
				// runs off the loop and the Ready waits for it.
				if err := h.installSnapshot(g, rd); err != nil {
					return err
				}
				continue
			}
		default:
			continue
		}
		early := false
		if leads(g, rd) && (rd.HardState == nil ||
			rd.HardState.GetTerm() == g.st.hard.GetTerm() && rd.HardState.GetVote() == g.st.hard.GetVote()) {
			// A leader whose term and vote are already durable sends its
			// appends while it writes its own log (Raft thesis §10.2.1):
			// an entry counts towards commit only once a majority,
			// this node included only after its fsync, has it.
			early = true
			h.send(g, rd.Messages)
		}
		if err := g.st.stage(&persist, rd.Entries, rd.HardState); err != nil {
			return err
		}
		if !g.listed {
			persist.PutMeta(groupListKey(g.id), nil)
			g.listed = true
		}
		rds = append(rds, ready{g, rd, early})
	}
	if len(rds) == 0 {
		return nil
	}
	if persist.Len() > 0 {
		// One fsync for every group's entries and hard state.
		if err := h.st.Apply(&persist, true); err != nil {
			return err
		}
	}
	for _, r := range rds {
		if !r.sent {
			h.send(r.g, r.rd.Messages)
		}
	}
	var applied store.Batch
	for _, r := range rds {
		n, err := h.apply(r.g, r.rd, &applied)
		if err != nil {
			return err
		}
		notes = append(notes, n...)
	}
	if applied.Len() > 0 {
		if err := h.st.Apply(&applied, false); err != nil {
			return err
		}
	}
	// Proposers wake up here, not on the notifier: a handler call may
	// itself wait for a proposal. What they wrote is in the local store.
	for _, id := range h.applied {
		h.finish(id, nil)
	}
	h.applied = h.applied[:0]
	notes = append(notes, h.finishMeta()...) // meta.go
	h.notes.push(notes)
	for _, r := range rds {
		if r.g.campaign {
			// A bootstrapped group campaigns once its membership is
			// applied (raft refuses before), not after an election timeout.
			r.g.campaign = false
			defer r.g.rn.Campaign()
		}
	}
	for _, r := range rds {
		r.g.rn.Advance(r.rd)
	}
	return nil
}

// apply stages a Ready's committed entries and leadership change; it
// returns what to tell the handler and the waiters once staged is applied.
func (h *Host) apply(g *group, rd raft.Ready, staged *store.Batch) ([]func(), error) {
	var notes []func()
	if ss := rd.SoftState; ss != nil {
		if ss.Lead != g.lead {
			notes = append(notes, h.leaderNote(g.id, ss.Lead)) // remote.go
		}
		g.lead = ss.Lead
		h.leaders.Store(g.id, ss.Lead)
		isLeader := ss.RaftState == raft.StateLeader
		if isLeader && !g.leader {
			g.term = g.rn.BasicStatus().GetTerm()
		}
		if !isLeader && g.leader {
			h.failGroup(g.id)
			if g.serving {
				g.serving = false
				notes = append(notes, h.servingNote(g.id, false))
			}
		}
		g.leader = isLeader
	}
	var last uint64
	for _, e := range rd.CommittedEntries {
		last = e.GetIndex()
		switch e.GetType() {
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			cc, err := decodeConfChange(e)
			if err != nil {
				return nil, fmt.Errorf("%w: group %x conf change %d: %v", store.ErrCorrupt, g.id, last, err)
			}
			if err := g.st.stageConf(staged, g.rn.ApplyConfChange(cc)); err != nil {
				return nil, err
			}
		case pb.EntryNormal:
			if len(e.GetData()) > 0 {
				n, err := h.applyCommand(g, e, staged)
				if err != nil {
					return nil, err
				}
				notes = append(notes, n...)
			}
		}
		if g.leader && !g.serving && e.GetTerm() == g.term {
			// The first entry of our term is applied, so is everything
			// committed before it: the queue's state here is complete.
			// A new group's definition may not be applied yet: applying
			// it tells the handler (cmdDefine), which knows no queue
			// before.
			g.serving = true
			if h.hasDefinition(g) {
				notes = append(notes, h.servingNote(g.id, true))
			}
		}
	}
	if last > 0 {
		stageApplied(staged, g.id, last)
		g.st.applied = last
	}
	return notes, nil
}

func decodeConfChange(e *pb.Entry) (pb.ConfChangeI, error) {
	if e.GetType() == pb.EntryConfChange {
		var cc pb.ConfChange
		return &cc, proto.Unmarshal(e.GetData(), &cc)
	}
	var cc pb.ConfChangeV2
	return &cc, proto.Unmarshal(e.GetData(), &cc)
}

func (h *Host) applyCommand(g *group, e *pb.Entry, staged *store.Batch) ([]func(), error) {
	c, err := decodeCommand(e.GetData())
	if err != nil {
		return nil, fmt.Errorf("group %x entry %d: %w", g.id, e.GetIndex(), err)
	}
	var notes []func()
	switch c.kind {
	case cmdOps:
		ops, err := decodeOps(c.body, store.QueueID(g.id))
		if err != nil {
			return nil, fmt.Errorf("group %x entry %d: %w", g.id, e.GetIndex(), err)
		}
		staged.Ops = append(staged.Ops, ops...)
	case cmdDefine:
		g.defined = true
		def := c.body
		// Kept for the group's snapshot.
		staged.PutMeta(groupKey(g.id, "def"), def)
		id := store.QueueID(g.id)
		notes = append(notes, func() {
			if err := h.handler.DefineQueue(id, def); err != nil {
				h.log.Error("cluster: define queue", "group", fmt.Sprintf("%x", g.id), "err", err)
			}
		})
		if g.serving {
			// The leader began serving before the queue existed here.
			notes = append(notes, h.servingNote(g.id, true))
		}
	case cmdDelete:
		g.defined = false
		id := store.QueueID(g.id)
		var drop store.Batch
		drop.DropQueue(id)
		drop.DeleteMeta(groupKey(g.id, "def"))
		staged.Ops = append(staged.Ops, drop.Ops...)
		notes = append(notes, func() { h.handler.QueueDeleted(id) })
	case cmdNodes:
		if g.id != nodesGroup {
			return nil, fmt.Errorf("%w: group %x entry %d: a node list outside the nodes group", errBadCommand, g.id, e.GetIndex())
		}
		n, err := h.applyNodes(c.body, staged)
		if err != nil {
			return nil, fmt.Errorf("group %x entry %d: %w", g.id, e.GetIndex(), err)
		}
		notes = append(notes, n)
	case cmdNodeChange:
		if g.id != nodesGroup {
			return nil, fmt.Errorf("%w: group %x entry %d: a node list change outside the nodes group", errBadCommand, g.id, e.GetIndex())
		}
		n, err := h.applyNodeChange(c.body, staged)
		if err != nil {
			return nil, fmt.Errorf("group %x entry %d: %w", g.id, e.GetIndex(), err)
		}
		notes = append(notes, n)
	case cmdMeta:
		if g.id != MetaGroup {
			return nil, fmt.Errorf("%w: group %x entry %d: metadata outside the metadata group", errBadCommand, g.id, e.GetIndex())
		}
		n, err := h.applyMeta(c, staged) // meta.go: it wakes its own proposer
		if err != nil {
			return nil, fmt.Errorf("group %x entry %d: %w", g.id, e.GetIndex(), err)
		}
		return n, nil
	case cmdCompact:
		if len(c.body) != 8 {
			return nil, fmt.Errorf("%w: group %x entry %d: compaction of %d bytes", errBadCommand, g.id, e.GetIndex(), len(c.body))
		}
		g.st.stageCompact(staged, min(binary.BigEndian.Uint64(c.body), e.GetIndex()))
	default:
		// A command of a newer version: skipped the same way everywhere.
		h.log.Warn("cluster: unknown command", "group", fmt.Sprintf("%x", g.id), "kind", c.kind)
	}
	if c.proposer == h.self {
		h.applied = append(h.applied, c.id)
	}
	return notes, nil
}

// hasDefinition reports whether a group's queue definition is applied
// here: in this run, or stored before it (a read error says yes, so the
// handler is told rather than not).
func (h *Host) hasDefinition(g *group) bool {
	if g.defined {
		return true
	}
	_, err := h.st.GetMeta(groupKey(g.id, "def"))
	return !errors.Is(err, store.ErrNotFound)
}

func (h *Host) servingNote(group uint64, serving bool) func() {
	if group == nodesGroup || group == MetaGroup {
		return func() {} // not a queue
	}
	return func() { h.handler.Serving(store.QueueID(group), serving) }
}

// leadCounts counts the queue groups each node leads, as this node knows.
func (h *Host) leadCounts() map[uint64]int {
	leads := make(map[uint64]int)
	h.leaders.Range(func(k, v any) bool {
		if k.(uint64) != nodesGroup && k.(uint64) != MetaGroup {
			leads[v.(uint64)]++
		}
		return true
	})
	return leads
}

// proposeCmd replicates a command in a group this node leads and waits
// until it is committed and applied here.
func (h *Host) proposeCmd(ctx context.Context, group uint64, kind cmdKind, body []byte) error {
	return h.await(ctx, h.submit(ctx, group, kind, body))
}

// submit hands a command to the loop; commands submitted one after the
// other by one goroutine enter the log in that order. await waits for it.
func (h *Host) submit(ctx context.Context, group uint64, kind cmdKind, body []byte) pending {
	id := h.nextID.Add(1)
	data := appendCommand(make([]byte, 0, cmdHeaderLen+len(body)), command{kind: kind, proposer: h.self, id: id, body: body})
	w := &waiter{group: group, done: make(chan error, 1)}
	h.wmu.Lock()
	h.waiters[id] = w
	h.wmu.Unlock()
	if len(data) > h.maxEntry() {
		h.finish(id, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), h.maxEntry()))
		return pending{id, w}
	}
	select {
	case h.props <- proposal{group: group, data: data, id: id}:
	case <-h.stop:
		h.finish(id, ErrStopped)
	case <-ctx.Done():
		h.finish(id, ErrTimeout)
	}
	return pending{id, w}
}

// submitNoWait hands a command to the loop with no one waiting for it:
// proposal id 0 has no waiter.
func (h *Host) submitNoWait(group uint64, kind cmdKind, body []byte) {
	data := appendCommand(make([]byte, 0, cmdHeaderLen+len(body)), command{kind: kind, proposer: h.self, body: body})
	if len(data) > h.maxEntry() {
		h.log.Error("cluster: write too large to replicate; dropped", "group", fmt.Sprintf("%x", group), "len", len(data), "limit", h.maxEntry())
		return
	}
	select {
	case h.props <- proposal{group: group, data: data}:
	case <-h.stop:
	}
}

// maxEntry is the largest command the host proposes: one that, alone in
// an append or a snapshot chunk, fits the transport's frames with room for
// the Raft message around it.
func (h *Host) maxEntry() int {
	return int(frameLimit(h.cfg.MaxMessageSize) - frameEnvelope/2)
}

type pending struct {
	id uint64
	w  *waiter
}

func (h *Host) await(ctx context.Context, p pending) error {
	select {
	case err := <-p.w.done:
		return err
	case <-ctx.Done():
		h.finish(p.id, ErrTimeout)
		return <-p.w.done
	}
}

// barrier waits until the notifier has run everything queued before it.
func (h *Host) barrier(ctx context.Context) error {
	done := make(chan struct{})
	h.notes.push([]func(){func() { close(done) }})
	select {
	case <-done:
		return nil
	case <-h.stop:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notifier runs the host's effects outside the loop, in order.
type notifier struct {
	mu   sync.Mutex
	q    []func()
	wake chan struct{}
}

func newNotifier() *notifier { return &notifier{wake: make(chan struct{}, 1)} }

func (n *notifier) push(fns []func()) {
	if len(fns) == 0 {
		return
	}
	n.mu.Lock()
	n.q = append(n.q, fns...)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-n.wake:
		}
		for {
			n.mu.Lock()
			q := n.q
			n.q = nil
			n.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, fn := range q {
				fn()
			}
		}
	}
}

// raftLogger sends etcd-io/raft's log lines to slog.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
