package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicemq/sluice/internal/store"
)

// Upgrade of a format 3 directory to format 4.
//
// Format 3 kept message records and index entries in the 'm' keyspace,
// block-major:
//
//	'm' | queue u64 | seq>>10 u64 | kind u8 | seq u64   (26 bytes)
//
// Format 4 keeps them seq-major in the 'q' keyspace (msgKey). Every other
// keyspace is unchanged. Open moves each live 'm' key to its 'q' key in
// batches of at most upgradeBatchKeys keys or upgradeBatchBytes bytes; a
// batch puts the new keys and deletes the old ones atomically and is
// synced, so a crash leaves every message either at its old key or at its
// new one, and the next Open resumes where the keyspace still holds old
// keys. Once the 'm' keyspace is empty, its tombstones are range-deleted and
// compacted away, and only then is FORMAT rewritten to 4.

const (
	v3MsgKeyLen       = 1 + 8 + 8 + 1 + 8
	v3MsgBlockBits    = 10
	upgradeBatchKeys  = 8192
	upgradeBatchBytes = 8 << 20
)

// v3MsgKey returns format 3's key of the record or index entry of (q, seq).
func v3MsgKey(kind byte, q store.QueueID, seq uint64) []byte {
	k := make([]byte, v3MsgKeyLen)
	k[0] = prefixMessageV3
	binary.BigEndian.PutUint64(k[1:], uint64(q))
	binary.BigEndian.PutUint64(k[9:], seq>>v3MsgBlockBits)
	k[17] = kind
	binary.BigEndian.PutUint64(k[18:], seq)
	return k
}

// v3ToMsgKey returns the format 4 key of a format 3 message key.
func v3ToMsgKey(k []byte) ([]byte, error) {
	if len(k) != v3MsgKeyLen || k[17] > kindRecord {
		return nil, fmt.Errorf("%w: format 3 message key %x: length %d, want %d", store.ErrCorrupt, k, len(k), v3MsgKeyLen)
	}
	q := store.QueueID(binary.BigEndian.Uint64(k[1:]))
	seq := binary.BigEndian.Uint64(k[18:])
	if seq>>v3MsgBlockBits != binary.BigEndian.Uint64(k[9:]) {
		return nil, fmt.Errorf("%w: format 3 message key %x: seq %d is not in its block", store.ErrCorrupt, k, seq)
	}
	return msgKey(k[17], q, seq), nil
}

// upgradeFrom3 moves the format 3 message keys to their format 4 keys and
// then marks the directory format 4.
func (s *Store) upgradeFrom3() error {
	start := []byte{prefixMessageV3}
	end := keyspaceEnd(prefixMessageV3)
	s.log.Info("upgrading data directory from format 3 to 4", "dir", s.dir)
	moved, batches := 0, 0
	for from := start; from != nil; {
		n, next, err := s.upgradeBatch(from, end)
		if err != nil {
			return err
		}
		moved += n
		from = next
		if n > 0 {
			batches++
			if s.opts.upgradeBatchHook != nil {
				s.opts.upgradeBatchHook(batches)
			}
		}
	}
	pb := s.db.NewBatch()
	defer pb.Close()
	if err := pb.DeleteRange(start, end, nil); err != nil {
		return err
	}
	if err := s.db.Apply(pb, pebble.Sync); err != nil {
		return s.wrap("drop format 3 keys", err)
	}
	if err := s.db.Compact(context.Background(), start, end, false); err != nil {
		return s.wrap("compact format 3 keys", err)
	}
	if err := writeFormat(s.fs, s.dir, FormatVersion); err != nil {
		return err
	}
	s.log.Info("upgraded data directory to format 4", "dir", s.dir, "moved_keys", moved)
	return nil
}

// upgradeBatch moves the old keys in [from, end), up to a batch's worth, in
// one synced batch. It returns how many it moved and where the next batch
// starts (nil: the keyspace is done).
func (s *Store) upgradeBatch(from, end []byte) (n int, next []byte, err error) {
	const op = "upgrade message keys"
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: end})
	if err != nil {
		return 0, nil, s.wrap(op, err)
	}
	pb := s.db.NewBatch()
	defer pb.Close()
	size := 0
	var last []byte
	maxKeys := upgradeBatchKeys
	if s.opts.upgradeBatchMax > 0 {
		maxKeys = s.opts.upgradeBatchMax
	}
	for valid := it.First(); valid && n < maxKeys && size < upgradeBatchBytes; valid = it.Next() {
		var nk, v []byte
		if nk, err = v3ToMsgKey(it.Key()); err != nil {
			break
		}
		if v, err = it.ValueAndErr(); err != nil {
			break
		}
		if err = pb.Set(nk, v, nil); err != nil {
			break
		}
		if err = pb.Delete(it.Key(), nil); err != nil {
			break
		}
		last = append(last[:0], it.Key()...)
		n++
		size += len(v)
	}
	if err == nil {
		err = it.Error()
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, nil, s.wrap(op, err)
	}
	if n == 0 {
		return 0, nil, nil
	}
	if err := s.db.Apply(pb, pebble.Sync); err != nil {
		return 0, nil, s.wrap(op, err)
	}
	return n, append(bytes.Clone(last), 0), nil
}
