package records

// Shared records: a message routed to several durable queues keeps its
// property list and body once, in a shared body (store.Bodies), and each
// queue's record names it (layout in doc.go, "Shared record").

import "encoding/binary"

// VShared is the version byte of a shared record.
const VShared byte = 2

// IsShared reports whether rec is a shared record, to be joined with its
// body (JoinShared) before anything else reads it.
func IsShared(rec []byte) bool { return len(rec) > 0 && rec[0] == VShared }

// SplitShared cuts a version 1 record into the shared record each queue
// keeps, naming body id, and the shared body: the record's property length,
// properties and body, aliasing rec.
func SplitShared(rec []byte, id uint64) (shared, body []byte, err error) {
	if _, err := RecordFlags(rec); err != nil {
		return nil, nil, err
	}
	r := reader{b: rec[RecordHeader:]}
	r.string()
	r.string()
	if r.err != nil {
		return nil, nil, r.err
	}
	at := len(rec) - len(r.b)
	shared = append(make([]byte, 0, at+binary.MaxVarintLen64), rec[:at]...)
	shared[0] = VShared
	return binary.AppendUvarint(shared, id), rec[at:], nil
}

// SharedBodyID returns the body id a shared record names.
func SharedBodyID(shared []byte) (uint64, error) {
	_, id, err := sharedHead(shared)
	return id, err
}

// sharedHead returns the length of a shared record's head (what precedes
// the body id) and the id.
func sharedHead(shared []byte) (int, uint64, error) {
	if len(shared) < RecordHeader || shared[0] != VShared {
		return 0, 0, Corruptf("shared record of %d bytes", len(shared))
	}
	r := reader{b: shared[RecordHeader:]}
	r.string()
	r.string()
	at := len(shared) - len(r.b)
	id := r.uvarint()
	if err := r.done(); err != nil {
		return 0, 0, err
	}
	return at, id, nil
}

// JoinShared returns the version 1 record a shared record and its body
// were cut from (a new slice).
func JoinShared(shared, body []byte) ([]byte, error) {
	at, _, err := sharedHead(shared)
	if err != nil {
		return nil, err
	}
	rec := make([]byte, 0, at+len(body))
	rec = append(append(rec, shared[:at]...), body...)
	rec[0] = V1
	// The body must hold a property list of the length it says.
	r := reader{b: body}
	r.take(int(r.uint32()))
	if r.err != nil {
		return nil, r.err
	}
	return rec, nil
}
