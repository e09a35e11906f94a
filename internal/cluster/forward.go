package cluster

// Forwarding: requests from one node's broker to another's (a publish to
// a queue led elsewhere), outside Raft, on the same connection as the Raft
// messages. Their frames use group 0, which no Raft group has:
//
//	kind u8 (1 request, 2 reply, 3 message) | id u64 | request: body
//	                                                  reply:   status u8 (0 ok) | ok: body, else error text
//	                                                  message: body (id 0; remote.go)
//
// A node handles a connection's requests in the order they arrive, on its
// reader goroutine: the handler must not block (it hands the work on and
// replies later), so one publisher's forwarded messages keep their order.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

const forwardGroup = 0

const (
	fwdRequest byte = 1
	fwdReply   byte = 2
	fwdMessage byte = 3
)

// ForwardHandler takes a request from node from; it must call reply
// exactly once, from any goroutine, and must not block. A reply without
// error carries resp (nil: none) back to the requester.
type ForwardHandler func(from string, body []byte, reply func(resp []byte, err error))

// ErrForward wraps the error a remote handler replied with.
var ErrForward = errors.New("cluster: forwarded request failed")

// forwards are a transport's requests waiting for their reply.
type forwards struct {
	mu      sync.Mutex
	next    uint64
	pending map[uint64]fwdWait // guarded by mu
}

type fwdWait struct {
	peer uint64
	done func([]byte, error)
}

// SetForwardHandler sets what handles requests from other nodes; call it
// before other nodes may send any (before the broker serves).
func (t *TCPTransport) SetForwardHandler(h ForwardHandler) {
	t.fwdMu.Lock()
	t.fwdHandler = h
	t.fwdMu.Unlock()
}

// Forward sends body to node's handler and calls done with its reply, or
// with an error when the node is not connected or does not reply within
// timeout. done runs on another goroutine (a reader's or a timer's).
func (t *TCPTransport) Forward(node string, body []byte, timeout time.Duration, done func(resp []byte, err error)) {
	p := t.peer(NodeID(node))
	if p == nil || !p.up.Load() {
		done(nil, fmt.Errorf("cluster: node %q is not connected", node))
		return
	}
	f := &t.fwd
	f.mu.Lock()
	if f.pending == nil {
		f.pending = make(map[uint64]fwdWait)
	}
	f.next++
	id := f.next
	f.pending[id] = fwdWait{p.id, done}
	f.mu.Unlock()
	time.AfterFunc(timeout, func() { t.settle(id, fmt.Errorf("cluster: no reply from %q in %v", node, timeout)) })
	data := make([]byte, 0, 9+len(body))
	data = append(data, fwdRequest)
	data = binary.BigEndian.AppendUint64(data, id)
	data = append(data, body...)
	select {
	case p.out <- frame{forwardGroup, data}:
	default:
		t.settle(id, fmt.Errorf("cluster: node %q is behind", node))
	}
}

// settle calls a pending request's done once.
func (t *TCPTransport) settle(id uint64, err error) { t.settleReply(id, nil, err) }

func (t *TCPTransport) settleReply(id uint64, resp []byte, err error) {
	t.fwd.mu.Lock()
	w, ok := t.fwd.pending[id]
	delete(t.fwd.pending, id)
	t.fwd.mu.Unlock()
	if ok {
		w.done(resp, err)
	}
}

// failForwards fails the requests sent to a peer whose connection broke:
// their replies will not come.
func (t *TCPTransport) failForwards(peer uint64, name string) {
	t.fwd.mu.Lock()
	var ids []uint64
	for id, w := range t.fwd.pending {
		if w.peer == peer {
			ids = append(ids, id)
		}
	}
	t.fwd.mu.Unlock()
	for _, id := range ids {
		t.settle(id, fmt.Errorf("cluster: connection to %q lost", name))
	}
}

// forwardFrame handles a group-0 frame read from p.
func (t *TCPTransport) forwardFrame(p *peer, data []byte) error {
	if len(data) < 9 {
		return fmt.Errorf("%w: forward frame of %d bytes", errBadCommand, len(data))
	}
	id := binary.BigEndian.Uint64(data[1:9])
	switch data[0] {
	case fwdRequest:
		t.fwdMu.Lock()
		h := t.fwdHandler
		t.fwdMu.Unlock()
		reply := func(resp []byte, err error) { t.reply(p, id, resp, err) }
		if h == nil {
			reply(nil, errors.New("node is not serving yet"))
			return nil
		}
		h(p.name, append([]byte(nil), data[9:]...), reply)
	case fwdReply:
		if len(data) < 10 {
			return fmt.Errorf("%w: forward reply of %d bytes", errBadCommand, len(data))
		}
		if data[9] != 0 {
			t.settle(id, fmt.Errorf("%w: %s", ErrForward, data[10:]))
			break
		}
		var resp []byte
		if len(data) > 10 {
			resp = data[10:]
		}
		t.settleReply(id, resp, nil)
	case fwdMessage:
		t.message(p, data[9:]) // remote.go
	default:
		return fmt.Errorf("%w: forward frame kind %d", errBadCommand, data[0])
	}
	return nil
}

func (t *TCPTransport) reply(p *peer, id uint64, resp []byte, err error) {
	data := make([]byte, 0, 10+len(resp))
	data = append(data, fwdReply)
	data = binary.BigEndian.AppendUint64(data, id)
	if err == nil {
		data = append(data, 0)
		data = append(data, resp...)
	} else {
		data = append(data, 1)
		data = append(data, err.Error()...)
	}
	select {
	case p.out <- frame{forwardGroup, data}:
	default: // the requester times out
	}
}
