package cluster

// The encoding of a group's log entries. An entry's data is a command:
//
//	kind u8 | proposer node u64 | proposal id u64 | body
//
// kind cmdOps carries a store batch restricted to the group's queue
// (encodeOps); cmdDefine carries the broker's opaque queue definition. The
// proposer and proposal id let the proposing node find the waiter of an
// entry when it applies it; other nodes ignore them.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicemq/sluice/internal/store"
)

type cmdKind uint8

const (
	cmdOps        cmdKind = iota + 1 // body: encoded store ops
	cmdDefine                        // body: the queue definition, opaque to the cluster
	cmdCompact                       // body: u64 index; every member drops its log below it
	cmdDelete                        // no body: the queue is deleted; its group stays for a redeclaration
	cmdNodes                         // body: the cluster's node list (nodes group only, nodes.go)
	cmdMeta                          // body: metadata ops (meta.go), in the metadata group only
	cmdNodeChange                    // body: one node added or removed, and the list as its proposer saw it (nodes.go)
)

const cmdHeaderLen = 1 + 8 + 8

// errBadCommand marks log data this version cannot decode.
var errBadCommand = errors.New("cluster: malformed command")

type command struct {
	kind     cmdKind
	proposer uint64
	id       uint64
	body     []byte
}

func appendCommand(dst []byte, c command) []byte {
	dst = append(dst, byte(c.kind))
	dst = binary.BigEndian.AppendUint64(dst, c.proposer)
	dst = binary.BigEndian.AppendUint64(dst, c.id)
	return append(dst, c.body...)
}

func decodeCommand(data []byte) (command, error) {
	if len(data) < cmdHeaderLen {
		return command{}, fmt.Errorf("%w: %d bytes", errBadCommand, len(data))
	}
	return command{
		kind:     cmdKind(data[0]),
		proposer: binary.BigEndian.Uint64(data[1:]),
		id:       binary.BigEndian.Uint64(data[9:]),
		body:     data[cmdHeaderLen:],
	}, nil
}

// encodeOps writes ops as a sequence of (kind, seq, end, due, key, value,
// index) records; the queue id is not written, since every op of a group's
// entry is on the group's own queue.
func encodeOps(dst []byte, ops []store.Op) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	for _, op := range ops {
		dst = append(dst, byte(op.Kind))
		dst = binary.AppendUvarint(dst, op.Seq)
		dst = binary.AppendUvarint(dst, op.End)
		dst = binary.AppendVarint(dst, op.Due)
		dst = appendBytes(dst, []byte(op.Key))
		dst = appendBytes(dst, op.Value)
		if op.Index == nil {
			dst = append(dst, 0)
		} else {
			dst = append(dst, 1)
			dst = appendBytes(dst, op.Index)
		}
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decodeOps reads what encodeOps wrote, giving every op the queue q. The
// values alias data.
func decodeOps(data []byte, q store.QueueID) ([]store.Op, error) {
	r := reader{b: data}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(data)) {
		r.err = errBadCommand
	}
	var ops []store.Op
	if r.err == nil {
		ops = make([]store.Op, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		op := store.Op{Queue: q}
		op.Kind = store.OpKind(r.byte())
		op.Seq = r.uvarint()
		op.End = r.uvarint()
		op.Due = r.varint()
		op.Key = string(r.bytes())
		op.Value = r.bytes()
		if r.byte() == 1 {
			op.Index = r.bytes()
			if op.Index == nil {
				op.Index = []byte{}
			}
		}
		ops = append(ops, op)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBadCommand, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return ops, nil
}

// reader decodes a byte slice, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated", errBadCommand)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
