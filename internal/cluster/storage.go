package cluster

// A group's Raft log in the node's store. The log entries of group g are
// the "messages" of a reserved queue id (logQueue(g)), keyed by index, so
// appending is a put, truncating a conflicting suffix a range delete, and
// reading a scan. The hard state, the conf state and the applied index are
// metadata keys under the group's prefix. Every group's writes of one
// Ready round go into one batch, applied with one fsync (host.go).
//
// groupStorage implements raft.Storage. Raft reads it from the host's
// loop goroutine only, and the loop is the only writer, so its cached
// indexes need no lock; Entries reads the store, which is safe for
// concurrent use.

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemq/sluice/internal/store"
)

const (
	// logQueueBit marks the queue ids that hold Raft logs, far above the
	// ids the broker allocates and the ids of replicated queues.
	logQueueBit = store.QueueID(1) << 62
	metaPrefix  = "cluster/"
)

func logQueue(group uint64) store.QueueID { return logQueueBit | store.QueueID(group) }

func groupKey(group uint64, what string) string {
	return metaPrefix + "g/" + strconv.FormatUint(group, 16) + "/" + what
}

// groupsPrefix lists the groups a node hosts: one key each, so a restart
// knows which logs to open.
const groupsPrefix = metaPrefix + "groups/"

func groupListKey(group uint64) string { return groupsPrefix + strconv.FormatUint(group, 16) }

type groupStorage struct {
	st    store.Store
	group uint64

	hard *pb.HardState
	conf *pb.ConfState
	// terms[i] is the term of entry first-1+i; terms[0] is the term of
	// the entry before the first (0 for a fresh log: no compaction yet).
	first uint64
	terms []uint64
	// applied is the group's applied index (kept by the host's apply).
	applied uint64
}

// openStorage loads a group's persisted state (empty for a new group).
func openStorage(st store.Store, group uint64) (*groupStorage, error) {
	s := &groupStorage{st: st, group: group, first: 1, terms: []uint64{0}, hard: &pb.HardState{}, conf: &pb.ConfState{}}
	if err := getProto(st, groupKey(group, "hard"), s.hard); err != nil {
		return nil, err
	}
	if err := getProto(st, groupKey(group, "conf"), s.conf); err != nil {
		return nil, err
	}
	// After a compaction the log starts above 1; the entry before its
	// first is remembered by index and term.
	if v, err := st.GetMeta(groupKey(group, "trunc")); err == nil && len(v) == 16 {
		s.first = binary.BigEndian.Uint64(v) + 1
		s.terms[0] = binary.BigEndian.Uint64(v[8:])
	} else if err != nil && err != store.ErrNotFound {
		return nil, fmt.Errorf("read group %x truncation: %w", group, err)
	}
	var derr error
	next := uint64(0)
	err := st.Scan(logQueue(group), s.first, func(idx uint64, rec []byte) bool {
		var e pb.Entry
		if derr = proto.Unmarshal(rec, &e); derr != nil {
			derr = fmt.Errorf("%w: group %x entry %d: %v", store.ErrCorrupt, group, idx, derr)
			return false
		}
		if next == 0 && idx != s.first {
			derr = fmt.Errorf("%w: group %x log starts at %d, want %d", store.ErrCorrupt, group, idx, s.first)
			return false
		} else if next != 0 && idx != next {
			derr = fmt.Errorf("%w: group %x log jumps from %d to %d", store.ErrCorrupt, group, next-1, idx)
			return false
		}
		s.terms = append(s.terms, e.GetTerm())
		next = idx + 1
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("open group %x log: %w", group, err)
	}
	return s, nil
}

func getProto(st store.Store, key string, m proto.Message) error {
	v, err := st.GetMeta(key)
	if err == store.ErrNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("%w: %s: %v", store.ErrCorrupt, key, err)
	}
	return nil
}

func (s *groupStorage) last() uint64 { return s.first + uint64(len(s.terms)) - 2 }

func (s *groupStorage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	return proto.Clone(s.hard).(*pb.HardState), proto.Clone(s.conf).(*pb.ConfState), nil
}

func (s *groupStorage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if lo < s.first {
		return nil, raft.ErrCompacted
	}
	if hi > s.last()+1 {
		return nil, raft.ErrUnavailable
	}
	var (
		out  []*pb.Entry
		size uint64
		derr error
	)
	err := s.st.Scan(logQueue(s.group), lo, func(idx uint64, rec []byte) bool {
		if idx >= hi {
			return false
		}
		e := &pb.Entry{}
		if derr = proto.Unmarshal(rec, e); derr != nil {
			return false
		}
		size += uint64(len(rec))
		if len(out) > 0 && size > maxSize {
			return false
		}
		out = append(out, e)
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("group %x entries [%d,%d): %w", s.group, lo, hi, err)
	}
	if len(out) == 0 {
		return nil, raft.ErrUnavailable
	}
	return out, nil
}

func (s *groupStorage) Term(i uint64) (uint64, error) {
	if i < s.first-1 {
		return 0, raft.ErrCompacted
	}
	if i > s.last() {
		return 0, raft.ErrUnavailable
	}
	return s.terms[i-(s.first-1)], nil
}

func (s *groupStorage) LastIndex() (uint64, error)  { return s.last(), nil }
func (s *groupStorage) FirstIndex() (uint64, error) { return s.first, nil }

// Snapshot describes the group's state at its applied index: raft
// metadata only; the state itself is streamed from the store when raft
// sends it (snapshot.go).
func (s *groupStorage) Snapshot() (*pb.Snapshot, error) {
	if s.applied == 0 || s.applied < s.first-1 || s.applied > s.last() {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	index := s.applied
	term := s.terms[index-(s.first-1)]
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: &index, Term: &term, ConfState: proto.Clone(s.conf).(*pb.ConfState),
	}}, nil
}

// stageSnapshot resets the log to start after an installed snapshot: the
// entries go, the snapshot's index and term become the entry before the
// first, its conf state the conf, and the hard state commits at least to
// it (a restart's raft checks the commit against the log).
func (s *groupStorage) stageSnapshot(b *store.Batch, md *pb.SnapshotMetadata, hs *pb.HardState) error {
	index, term := md.GetIndex(), md.GetTerm()
	b.DeleteRange(logQueue(s.group), s.first, s.last()+1)
	s.first, s.terms, s.applied = index+1, []uint64{term}, index
	b.PutMeta(groupKey(s.group, "trunc"), indexTerm(index, term))
	hard := s.hard
	if hs != nil && !raft.IsEmptyHardState(hs) {
		hard = hs
	}
	hard = proto.Clone(hard).(*pb.HardState)
	if hard.GetCommit() < index {
		hard.Commit = &index
	}
	if err := s.stage(b, nil, hard); err != nil {
		return err
	}
	return s.stageConf(b, pb.EnsureConfState(md.GetConfState()))
}

// stageCompact drops the entries below index (which must be applied) and
// records the term of the one before it.
func (s *groupStorage) stageCompact(b *store.Batch, index uint64) {
	if index <= s.first || index > s.last()+1 {
		return
	}
	b.DeleteRange(logQueue(s.group), s.first, index)
	s.terms = s.terms[index-s.first:]
	s.first = index
	v := binary.BigEndian.AppendUint64(nil, index-1)
	b.PutMeta(groupKey(s.group, "trunc"), binary.BigEndian.AppendUint64(v, s.terms[0]))
}

// stage adds a Ready's entries and hard state to b and updates the cached
// indexes; the caller applies b synced before it sends the Ready's
// messages. A write at index i replaces every entry at i and above.
func (s *groupStorage) stage(b *store.Batch, ents []*pb.Entry, hs *pb.HardState) error {
	if len(ents) > 0 {
		lo := ents[0].GetIndex()
		if lo < s.first {
			return fmt.Errorf("group %x: append at %d below first index %d", s.group, lo, s.first)
		}
		if lo > s.last()+1 {
			return fmt.Errorf("group %x: append at %d leaves a gap after %d", s.group, lo, s.last())
		}
		if lo <= s.last() {
			b.DeleteRange(logQueue(s.group), lo, s.last()+1)
			s.terms = s.terms[:lo-(s.first-1)]
		}
		for _, e := range ents {
			rec, err := proto.Marshal(e)
			if err != nil {
				return fmt.Errorf("group %x: encode entry %d: %w", s.group, e.GetIndex(), err)
			}
			b.PutMessage(logQueue(s.group), e.GetIndex(), rec)
			s.terms = append(s.terms, e.GetTerm())
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		v, err := proto.Marshal(hs)
		if err != nil {
			return fmt.Errorf("group %x: encode hard state: %w", s.group, err)
		}
		b.PutMeta(groupKey(s.group, "hard"), v)
		s.hard = proto.Clone(hs).(*pb.HardState)
	}
	return nil
}

// stageConf records the conf state after a conf change was applied; it is
// written with the applied index, in the same batch.
func (s *groupStorage) stageConf(b *store.Batch, cs *pb.ConfState) error {
	v, err := proto.Marshal(cs)
	if err != nil {
		return fmt.Errorf("group %x: encode conf state: %w", s.group, err)
	}
	b.PutMeta(groupKey(s.group, "conf"), v)
	s.conf = proto.Clone(cs).(*pb.ConfState)
	return nil
}

func stageApplied(b *store.Batch, group, index uint64) {
	b.PutMeta(groupKey(group, "applied"), binary.BigEndian.AppendUint64(nil, index))
}

func loadApplied(st store.Store, group uint64) (uint64, error) {
	v, err := st.GetMeta(groupKey(group, "applied"))
	if err == store.ErrNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("group %x applied index: %w", group, err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: group %x applied index of %d bytes", store.ErrCorrupt, group, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
