package pebblestore

import (
	"encoding/binary"
	"fmt"

	"github.com/sluicemq/sluice/internal/store"
)

// Keyspace prefixes; see the package doc for the layout.
const (
	prefixMessage   = 'q' // records and index entries, seq-major (msgKey)
	prefixMessageV3 = 'm' // format 3's block-major message keys (upgrade.go)
	prefixState     = 's'
	prefixDelay     = 'd'
	prefixFloor     = 'f'
	prefixMeta      = 'x'
	prefixBody      = 'b' // shared bodies and their refs (bodies.go)
)

const (
	queueKeyLen = 1 + 8 + 8
	delayKeyLen = 1 + 8 + 8 + 8
	floorKeyLen = 1 + 8
	floorValLen = 8 + 8
)

// queueKey returns the state key of (q, seq).
func queueKey(prefix byte, q store.QueueID, seq uint64) []byte {
	return putQueueKey(make([]byte, queueKeyLen, queueKeyLen+1), prefix, q, seq)
}

// putQueueKey writes the key into k (queueKeyLen bytes) and returns it.
func putQueueKey(k []byte, prefix byte, q store.QueueID, seq uint64) []byte {
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], uint64(q))
	binary.BigEndian.PutUint64(k[9:], seq)
	return k
}

// queueEnd returns a key above every key of q in the keyspace: the key of
// the largest seq with one more byte.
func queueEnd(prefix byte, q store.QueueID) []byte {
	return append(queueKey(prefix, q, ^uint64(0)), 0)
}

// decodeSeq returns the seq of a state key.
func decodeSeq(k []byte) (uint64, error) {
	if len(k) != queueKeyLen {
		return 0, fmt.Errorf("%w: key %x: length %d, want %d", store.ErrCorrupt, k, len(k), queueKeyLen)
	}
	return binary.BigEndian.Uint64(k[9:]), nil
}

// Message records and index entries share one keyspace, ordered by queue,
// then seq, then kind (a seq's index entry right before its record):
//
//	'q' | queue u64 | seq u64 | kind u8   (18 bytes)
//
// A growing queue only ever writes keys above all of its earlier keys, so
// successive memtable flushes of it cover disjoint key ranges and Pebble
// moves their sstables down the LSM instead of rewriting them. Records
// (large) are kept out of the sstables by value separation (see
// valueSeparation), so ScanIndex steps over them without reading them.
//
// Format 3 used the 'm' keyspace with a block-major layout; upgrade.go moves
// such keys into this one.
const (
	msgKeyLen  = 1 + 8 + 8 + 1
	kindIndex  = 0
	kindRecord = 1
)

// msgKey returns the key of the record (kindRecord) or index entry
// (kindIndex) of (q, seq).
func msgKey(kind byte, q store.QueueID, seq uint64) []byte {
	return putMsgKey(make([]byte, msgKeyLen), kind, q, seq)
}

// putMsgKey writes the key into k (msgKeyLen bytes) and returns it.
func putMsgKey(k []byte, kind byte, q store.QueueID, seq uint64) []byte {
	k[0] = prefixMessage
	binary.BigEndian.PutUint64(k[1:], uint64(q))
	binary.BigEndian.PutUint64(k[9:], seq)
	k[17] = kind
	return k
}

// msgQueueStart and msgQueueEnd bound all of q's message keys.
func msgQueueStart(q store.QueueID) []byte { return msgKey(kindIndex, q, 0)[:9] }
func msgQueueEnd(q store.QueueID) []byte   { return prefixUpperBound(msgQueueStart(q)) }

// msgSeqStart returns a key below every key of q with seq >= seq and above
// every key of q with a smaller seq.
func msgSeqStart(q store.QueueID, seq uint64) []byte { return msgKey(kindIndex, q, seq) }

// decodeMsgKey returns the seq and kind of a message key.
func decodeMsgKey(k []byte) (seq uint64, kind byte, err error) {
	if len(k) != msgKeyLen || k[17] > kindRecord {
		return 0, 0, fmt.Errorf("%w: message key %x: length %d, want %d", store.ErrCorrupt, k, len(k), msgKeyLen)
	}
	return binary.BigEndian.Uint64(k[9:]), k[17], nil
}

// isRecordKey and isIndexKey tell a message key's kind for an iterator's
// SkipPoint; a key of the wrong length is not skipped, so decodeMsgKey
// reports it.
func isRecordKey(k []byte) bool { return len(k) == msgKeyLen && k[17] == kindRecord }
func isIndexKey(k []byte) bool  { return len(k) == msgKeyLen && k[17] == kindIndex }

func delayKey(due int64, q store.QueueID, seq uint64) []byte {
	k := make([]byte, delayKeyLen)
	k[0] = prefixDelay
	binary.BigEndian.PutUint64(k[1:], uint64(due)^(1<<63))
	binary.BigEndian.PutUint64(k[9:], uint64(q))
	binary.BigEndian.PutUint64(k[17:], seq)
	return k
}

func decodeDelayKey(k []byte) (due int64, q store.QueueID, seq uint64, err error) {
	if len(k) != delayKeyLen {
		return 0, 0, 0, fmt.Errorf("%w: delay key %x: length %d, want %d", store.ErrCorrupt, k, len(k), delayKeyLen)
	}
	due = int64(binary.BigEndian.Uint64(k[1:]) ^ (1 << 63))
	return due, store.QueueID(binary.BigEndian.Uint64(k[9:])), binary.BigEndian.Uint64(k[17:]), nil
}

func floorKey(q store.QueueID) []byte {
	k := make([]byte, floorKeyLen)
	k[0] = prefixFloor
	binary.BigEndian.PutUint64(k[1:], uint64(q))
	return k
}

// floorState is what the floor key holds: the ack floor, and how far the
// acked prefix has been range-deleted (exclusive).
type floorState struct {
	floor   uint64
	cleared uint64
}

func (f floorState) encode() []byte {
	v := make([]byte, floorValLen)
	binary.BigEndian.PutUint64(v, f.floor)
	binary.BigEndian.PutUint64(v[8:], f.cleared)
	return v
}

func decodeFloor(q store.QueueID, v []byte) (floorState, error) {
	if len(v) != floorValLen {
		return floorState{}, fmt.Errorf("%w: floor of queue %d: value length %d, want %d", store.ErrCorrupt, q, len(v), floorValLen)
	}
	return floorState{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}, nil
}

func metaKey(key string) []byte {
	k := make([]byte, 1+len(key))
	k[0] = prefixMeta
	copy(k[1:], key)
	return k
}

// keyspaceEnd returns the first key after the keyspace.
func keyspaceEnd(prefix byte) []byte { return []byte{prefix + 1} }

// prefixUpperBound returns the smallest key greater than every key starting
// with p, or nil when there is none (p is all 0xff).
func prefixUpperBound(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
