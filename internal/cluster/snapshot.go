package cluster

// Snapshots: a member whose log is behind its leader's first index (it
// was down while the leader compacted, or its store was lost) gets the
// queue's state instead of the entries.
//
// A group's snapshot (groupStorage.Snapshot) is raft metadata only: the
// applied index, its term and the conf state. When raft hands the host a
// MsgSnap to send, the host does not send it as is: a sender goroutine
// reads the queue's state from the local store — its definition, floor,
// message records with their index entries, per-message states and delay
// entries — and streams it to the member in chunks of about
// snapChunkBytes, at most snapWindow unacknowledged, on the transport's
// connection (frames of group snapGroup), then sends the MsgSnap itself
// as the last chunk. Memory is bounded on both sides by the window.
//
// The state is read after the snapshot's index was applied, while later
// entries may still apply: it is at or past the index. That is enough,
// because every store op an entry carries sets or deletes keys outright
// (no op reads what it changes): the member installs the state, and raft
// then applies every entry after the index on top of it, which rewrites
// each key a later entry touched to what the leader has.
//
// The member writes the chunks into a staging area (a reserved queue id
// and meta keys under the group's stage prefix) as they come, acking
// each once written; after the last it records the staged index and term
// (synced) and steps the MsgSnap. When raft accepts it (Ready.Snapshot),
// the loop installs it: one synced batch resets the group's log to the
// snapshot (truncation point, conf state, applied index, hard state),
// drops the queue's old state and marks the install; then a goroutine
// copies the staged state into the queue in bounded batches, and a last
// batch drops the stage and the mark. Meanwhile the group takes no Ready
// (its snapshot Ready is held, and goes on once the copy ends: nothing
// after the snapshot applies before it) and no new transfer stages into
// it, while the node's other groups go on. A restart that finds the mark
// copies again, so an install is all or nothing.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemq/sluice/internal/store"
)

// snapGroup is the frame group of snapshot transfers: no Raft group has
// it (group ids are replicated queue ids) and forwarding has 0.
const snapGroup = 1

// keepaliveGroup is the frame group of the transport's keepalives
// (empty frames, quiesce.go).
const keepaliveGroup = 2

const (
	snapChunkBytes = 256 << 10
	snapWindow     = 4
	// snapAckWait is how long a sender waits for an ack (or to queue a
	// chunk) before it reports the transfer failed; raft then sends a
	// new snapshot.
	snapAckWait = 10 * time.Second
	// maxSnapSends bounds the transfers a node sends at once.
	maxSnapSends = 2
)

// Chunk frame: kind u8 | group u64 | index u64 | no u32 | last u8 | payload.
// A data chunk's payload is a sequence of items, the last chunk's the
// MsgSnap; an ack has no payload.
const (
	chunkData    byte = 1
	chunkAck     byte = 2
	chunkLost    byte = 3 // the sender lost its store's copy of the group
	chunkQuiesce byte = 4 // the sender, the group's leader, quiesced it (quiesce.go)
	chunkHello   byte = 5 // the sender started (rejoin.go)

	chunkHeaderLen = 1 + 8 + 8 + 4 + 1
)

// Items of a data chunk.
const (
	itemMsg   byte = 1 // seq, val = record, idx = index entry (nil: none)
	itemState byte = 2 // seq, val
	itemDelay byte = 3 // due, seq
	itemFloor byte = 4 // seq
	itemDef   byte = 5 // val = the queue definition
	itemMeta  byte = 6 // key, val: a shared metadata key (the metadata group's, metasnap.go)
)

type snapItem struct {
	kind byte
	key  string // itemMeta
	seq  uint64
	due  int64
	val  []byte
	idx  []byte
}

func (it snapItem) size() int { return 24 + len(it.key) + len(it.val) + len(it.idx) }

func appendItem(dst []byte, it snapItem) []byte {
	dst = append(dst, it.kind)
	if it.kind == itemMeta {
		dst = appendBytes(dst, []byte(it.key))
	}
	dst = binary.AppendUvarint(dst, it.seq)
	dst = binary.AppendVarint(dst, it.due)
	dst = appendBytes(dst, it.val)
	if it.idx == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	return appendBytes(dst, it.idx)
}

// decodeItems calls fn for each item of a data chunk's payload; the
// slices alias data.
func decodeItems(data []byte, fn func(snapItem)) error {
	r := reader{b: data}
	for len(r.b) > 0 && r.err == nil {
		it := snapItem{kind: r.byte()}
		if it.kind == itemMeta {
			it.key = string(r.bytes())
		}
		it.seq = r.uvarint()
		it.due = r.varint()
		it.val = r.bytes()
		if r.byte() == 1 {
			if it.idx = r.bytes(); it.idx == nil {
				it.idx = []byte{}
			}
		}
		if r.err == nil && (it.kind < itemMsg || it.kind > itemMeta) {
			return fmt.Errorf("%w: snapshot item kind %d", errBadCommand, it.kind)
		}
		if r.err == nil {
			fn(it)
		}
	}
	return r.err
}

type chunkHeader struct {
	kind  byte
	group uint64
	index uint64
	no    uint32
	last  bool
}

func appendChunkHeader(dst []byte, h chunkHeader) []byte {
	dst = append(dst, h.kind)
	dst = binary.BigEndian.AppendUint64(dst, h.group)
	dst = binary.BigEndian.AppendUint64(dst, h.index)
	dst = binary.BigEndian.AppendUint32(dst, h.no)
	if h.last {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func decodeChunkHeader(data []byte) (chunkHeader, []byte, error) {
	if len(data) < chunkHeaderLen {
		return chunkHeader{}, nil, fmt.Errorf("%w: snapshot chunk of %d bytes", errBadCommand, len(data))
	}
	h := chunkHeader{
		kind:  data[0],
		group: binary.BigEndian.Uint64(data[1:]),
		index: binary.BigEndian.Uint64(data[9:]),
		no:    binary.BigEndian.Uint32(data[17:]),
		last:  data[21] == 1,
	}
	if h.kind < chunkData || h.kind > chunkHello {
		return chunkHeader{}, nil, fmt.Errorf("%w: snapshot chunk kind %d", errBadCommand, h.kind)
	}
	return h, data[chunkHeaderLen:], nil
}

// The staging area of a group's incoming snapshot.
func stageQueue(group uint64) store.QueueID { return 3<<62 | store.QueueID(group) }

func stagePrefix(group uint64) string { return groupKey(group, "stage/") }

func stageDelayKey(group uint64, due int64, seq uint64) string {
	// Offset so that the hex keys sort in due order.
	return stagePrefix(group) + "d/" + fmt.Sprintf("%016x%016x", uint64(due)^(1<<63), seq)
}

// walkQueue emits q's messages from seq from (with their index entries,
// read chunk by chunk), then its per-message states.
func walkQueue(st store.Store, q store.QueueID, from uint64, emit func(snapItem) error) error {
	for {
		var items []snapItem
		size, more, next := 0, false, uint64(0)
		if err := st.Scan(q, from, func(seq uint64, rec []byte) bool {
			if size >= snapChunkBytes {
				more, next = true, seq
				return false
			}
			items = append(items, snapItem{kind: itemMsg, seq: seq, val: bytes.Clone(rec)})
			size += len(rec)
			return true
		}); err != nil {
			return err
		}
		if len(items) > 0 {
			hi, i := items[len(items)-1].seq, 0
			if err := st.ScanIndex(q, from, func(seq uint64, idx []byte) bool {
				if seq > hi {
					return false
				}
				for i < len(items) && items[i].seq < seq {
					i++
				}
				if i < len(items) && items[i].seq == seq {
					items[i].idx = append([]byte{}, idx...)
				}
				return true
			}); err != nil {
				return err
			}
		}
		for _, it := range items {
			if err := emit(it); err != nil {
				return err
			}
		}
		if !more {
			break
		}
		from = next
	}
	var eerr error
	err := st.ScanState(q, func(seq uint64, v []byte) bool {
		eerr = emit(snapItem{kind: itemState, seq: seq, val: bytes.Clone(v)})
		return eerr == nil
	})
	return errors.Join(err, eerr)
}

// walkLive emits a group's queue state as this node's store holds it.
func walkLive(st store.Store, group uint64, emit func(snapItem) error) error {
	q := store.QueueID(group)
	def, err := st.GetMeta(groupKey(group, "def"))
	if err != nil && err != store.ErrNotFound {
		return err
	}
	if err == nil {
		if err := emit(snapItem{kind: itemDef, val: def}); err != nil {
			return err
		}
	}
	floor, err := st.Floor(q)
	if err != nil {
		return err
	}
	if err := emit(snapItem{kind: itemFloor, seq: floor}); err != nil {
		return err
	}
	if err := walkQueue(st, q, floor, emit); err != nil {
		return err
	}
	var eerr error
	err = st.ScanDelays(math.MinInt64, func(due int64, dq store.QueueID, seq uint64) bool {
		if dq == q {
			eerr = emit(snapItem{kind: itemDelay, due: due, seq: seq})
		}
		return eerr == nil
	})
	return errors.Join(err, eerr)
}

// walkStaged emits a group's staged snapshot.
func walkStaged(st store.Store, group uint64, emit func(snapItem) error) error {
	var items []snapItem
	var derr error
	err := st.ScanMeta(stagePrefix(group), func(key string, v []byte) bool {
		switch rest := key[len(stagePrefix(group)):]; {
		case strings.HasPrefix(rest, stageMetaDir):
			// Metadata can be many keys: emitted as read.
			derr = emit(snapItem{kind: itemMeta, key: rest[len(stageMetaDir):], val: bytes.Clone(v)})
			return derr == nil
		case rest == "def":
			items = append(items, snapItem{kind: itemDef, val: bytes.Clone(v)})
		case rest == "floor" && len(v) == 8:
			items = append(items, snapItem{kind: itemFloor, seq: binary.BigEndian.Uint64(v)})
		case len(rest) == 2+32 && rest[:2] == "d/":
			due, err1 := strconv.ParseUint(rest[2:18], 16, 64)
			seq, err2 := strconv.ParseUint(rest[18:], 16, 64)
			if err1 != nil || err2 != nil {
				derr = fmt.Errorf("%w: staged delay key %q", store.ErrCorrupt, key)
				return false
			}
			// Delays are few next to messages; they are held here.
			items = append(items, snapItem{kind: itemDelay, due: int64(due ^ (1 << 63)), seq: seq})
		}
		return true
	})
	if err = errors.Join(err, derr); err != nil {
		return err
	}
	for _, it := range items {
		if err := emit(it); err != nil {
			return err
		}
	}
	return walkQueue(st, stageQueue(group), 0, emit)
}

// stageItem adds the ops that put it into the group's staging area
// (staged) or its queue to b.
func stageItem(b *store.Batch, group uint64, it snapItem, staged bool) {
	q := store.QueueID(group)
	if staged {
		q = stageQueue(group)
	}
	switch it.kind {
	case itemMsg:
		if it.idx != nil {
			b.PutIndexed(q, it.seq, it.val, it.idx)
		} else {
			b.PutMessage(q, it.seq, it.val)
		}
	case itemState:
		b.PutState(q, it.seq, it.val)
	case itemDelay:
		if staged {
			b.PutMeta(stageDelayKey(group, it.due, it.seq), nil)
		} else {
			b.PutDelay(it.due, q, it.seq)
		}
	case itemFloor:
		if staged {
			b.PutMeta(stagePrefix(group)+"floor", binary.BigEndian.AppendUint64(nil, it.seq))
		} else if it.seq > 0 {
			b.SetFloor(q, it.seq)
		}
	case itemDef:
		if staged {
			b.PutMeta(stagePrefix(group)+"def", it.val)
		} else {
			b.PutMeta(groupKey(group, "def"), it.val)
		}
	case itemMeta:
		if staged {
			b.PutMeta(stagePrefix(group)+stageMetaDir+it.key, nonNil(it.val))
		} else {
			b.PutMeta(it.key, nonNil(it.val))
		}
	}
}

// dropStage adds the deletion of a group's staging area to b.
func dropStage(st store.Store, b *store.Batch, group uint64) error {
	b.DropQueue(stageQueue(group))
	return st.ScanMeta(stagePrefix(group), func(key string, _ []byte) bool {
		b.DeleteMeta(key)
		return true
	})
}

type snapKey struct{ group, peer uint64 }

// sendSnapshot starts streaming a group's state to m's recipient (m is
// the MsgSnap raft wants sent), unless a transfer to it is running (it
// will report) or too many are; raft hears how it ended (ReportSnapshot).
// Called on the loop, within a Ready round.
func (h *Host) sendSnapshot(group uint64, m *pb.Message) {
	key := snapKey{group, m.GetTo()}
	h.snapMu.Lock()
	if _, busy := h.snapSends[key]; busy || len(h.snapSends) >= maxSnapSends {
		h.snapMu.Unlock()
		if !busy {
			// Raft pauses the member until it hears; a report is stepped
			// after the round's Advance, not within it.
			h.afterReady = append(h.afterReady, func() { h.reportSnapshot(group, m.GetTo(), raft.SnapshotFailure) })
		}
		return
	}
	acks := make(chan uint32, 2*snapWindow)
	h.snapSends[key] = acks
	h.snapMu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		err := h.streamSnapshot(group, m, acks)
		h.snapMu.Lock()
		delete(h.snapSends, key)
		h.snapMu.Unlock()
		status := raft.SnapshotFinish
		if err != nil {
			status = raft.SnapshotFailure
			h.log.Warn("cluster: snapshot transfer failed", "group", fmt.Sprintf("%x", group), "to", h.roster().names[m.GetTo()], "err", err)
		}
		select {
		case h.ctrl <- func() { h.reportSnapshot(group, m.GetTo(), status) }:
		case <-h.stop:
		}
	}()
}

// reportSnapshot tells a group's raft how a transfer ended (on the loop).
func (h *Host) reportSnapshot(group, peer uint64, status raft.SnapshotStatus) {
	if g := h.groups[group]; g != nil {
		g.wake()
		g.rn.ReportSnapshot(peer, status)
	}
}

// chunkSender sends one transfer's chunks, at most snapWindow unacked.
type chunkSender struct {
	h       *Host
	hdr     chunkHeader
	to      uint64
	acks    <-chan uint32
	acked   uint32 // chunks acked
	buf     []byte
	stopped <-chan struct{}
}

func (c *chunkSender) add(it snapItem) error {
	c.buf = appendItem(c.buf, it)
	if len(c.buf) >= snapChunkBytes {
		return c.flush(false)
	}
	return nil
}

func (c *chunkSender) waitAck() error {
	t := time.NewTimer(snapAckWait)
	defer t.Stop()
	select {
	case n := <-c.acks:
		if n+1 > c.acked {
			c.acked = n + 1
		}
		return nil
	case <-t.C:
		return fmt.Errorf("no ack for chunk %d in %v", c.acked, snapAckWait)
	case <-c.stopped:
		return ErrStopped
	}
}

// flush sends what is buffered as the next chunk (the last when last).
func (c *chunkSender) flush(last bool) error {
	for c.hdr.no-c.acked >= snapWindow {
		if err := c.waitAck(); err != nil {
			return err
		}
	}
	c.hdr.last = last
	frame := appendChunkHeader(make([]byte, 0, chunkHeaderLen+len(c.buf)), c.hdr)
	frame = append(frame, c.buf...)
	deadline := time.Now().Add(snapAckWait)
	for !c.h.tr.SendChunk(c.to, frame) {
		if time.Now().After(deadline) {
			return fmt.Errorf("chunk %d not sent in %v", c.hdr.no, snapAckWait)
		}
		select {
		case <-c.stopped:
			return ErrStopped
		case <-time.After(10 * time.Millisecond):
		}
	}
	c.hdr.no++
	c.buf = c.buf[:0]
	return nil
}

func (h *Host) streamSnapshot(group uint64, m *pb.Message, acks <-chan uint32) error {
	c := &chunkSender{h: h, to: m.GetTo(), acks: acks, stopped: h.stop,
		hdr: chunkHeader{kind: chunkData, group: group, index: m.GetSnapshot().GetMetadata().GetIndex()}}
	walk := walkLive
	if group == MetaGroup {
		walk = h.walkMeta // metasnap.go
	}
	if err := walk(h.st, group, c.add); err != nil {
		return err
	}
	if len(c.buf) > 0 {
		if err := c.flush(false); err != nil {
			return err
		}
	}
	msg, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	c.buf = append(c.buf, msg...)
	if err := c.flush(true); err != nil {
		return err
	}
	for c.acked < c.hdr.no {
		if err := c.waitAck(); err != nil {
			return err
		}
	}
	return nil
}

// snapRecv is an incoming transfer.
type snapRecv struct {
	from  uint64
	index uint64
	next  uint32
}

// DeliverChunk takes a snapshot frame from another node (the transport's
// reader calls it; it writes the store, so the connection waits).
func (h *Host) DeliverChunk(from uint64, data []byte) {
	select {
	case <-h.started:
	default:
		return // a transfer before Start fails; raft sends again
	}
	hdr, payload, err := decodeChunkHeader(data)
	if err != nil {
		h.log.Warn("cluster: bad snapshot chunk", "from", h.roster().names[from], "err", err)
		return
	}
	if hdr.kind == chunkQuiesce {
		// In order with the leader's messages: a heartbeat it sent
		// before must not wake the member after this.
		select {
		case h.recv <- inbound{group: hdr.group, from: from, quiesce: append([]byte(nil), payload...)}:
		case <-h.stop:
		}
		return
	}
	if hdr.kind == chunkHello {
		select {
		case h.ctrl <- func() { h.helloFrom(from) }:
		case <-h.stop:
		}
		return
	}
	if hdr.kind == chunkLost {
		select {
		case h.ctrl <- func() { h.memberLost(hdr.group, from) }:
		case <-h.stop:
		}
		return
	}
	if hdr.kind == chunkAck {
		h.snapMu.Lock()
		acks := h.snapSends[snapKey{hdr.group, from}]
		h.snapMu.Unlock()
		if acks != nil {
			select {
			case acks <- hdr.no:
			default:
			}
		}
		return
	}
	msg, err := h.receiveChunk(from, hdr, payload)
	if err != nil {
		h.log.Warn("cluster: snapshot chunk", "group", fmt.Sprintf("%x", hdr.group), "from", h.roster().names[from], "err", err)
		return
	}
	ack := appendChunkHeader(nil, chunkHeader{kind: chunkAck, group: hdr.group, index: hdr.index, no: hdr.no})
	h.tr.SendChunk(from, ack)
	if msg != nil {
		h.Deliver(hdr.group, msg)
	}
}

// receiveChunk stages one chunk; for the last it returns the MsgSnap to
// step. A chunk out of order is dropped (the sender times out and raft
// sends a new snapshot).
func (h *Host) receiveChunk(from uint64, hdr chunkHeader, payload []byte) (*pb.Message, error) {
	h.rxMu.Lock()
	defer h.rxMu.Unlock()
	if h.copying[hdr.group] {
		// The stage is being copied (installSnapshot): a new transfer
		// would overwrite it. The sender fails and raft tries again.
		return nil, fmt.Errorf("chunk %d of snapshot %d while the last one installs", hdr.no, hdr.index)
	}
	rx := h.rx[hdr.group]
	var b store.Batch
	if hdr.no == 0 {
		if err := dropStage(h.st, &b, hdr.group); err != nil {
			return nil, err
		}
		rx = &snapRecv{from: from, index: hdr.index}
		h.rx[hdr.group] = rx
	} else if rx == nil || rx.from != from || rx.index != hdr.index || rx.next != hdr.no {
		return nil, fmt.Errorf("chunk %d of snapshot %d out of order", hdr.no, hdr.index)
	}
	if !hdr.last {
		if err := decodeItems(payload, func(it snapItem) { stageItem(&b, hdr.group, it, true) }); err != nil {
			delete(h.rx, hdr.group)
			return nil, err
		}
		if err := h.st.Apply(&b, false); err != nil {
			delete(h.rx, hdr.group)
			return nil, err
		}
		rx.next++
		return nil, nil
	}
	delete(h.rx, hdr.group)
	m := &pb.Message{}
	if err := proto.Unmarshal(payload, m); err != nil || m.GetType() != pb.MsgSnap {
		return nil, fmt.Errorf("%w: last snapshot chunk is not a MsgSnap", errBadCommand)
	}
	md := m.GetSnapshot().GetMetadata()
	if md.GetIndex() != hdr.index {
		return nil, fmt.Errorf("%w: MsgSnap at %d in transfer of %d", errBadCommand, md.GetIndex(), hdr.index)
	}
	b.PutMeta(stagePrefix(hdr.group)+"done", indexTerm(md.GetIndex(), md.GetTerm()))
	if err := h.st.Apply(&b, true); err != nil {
		return nil, err
	}
	return m, nil
}

func indexTerm(index, term uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, index), term)
}

// installSnapshot makes a snapshot raft accepted the group's state
// (before rd's entries are staged): on the loop, one synced batch resets
// the log and drops the queue's old state; then a goroutine copies the
// stage into the queue, the group held meanwhile (group.installing) so
// that the node's other groups go on. The copy's end hands rd back to the
// loop (group.held), which tells the handler and goes on with rd.
func (h *Host) installSnapshot(g *group, rd raft.Ready) error {
	h.rxMu.Lock()
	defer h.rxMu.Unlock()
	snap, hs := rd.Snapshot, rd.HardState
	md := snap.GetMetadata()
	done, err := h.st.GetMeta(stagePrefix(g.id) + "done")
	if err != nil || !bytes.Equal(done, indexTerm(md.GetIndex(), md.GetTerm())) {
		return fmt.Errorf("group %x: snapshot %d/%d accepted but not staged (%v)", g.id, md.GetIndex(), md.GetTerm(), err)
	}
	var b store.Batch
	if err := g.st.stageSnapshot(&b, md, hs); err != nil {
		return err
	}
	stageApplied(&b, g.id, md.GetIndex())
	b.PutMeta(groupKey(g.id, "install"), nil)
	var metaKeys []string
	if g.id == MetaGroup {
		// The shared keys the snapshot does not hold go; those it holds
		// are overwritten by the copy (metasnap.go).
		if metaKeys, err = h.dropMetaNotStaged(&b); err != nil {
			return err
		}
	} else {
		b.DropQueue(store.QueueID(g.id))
		if err := h.dropDelays(&b, store.QueueID(g.id)); err != nil {
			return err
		}
		b.DeleteMeta(groupKey(g.id, "def"))
	}
	if err := h.st.Apply(&b, true); err != nil {
		return err
	}
	g.installing, g.held, g.installKeys = true, &rd, metaKeys
	h.copying[g.id] = true // no transfer stages into it meanwhile (receiveChunk)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		err := h.copyStage(g.id)
		h.rxMu.Lock()
		delete(h.copying, g.id)
		h.rxMu.Unlock()
		if err == nil {
			h.log.Info("cluster: installed a snapshot", "group", fmt.Sprintf("%x", g.id), "index", md.GetIndex())
		}
		select {
		case h.ctrl <- func() { g.installing, g.installErr = false, err }:
		case <-h.stop:
		}
	}()
	return nil
}

// installedNotes tells the handler what a group is after an install: the
// metadata group's keys that changed, a queue's definition.
func (h *Host) installedNotes(g *group) ([]func(), error) {
	if g.id == MetaGroup {
		keys := g.installKeys
		g.installKeys = nil
		return []func(){h.metaNote(keys)}, nil
	}
	return h.defineNotes(g)
}

// dropDelays adds the deletion of q's delay entries to b (DropQueue
// leaves them to the caller).
func (h *Host) dropDelays(b *store.Batch, q store.QueueID) error {
	return h.st.ScanDelays(math.MinInt64, func(due int64, dq store.QueueID, seq uint64) bool {
		if dq == q {
			b.DeleteDelay(due, dq, seq)
		}
		return true
	})
}

// copyStage copies a group's staged state into its queue in bounded
// batches, then drops the stage and the install mark (synced).
func (h *Host) copyStage(group uint64) error {
	var b store.Batch
	size := 0
	err := walkStaged(h.st, group, func(it snapItem) error {
		stageItem(&b, group, it, false)
		if size += it.size(); size >= snapChunkBytes {
			select {
			case <-h.stop:
				return ErrStopped // the install mark stays: the next start finishes it
			default:
			}
			if err := h.st.Apply(&b, false); err != nil {
				return err
			}
			b.Reset()
			size = 0
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("group %x: install snapshot: %w", group, err)
	}
	if err := dropStage(h.st, &b, group); err != nil {
		return err
	}
	b.DeleteMeta(groupKey(group, "install"))
	return h.st.Apply(&b, true)
}

// defineNotes tells the handler what the group's queue is after an
// install: its definition, or that it is deleted.
func (h *Host) defineNotes(g *group) ([]func(), error) {
	id := store.QueueID(g.id)
	def, err := h.st.GetMeta(groupKey(g.id, "def"))
	if g.id == nodesGroup && err == nil {
		// The nodes group's "definition" is the node list.
		nodes, err := decodeNodes(def)
		if err != nil {
			return nil, err
		}
		return []func(){h.nodesNote(nodes)}, nil
	}
	if err == store.ErrNotFound {
		g.defined = false
		return []func(){func() { h.handler.QueueDeleted(id) }}, nil
	}
	if err != nil {
		return nil, err
	}
	g.defined = true
	return []func(){func() {
		if err := h.handler.DefineQueue(id, def); err != nil {
			h.log.Error("cluster: define queue", "group", fmt.Sprintf("%x", g.id), "err", err)
		}
	}}, nil
}

// resumeInstall finishes an install a restart interrupted, and drops the
// stage of a transfer that did not complete (at open).
func (h *Host) resumeInstall(group uint64) error {
	if _, err := h.st.GetMeta(groupKey(group, "install")); err == nil {
		h.log.Info("cluster: finishing a snapshot install", "group", fmt.Sprintf("%x", group))
		return h.copyStage(group)
	} else if err != store.ErrNotFound {
		return err
	}
	var b store.Batch
	if err := dropStage(h.st, &b, group); err != nil {
		return err
	}
	if b.Len() <= 1 {
		return nil // nothing but the queue drop: no stage
	}
	return h.st.Apply(&b, false)
}

// memberLost handles a member's report that it lost its copy of a group
// this node leads (its store was wiped): raft's progress for it still
// says what it held, so this leader would never send it the log again.
// It transfers its leadership to the most up-to-date other member that
// is active; that leader starts the lost member from nothing, and it
// catches up by the log or a snapshot. At most once per election timeout.
func (h *Host) memberLost(group, peer uint64) {
	g := h.groups[group]
	if g == nil || !g.leader {
		return
	}
	wait := time.Duration(h.cfg.ElectionTicks) * h.cfg.Tick
	if time.Since(g.lostAt) < wait {
		return
	}
	g.lostAt = time.Now()
	g.wake()
	st := g.rn.Status()
	var to, best uint64
	for id := range st.Config.Voters.IDs() {
		pr, ok := st.Progress[id]
		if id == h.self || id == peer || !ok || !pr.RecentActive && pr.State != tracker.StateReplicate {
			continue
		}
		if to == 0 || pr.Match > best {
			to, best = id, pr.Match
		}
	}
	if to == 0 {
		h.log.Warn("cluster: a member lost its copy of a group and no other member can lead it",
			"group", fmt.Sprintf("%x", group), "member", h.roster().names[peer])
		return
	}
	h.log.Info("cluster: a member lost its copy of a group; handing leadership on",
		"group", fmt.Sprintf("%x", group), "member", h.roster().names[peer], "to", h.roster().names[to])
	g.rn.TransferLeader(to)
}
