package amqpserver

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/message"
)

// outItem is one thing for the writer to send: a method, optionally with
// content, and an optional callback run after the item reached the socket.
type outItem struct {
	channel uint16
	method  amqp.Method
	// deliver is the method when method is nil and content is set: a
	// basic.deliver kept in the item, so that a delivery allocates no
	// method of its own.
	deliver amqp.BasicDeliver
	content bool
	props   *message.Properties
	raw     []byte // when not nil, the properties encoded, written instead of props
	body    []byte
	after   func()
	// refused, when set, is called instead of sending an item that cannot
	// be encoded (after still runs): a delivery is then taken back.
	refused func()
	// undeliverable, when set, is called with tag instead, the same way:
	// one function per channel rather than a closure per delivery.
	undeliverable func(tag uint64)
	tag           uint64
	// lazy, when set instead of method, yields the methods to write at the
	// moment the writer reaches the item (publisher confirms coalesce so).
	lazy func() []amqp.Method
}

// size estimates the bytes an item holds until it is written: its body and
// a flat allowance for the method, the header and the item itself. The
// estimate only has to grow with what the client does not read.
func (it *outItem) size() int64 {
	const overhead = 256
	return overhead + int64(len(it.body))
}

// writer owns a connection's amqp.Writer. Other goroutines hand it items
// with enqueue; its goroutine writes them in order and flushes whenever the
// queue runs dry, so bursts share one syscall. It also sends heartbeats when
// nothing else was written for half the heartbeat interval.
//
// The bytes queued and not yet written are bounded: once they reach limit
// the writer is full until they drain to half of it. While full, onFull
// stops the broker's deliveries to the connection's consumers and the
// reader stops reading the socket (waitRoom), so neither deliveries nor
// replies to a client that does not read can grow without bound. A socket
// that takes less than 64 KiB in the write timeout is closed
// (deadlineWriter).
type writer struct {
	w        *amqp.Writer
	nc       net.Conn
	log      *slog.Logger
	frameMax atomic.Uint32
	limit    int64
	queued   atomic.Int64 // bytes of items enqueued and not yet written
	full     atomic.Bool  // written under mu

	signal    chan struct{} // capacity 1: items are queued
	heartbeat chan time.Duration
	stop      chan struct{}
	done      chan struct{}

	// mu guards the fields below.
	mu      sync.Mutex
	queue   []outItem
	stopped bool          // no more items are accepted
	room    chan struct{} // while full: closed when it drains
	onFull  func(full bool)
}

// newWriter returns the writer of nc; frames go out through out (nc,
// counted), each write given writeTimeout to make progress. The writer
// holds at most about limit bytes for the client.
func newWriter(nc net.Conn, out io.Writer, log *slog.Logger, limit int64, writeTimeout time.Duration) *writer {
	wr := &writer{
		w:         amqp.NewWriter(deadlineWriter{nc: nc, w: out, timeout: writeTimeout}),
		nc:        nc,
		log:       log,
		limit:     limit,
		signal:    make(chan struct{}, 1),
		heartbeat: make(chan time.Duration, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	wr.frameMax.Store(amqp.FrameMinSize)
	return wr
}

// enqueue queues items for writing; it never blocks. It reports false when
// the writer has stopped.
func (wr *writer) enqueue(items ...outItem) bool {
	var n int64
	for i := range items {
		n += items[i].size()
	}
	return wr.add(items, n)
}

// reserve counts n bytes against the bound ahead of their items, which
// are then handed over with enqueueReserved or given up with written(n):
// deliveries held back while basic.consume is set up fill the writer as
// if queued, so the broker stops delivering to a client that does not read.
func (wr *writer) reserve(n int64) {
	wr.add(nil, n)
}

// enqueueReserved is enqueue for items whose bytes reserve counted.
func (wr *writer) enqueueReserved(items ...outItem) bool {
	return wr.add(items, 0)
}

// add queues items and counts n more bytes.
func (wr *writer) add(items []outItem, n int64) bool {
	wr.mu.Lock()
	if wr.stopped {
		wr.mu.Unlock()
		return false
	}
	wr.queue = append(wr.queue, items...)
	if wr.queued.Add(n) >= wr.limit && !wr.full.Load() {
		wr.setFullLocked(true)
	}
	wr.mu.Unlock()
	select {
	case wr.signal <- struct{}{}:
	default:
	}
	return true
}

// setFullLocked changes the full state; called with mu held.
func (wr *writer) setFullLocked(full bool) {
	wr.full.Store(full)
	if full {
		wr.room = make(chan struct{})
	} else {
		close(wr.room)
		wr.room = nil
	}
	if wr.onFull != nil {
		wr.onFull(full)
	}
}

// written notes that an item of n bytes left the queue for the socket.
func (wr *writer) written(n int64) {
	if wr.queued.Add(-n) > wr.limit/2 || !wr.full.Load() {
		return
	}
	wr.mu.Lock()
	if wr.full.Load() && wr.queued.Load() <= wr.limit/2 {
		wr.setFullLocked(false)
	}
	wr.mu.Unlock()
}

// setOnFull sets the function told of every change of the full state, and
// tells it the current one when full. It must not block.
func (wr *writer) setOnFull(f func(full bool)) {
	wr.mu.Lock()
	wr.onFull = f
	if wr.full.Load() {
		f(true)
	}
	wr.mu.Unlock()
}

// waitRoom returns a channel closed when the writer has room again, or nil
// when it has room now.
func (wr *writer) waitRoom() <-chan struct{} {
	if !wr.full.Load() {
		return nil
	}
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return wr.room
}

func (wr *writer) method(channel uint16, m amqp.Method) bool {
	return wr.enqueue(outItem{channel: channel, method: m})
}

// setHeartbeat sets the interval of the peer's expectation; the writer sends
// a heartbeat after half of it passed without a write. Zero disables.
func (wr *writer) setHeartbeat(d time.Duration) {
	select {
	case <-wr.heartbeat:
	default:
	}
	wr.heartbeat <- d
}

// close stops the writer after it wrote and flushed what is queued, and
// waits for its goroutine.
func (wr *writer) close() {
	close(wr.stop)
	<-wr.done
}

func (wr *writer) run() {
	defer close(wr.done)
	var (
		tick    <-chan time.Time
		ticker  *time.Ticker
		written bool
	)
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		select {
		case <-wr.signal:
			if !wr.drain() {
				return
			}
			written = true
		case d := <-wr.heartbeat:
			if ticker != nil {
				ticker.Stop()
				ticker, tick = nil, nil
			}
			if d > 0 {
				ticker = time.NewTicker(d / 2)
				tick = ticker.C
			}
		case <-tick:
			if !written {
				err := wr.w.WriteHeartbeat()
				if err == nil {
					err = wr.w.Flush()
				}
				if err != nil {
					wr.fail(err)
					return
				}
				wr.log.Debug("heartbeat sent")
			}
			written = false
		case <-wr.stop:
			wr.drain()
			wr.mu.Lock()
			wr.stopped = true
			wr.queue = nil
			wr.mu.Unlock()
			return
		}
	}
}

// drain writes queued items until the queue is empty, flushing then. It
// reports false after a write error, having closed the socket so that the
// reader stops too.
func (wr *writer) drain() bool {
	var afters []func()
	var batch []outItem
	for {
		wr.mu.Lock()
		batch, wr.queue = wr.queue, batch[:0]
		stopped := wr.stopped
		wr.mu.Unlock()
		if stopped {
			return false
		}
		if len(batch) == 0 {
			break
		}
		for i := range batch {
			err := wr.write(&batch[i])
			wr.written(batch[i].size())
			if err != nil {
				var ee *amqp.EncodeError
				if !errors.As(err, &ee) {
					wr.fail(err)
					return false
				}
				wr.refuse(&batch[i], err)
			}
			if batch[i].after != nil {
				afters = append(afters, batch[i].after)
			}
			batch[i] = outItem{}
		}
	}
	if err := wr.w.Flush(); err != nil {
		wr.fail(err)
		return false
	}
	for _, f := range afters {
		f()
	}
	return true
}

func (wr *writer) write(it *outItem) error {
	if it.lazy != nil {
		for _, m := range it.lazy() {
			if err := wr.w.WriteMethod(it.channel, m); err != nil {
				return err
			}
		}
		return nil
	}
	m := it.methodOf()
	if it.content && it.raw != nil {
		return wr.w.WriteMethodContentRaw(it.channel, m, m.ClassID(), it.raw, it.body, wr.frameMax.Load())
	}
	if it.content {
		return wr.w.WriteMethodContent(it.channel, m, m.ClassID(), it.props, it.body, wr.frameMax.Load())
	}
	return wr.w.WriteMethod(it.channel, m)
}

// refuse handles an item that cannot be encoded (nothing of it was
// written). Dropping the connection for it, as a write error does, would
// make a message that cannot be sent to this client cost every consumer of
// its queue its connection, again and again; instead the item is skipped
// and its refused callback takes a delivery back.
func (wr *writer) refuse(it *outItem, err error) {
	name := "lazy"
	if it.lazy == nil {
		name = it.methodOf().Name()
	}
	wr.log.Warn("amqp frame cannot be encoded, not sent", logChannel, it.channel, logMethod, name, logErr, err)
	switch {
	case it.refused != nil:
		it.refused()
	case it.undeliverable != nil:
		it.undeliverable(it.tag)
	}
}

// methodOf returns the item's method (not for a lazy item).
func (it *outItem) methodOf() amqp.Method {
	if it.method == nil && it.content {
		return &it.deliver
	}
	return it.method
}

func (wr *writer) fail(err error) {
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		wr.log.Warn("amqp client accepted nothing for the write timeout, closing", logErr, err)
	} else {
		wr.log.Debug("write failed", logErr, err)
	}
	wr.mu.Lock()
	wr.stopped = true
	wr.queue = nil
	wr.mu.Unlock()
	wr.nc.Close()
}

// deadlineWriter writes to nc (through w, which counts) in pieces of at
// most writePiece bytes, each given timeout from when the one before it
// was taken: a client that takes less than a piece in the timeout loses
// its connection, at most timeout after its socket last took a byte.
//
// A deadline per call, renewed whenever a call had moved some bytes, let a
// stall that began inside a large write cost two timeouts or more: the
// call moved bytes, then none, and only its end (one timeout after it
// began) could tell; and the kernel, compacting a full receive queue,
// lets a few more bytes through now and then, renewing it again.
type deadlineWriter struct {
	nc      net.Conn
	w       io.Writer
	timeout time.Duration
}

// writePiece is the most a client must take within the write timeout: the
// writer's buffer, so that flushing it is one system call.
const writePiece = 64 << 10

func (d deadlineWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		d.nc.SetWriteDeadline(time.Now().Add(d.timeout))
		n, err := d.w.Write(p[:min(len(p), writePiece)])
		total += n
		p = p[n:]
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
