package cluster

// Messages: one-way frames between two nodes' brokers (a remote
// consumer's deliveries one way, its acks the other), on the connection
// the Raft messages and forwarded requests use, as group-0 frames of kind
// 3 with id 0. A message is never retransmitted: when one cannot be
// queued (the peer is not connected or its queue is full) SendMessage
// says so and the caller treats what it belonged to as broken. When a
// connection ends, both nodes hear PeerDown once it is closed, before the
// next connection to that node carries anything; what was queued for the
// old connection may still go out on the next one, so a message must make
// sense (or be ignored) after a PeerDown.
//
// The host also tells a LeaderWatcher handler of every leader change it
// sees, so that a node can move what it forwards to a queue's new leader.

import (
	"encoding/binary"

	"github.com/sluicemq/sluice/internal/store"
)

// MessageHandler takes the messages read from node from, in the order that
// node sent them, on the connection's reader goroutine: it must not block.
// down is called when the connection to a node ends (from that node's
// session goroutine).
type MessageHandler interface {
	AcceptMessage(from string, body []byte)
	PeerDown(node string)
}

// SetMessageHandler sets what handles messages and connection losses; call
// it before other nodes may send any (before the broker serves).
func (t *TCPTransport) SetMessageHandler(h MessageHandler) {
	t.fwdMu.Lock()
	t.msgHandler = h
	t.fwdMu.Unlock()
}

func (t *TCPTransport) messageHandler() MessageHandler {
	t.fwdMu.Lock()
	defer t.fwdMu.Unlock()
	return t.msgHandler
}

// SendMessage queues body for node without blocking; it reports false when
// it could not (node is not connected, or so far behind that its queue is
// full): the message is then dropped.
func (t *TCPTransport) SendMessage(node string, body []byte) bool {
	p := t.peer(NodeID(node))
	if p == nil || !p.up.Load() {
		return false
	}
	data := make([]byte, 0, 9+len(body))
	data = append(data, fwdMessage)
	data = binary.BigEndian.AppendUint64(data, 0)
	data = append(data, body...)
	select {
	case p.out <- frame{forwardGroup, data}:
		return true
	default:
		return false
	}
}

// message hands a message read from p to the handler.
func (t *TCPTransport) message(p *peer, body []byte) {
	if h := t.messageHandler(); h != nil {
		h.AcceptMessage(p.name, body)
	}
}

// peerDown tells the handler that the connection to p ended.
func (t *TCPTransport) peerDown(p *peer) {
	if h := t.messageHandler(); h != nil {
		h.PeerDown(p.name)
	}
}

// LeaderWatcher is a Handler that also hears of leader changes: leader is
// the node a group's leader is now known to be ("" when unknown). Calls
// come from the notifier, in order with the Handler's.
type LeaderWatcher interface {
	LeaderChanged(id store.QueueID, leader string)
}

// leaderNote tells a LeaderWatcher handler that group's leader is now lead.
func (h *Host) leaderNote(group, lead uint64) func() {
	return func() {
		if w, ok := h.handler.(LeaderWatcher); ok {
			w.LeaderChanged(store.QueueID(group), h.Name(lead))
		}
	}
}
