package records

// The metadata values an earlier Sluice wrote without a version byte: the
// queue id counters (decimal ASCII), a queue id's flags (one bare bits
// byte), a limit (decimal ASCII) and a policy (bare JSON). Each now starts
// with V1 (layouts in doc.go). Every decoder here reads both the current
// layout and the one before it, reporting old for the latter so that the
// broker rewrites the value (it migrates them once, at open); any other
// first byte is an unknown version, refused.

import (
	"encoding/binary"
	"strconv"

	"github.com/sluicemq/sluice/internal/store"
)

// unknownVersion is the error of a value in no layout this Sluice knows.
func unknownVersion(what string, v []byte) error {
	if len(v) == 0 {
		return Corruptf("%s: empty value", what)
	}
	return Corruptf("%s: unknown version 0x%02x in a value of %d bytes (written by a newer Sluice?)", what, v[0], len(v))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// EncodeQueueIDCounter encodes a queue id kept on its own (the next queue
// id, the delay queue's id): V1 | uvarint.
func EncodeQueueIDCounter(id store.QueueID) []byte {
	return binary.AppendUvarint([]byte{V1}, uint64(id))
}

// DecodeQueueIDCounter decodes EncodeQueueIDCounter's value, or the
// decimal ASCII of the layout before (old). Queue ids start at 1: a zero
// is refused.
func DecodeQueueIDCounter(what string, v []byte) (id store.QueueID, old bool, err error) {
	var n uint64
	switch {
	case len(v) > 0 && isDigit(v[0]):
		old = true
		if n, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return 0, true, Corruptf("%s %q: not a decimal number", what, v)
		}
	case len(v) > 0 && v[0] == V1:
		r := reader{b: v[1:]}
		n = r.uvarint()
		if err := r.done(); err != nil {
			return 0, false, Corruptf("%s: %v", what, err)
		}
	default:
		return 0, false, unknownVersion(what, v)
	}
	if n == 0 {
		return 0, old, Corruptf("%s: queue id 0", what)
	}
	return store.QueueID(n), old, nil
}

// EncodeQueueIDFlags encodes what a queue id's record says of its queue:
// V1 | bits(durable).
func EncodeQueueIDFlags(durable bool) []byte { return []byte{V1, BoolsByte(durable)} }

// DecodeQueueIDFlags decodes EncodeQueueIDFlags's value, or the bare bits
// byte (0 or 1) of the layout before (old): the two differ in length.
func DecodeQueueIDFlags(v []byte) (durable, old bool, err error) {
	switch {
	case len(v) == 1 && v[0] <= 1:
		return v[0] == 1, true, nil
	case len(v) == 2 && v[0] == V1:
		if v[1] > 1 {
			return false, false, Corruptf("queue id flags 0x%02x", v[1])
		}
		return v[1] == 1, false, nil
	}
	return false, false, unknownVersion("queue id flags", v)
}

// EncodeLimit encodes a user's or vhost's limit: V1 | varint.
func EncodeLimit(n int64) []byte { return binary.AppendVarint([]byte{V1}, n) }

// DecodeLimit decodes EncodeLimit's value, or the signed decimal ASCII of
// the layout before (old).
func DecodeLimit(v []byte) (n int64, old bool, err error) {
	switch {
	case len(v) > 0 && (isDigit(v[0]) || v[0] == '-'):
		if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return 0, true, Corruptf("limit %q: not a decimal number", v)
		}
		return n, true, nil
	case len(v) > 0 && v[0] == V1:
		n, k := binary.Varint(v[1:])
		if k <= 0 || k != len(v)-1 {
			return 0, false, Corruptf("limit: bad varint in a value of %d bytes", len(v))
		}
		return n, false, nil
	}
	return 0, false, unknownVersion("limit", v)
}

// EncodePolicy encodes a policy, given its JSON (the broker's): V1 | JSON.
func EncodePolicy(doc []byte) []byte { return append([]byte{V1}, doc...) }

// DecodePolicy returns the JSON EncodePolicy was given, aliasing v, or
// the bare JSON object of the layout before (old).
func DecodePolicy(v []byte) (doc []byte, old bool, err error) {
	switch {
	case len(v) > 0 && v[0] == '{':
		return v, true, nil
	case len(v) > 0 && v[0] == V1:
		return v[1:], false, nil
	}
	return nil, false, unknownVersion("policy", v)
}
