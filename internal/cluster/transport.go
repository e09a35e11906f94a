package cluster

// TCPTransport: one TCP connection per pair of nodes carries every group's
// messages both ways. The node whose name sorts first dials; the other
// accepts. A frame is
//
//	length u32 | group u64 | raftpb.Message (protobuf)
//
// where length counts group and message. Messages are marshalled by Send,
// on the host's loop, and queued per peer; a full queue or a peer that is
// not connected drops them (Raft retransmits). Reserved groups carry
// other frames: 0 forwarding (forward.go), 1 snapshot chunks, acks and
// the lost and quiesce notices (snapshot.go, quiesce.go), 2 an empty
// keepalive. The peers follow the node list (SetNodes).
//
// A frame is at most frameLimit(MaxMessageSize) long: the largest message
// the broker takes plus room for its envelope, so that any entry,
// snapshot chunk or forwarded publish the broker can make fits (Raft's
// MaxSizePerMsg lets an append carry one entry over it alone). A frame
// over the limit is an error, logged once per connection and counted
// (Oversized), and skipped: the writer does not send it, a reader
// discards it and keeps the connection, so a peer configured with a
// smaller limit does not make the pair reconnect forever. The host
// refuses a proposal over the limit (ErrTooLarge) before it enters a log.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const (
	handshakeMagic = "SLUICE-RAFT-1\n"
	peerQueueLen   = 8192
	// frameEnvelope is what a frame holds beyond one message's body: the
	// message's properties and index records, the Raft message and
	// command headers, the small entries an append may carry with it.
	frameEnvelope = 8 << 20
	// DefaultMaxMessageSize is the broker's default largest message body
	// (--max-message-size).
	DefaultMaxMessageSize = 128 << 20
)

// frameLimit is the longest frame (group and payload) a transport sends
// and reads when the broker takes messages of up to maxMessage bytes.
func frameLimit(maxMessage int64) int64 {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessageSize
	}
	return maxMessage + frameEnvelope
}

// Receiver takes the messages and snapshot frames a transport reads (the
// Host).
type Receiver interface {
	Deliver(group uint64, m *pb.Message)
	DeliverChunk(from uint64, data []byte)
}

// TCPTransport is safe for concurrent use.
type TCPTransport struct {
	self  string
	selfN uint64
	// liveFor: a peer not heard from for that long is not live
	// (quiesce.go).
	liveFor time.Duration
	ln      net.Listener
	limit   int64 // frameLimit of the configured MaxMessageSize
	// oversized counts the frames over limit this transport refused to
	// send or discarded on reading.
	oversized atomic.Uint64
	recv      Receiver
	log       *slog.Logger
	pmu       sync.RWMutex
	peers     map[uint64]*peer // guarded by pmu; changed by SetNodes

	fwd        forwards // forward.go
	fwdMu      sync.Mutex
	fwdHandler ForwardHandler // guarded by fwdMu
	msgHandler MessageHandler // guarded by fwdMu (remote.go)

	stop chan struct{}
	wg   sync.WaitGroup
}

type peer struct {
	id       uint64
	name     string
	addr     string
	dial     bool
	out      chan frame
	accepted chan net.Conn
	up       atomic.Bool
	heard    atomic.Int64  // unix nanoseconds of the last frame read from it
	queued   atomic.Int64  // bytes of the large Raft messages in out (Send)
	stop     chan struct{} // closed when the transport closes or the node is removed
}

type frame struct {
	group uint64
	data  []byte
}

// largeMessage: a Raft message this long counts against its peer's queued
// bytes. An append over MaxSizePerMsg holds one large entry, which raft
// may send again on every heartbeat answer while it probes a follower;
// queuing at most one frame limit of them per peer bounds the memory they
// hold (raft retransmits what is dropped).
const largeMessage = 2 << 20

// counted reports whether f's bytes are in its peer's queued: a large
// Raft message (not a reserved group's frame).
func (f frame) counted() bool { return f.group > keepaliveGroup && len(f.data) >= largeMessage }

// took is told of every frame taken from p.out.
func (p *peer) took(f frame) {
	if f.counted() {
		p.queued.Add(-int64(len(f.data)))
	}
}

// NewTCPTransport listens on this node's cluster address (cfg.Nodes[cfg.Node])
// and connects to the others; messages read go to recv.
func NewTCPTransport(cfg Config, recv Receiver) (*TCPTransport, error) {
	ln, err := net.Listen("tcp", cfg.Nodes[cfg.Node])
	if err != nil {
		return nil, fmt.Errorf("cluster transport: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TCPTransport{self: cfg.Node, selfN: NodeID(cfg.Node), ln: ln, recv: recv, log: log,
		limit: frameLimit(cfg.MaxMessageSize),
		peers: make(map[uint64]*peer), stop: make(chan struct{}),
		liveFor: time.Duration(cfg.ElectionTicks) * cfg.Tick}
	t.wg.Add(1)
	go func() { defer t.wg.Done(); t.acceptLoop() }()
	t.SetNodes(cfg.Nodes)
	return t, nil
}

// SetNodes makes the transport connect to exactly these nodes (besides
// itself): sessions start for new ones and stop for removed ones. A
// node's address cannot change (its session keeps the first).
func (t *TCPTransport) SetNodes(nodes map[string]string) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	select {
	case <-t.stop:
		return
	default:
	}
	for id, p := range t.peers {
		if _, ok := nodes[p.name]; !ok {
			close(p.stop)
			delete(t.peers, id)
		}
	}
	for name, addr := range nodes {
		if name == t.self || t.peers[NodeID(name)] != nil {
			continue
		}
		p := &peer{id: NodeID(name), name: name, addr: addr, dial: t.self < name,
			out: make(chan frame, peerQueueLen), accepted: make(chan net.Conn, 1), stop: make(chan struct{})}
		t.peers[p.id] = p
		t.wg.Add(1)
		go func() { defer t.wg.Done(); t.session(p) }()
	}
}

// Live reports whether a frame came from the node within liveFor.
func (t *TCPTransport) Live(to uint64) bool {
	p := t.peer(to)
	return p != nil && p.up.Load() && time.Since(time.Unix(0, p.heard.Load())) < t.liveFor
}

// Keepalive sends every connected peer an empty frame: one per node
// pair, however many groups there are. The host's loop calls it every
// tick, so a node whose loop is stuck stops being live.
func (t *TCPTransport) Keepalive() {
	t.pmu.RLock()
	defer t.pmu.RUnlock()
	for _, p := range t.peers {
		if p.up.Load() {
			select {
			case p.out <- frame{group: keepaliveGroup}:
			default:
			}
		}
	}
}

func (t *TCPTransport) peer(id uint64) *peer {
	t.pmu.RLock()
	defer t.pmu.RUnlock()
	return t.peers[id]
}

// Oversized returns how many frames over the frame limit the transport
// refused to send or discarded on reading since it started.
func (t *TCPTransport) Oversized() uint64 { return t.oversized.Load() }

// refuseOversized counts a frame over the limit and logs the first of a
// connection (logged says whether it has been).
func (t *TCPTransport) refuseOversized(p *peer, what string, n int64, logged *bool) {
	t.oversized.Add(1)
	if !*logged {
		*logged = true
		t.log.Error("cluster transport: frame over the limit (a message larger than --max-message-size allows, or a peer with a larger one)",
			"peer", p.name, "dir", what, "len", n, "limit", t.limit)
	}
}

// Addr returns the listening address.
func (t *TCPTransport) Addr() net.Addr { return t.ln.Addr() }

// Close stops every connection and goroutine.
func (t *TCPTransport) Close() error {
	t.pmu.Lock()
	close(t.stop)
	for _, p := range t.peers {
		close(p.stop)
	}
	t.pmu.Unlock()
	err := t.ln.Close()
	t.wg.Wait()
	return err
}

// Connected reports whether the connection to a node is up (true for this
// node itself).
func (t *TCPTransport) Connected(name string) bool {
	if name == t.self {
		return true
	}
	p := t.peer(NodeID(name))
	return p != nil && p.up.Load()
}

func (t *TCPTransport) Send(to, group uint64, m *pb.Message) {
	p := t.peer(to)
	if p == nil || !p.up.Load() {
		return
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.log.Error("cluster transport: encode message", "err", err)
		return
	}
	f := frame{group: group, data: data}
	if f.counted() {
		if q := p.queued.Add(int64(len(data))); q > int64(len(data)) && q > t.limit {
			p.queued.Add(-int64(len(data)))
			return // a frame limit of large messages is queued already
		}
	}
	select {
	case p.out <- f:
	default: // the peer is behind: drop, Raft retransmits
		p.took(f)
	}
}

// SendChunk queues a snapshot frame (snapshot.go) for a node; false when
// it is not connected or behind.
func (t *TCPTransport) SendChunk(to uint64, data []byte) bool {
	p := t.peer(to)
	if p == nil || !p.up.Load() {
		return false
	}
	select {
	case p.out <- frame{group: snapGroup, data: data}:
		return true
	default:
		return false
	}
}

func (t *TCPTransport) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.stop:
				return
			default:
			}
			t.log.Warn("cluster transport: accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		p, err := t.handshakeIn(c)
		if err != nil {
			t.log.Warn("cluster transport: refused connection", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			continue
		}
		select {
		case old := <-p.accepted: // superseded before its session took it
			old.Close()
		default:
		}
		p.accepted <- c
	}
}

func (t *TCPTransport) handshakeIn(c net.Conn) (*peer, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, len(handshakeMagic)+16)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	if string(buf[:len(handshakeMagic)]) != handshakeMagic {
		return nil, errors.New("not a sluice cluster peer")
	}
	from := binary.BigEndian.Uint64(buf[len(handshakeMagic):])
	to := binary.BigEndian.Uint64(buf[len(handshakeMagic)+8:])
	p := t.peer(from)
	if p == nil || p.dial || to != t.selfN {
		return nil, fmt.Errorf("unexpected peer id %x (to %x)", from, to)
	}
	return p, nil
}

func (t *TCPTransport) handshakeOut(p *peer, c net.Conn) error {
	buf := append([]byte(handshakeMagic), make([]byte, 16)...)
	binary.BigEndian.PutUint64(buf[len(handshakeMagic):], t.selfN)
	binary.BigEndian.PutUint64(buf[len(handshakeMagic)+8:], p.id)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	_, err := c.Write(buf)
	return err
}

// session keeps the connection to one peer: it gets one (dials or waits
// for the peer to dial), runs a reader for it and writes the peer's queue
// to it until it breaks, then starts over.
func (t *TCPTransport) session(p *peer) {
	backoff := 50 * time.Millisecond
	var c net.Conn
	for {
		select {
		case <-p.stop:
			if c != nil {
				c.Close()
			}
			return
		default:
		}
		if c == nil {
			c = t.connect(p, &backoff)
			if c == nil {
				return // stopped
			}
		}
		next := t.serve(p, c)
		c.Close()
		t.failForwards(p.id, p.name) // forward.go
		t.peerDown(p)                // remote.go
		c = next
	}
}

// connect returns a new connection to p, or nil once the transport stops.
// Messages queued meanwhile are dropped: they would be stale.
func (t *TCPTransport) connect(p *peer, backoff *time.Duration) net.Conn {
	for {
		if p.dial {
			d := net.Dialer{Timeout: time.Second}
			c, err := d.Dial("tcp", p.addr)
			if err == nil {
				if err = t.handshakeOut(p, c); err == nil {
					*backoff = 50 * time.Millisecond
					return c
				}
				c.Close()
			}
			timer := time.NewTimer(*backoff)
			*backoff = min(2**backoff, time.Second)
			for waiting := true; waiting; {
				select {
				case <-p.stop:
					timer.Stop()
					return nil
				case f := <-p.out:
					p.took(f)
				case <-timer.C:
					waiting = false
				}
			}
			continue
		}
		select {
		case <-p.stop:
			return nil
		case f := <-p.out:
			p.took(f)
		case c := <-p.accepted:
			return c
		}
	}
}

// serve runs one connection until it breaks or the transport stops; it
// returns a connection that superseded it (the peer redialled), if any.
func (t *TCPTransport) serve(p *peer, c net.Conn) net.Conn {
	p.up.Store(true)
	defer p.up.Store(false)
	readerDone := make(chan struct{})
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer close(readerDone)
		t.read(p, c)
	}()
	w := bufio.NewWriterSize(c, 64<<10)
	var hdr [12]byte
	var next net.Conn
	logged := false
	for {
		var f frame
		select {
		case <-p.stop:
			c.Close()
			<-readerDone
			return nil
		case <-readerDone:
			return nil
		case next = <-p.accepted:
			c.Close()
			<-readerDone
			return next
		case f = <-p.out:
		}
		// Write what is queued, then flush once (batching).
		for {
			p.took(f)
			if n := int64(8 + len(f.data)); n > t.limit {
				t.refuseOversized(p, "send", n, &logged)
			} else {
				binary.BigEndian.PutUint32(hdr[:4], uint32(n))
				binary.BigEndian.PutUint64(hdr[4:], f.group)
				w.Write(hdr[:])
				w.Write(f.data)
			}
			more := false
			select {
			case f = <-p.out:
				more = true
			default:
			}
			if !more {
				break
			}
		}
		if err := w.Flush(); err != nil {
			t.log.Debug("cluster transport: write", "peer", p.name, "err", err)
			c.Close()
			<-readerDone
			return nil
		}
	}
}

func (t *TCPTransport) read(p *peer, c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	var hdr [12]byte
	logged := false
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			c.Close()
			return
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n < 8 {
			t.log.Warn("cluster transport: bad frame length; dropping the connection", "peer", p.name, "len", n)
			c.Close()
			return
		}
		if int64(n) > t.limit {
			t.refuseOversized(p, "receive", int64(n), &logged)
			if _, err := io.CopyN(io.Discard, r, int64(n)-8); err != nil {
				c.Close()
				return
			}
			p.heard.Store(time.Now().UnixNano())
			continue
		}
		data := make([]byte, n-8)
		if _, err := io.ReadFull(r, data); err != nil {
			c.Close()
			return
		}
		group := binary.BigEndian.Uint64(hdr[4:])
		p.heard.Store(time.Now().UnixNano())
		if group == keepaliveGroup {
			continue
		}
		if group == forwardGroup {
			if err := t.forwardFrame(p, data); err != nil {
				t.log.Warn("cluster transport: bad forward frame; dropping the connection", "peer", p.name, "err", err)
				c.Close()
				return
			}
			continue
		}
		if group == snapGroup {
			t.recv.DeliverChunk(p.id, data)
			continue
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(data, m); err != nil {
			t.log.Warn("cluster transport: bad message; dropping the connection", "peer", p.name, "err", err)
			c.Close()
			return
		}
		t.recv.Deliver(group, m)
	}
}
