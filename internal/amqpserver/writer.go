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
	content bool
	props   *message.Properties
	body    []byte
	after   func()
	// refused, when set, is called instead of sending an item that cannot
	// be encoded (after still runs): a delivery is then taken back.
	refused func()
	// lazy, when set instead of method, yields the methods to write at the
	// moment the writer reaches the item (publisher confirms coalesce so).
	lazy func() []amqp.Method
}

// writer owns a connection's amqp.Writer. Other goroutines hand it items
// with enqueue; its goroutine writes them in order and flushes whenever the
// queue runs dry, so bursts share one syscall. It also sends heartbeats when
// nothing else was written for half the heartbeat interval.
type writer struct {
	w        *amqp.Writer
	nc       net.Conn
	log      *slog.Logger
	frameMax atomic.Uint32

	signal    chan struct{} // capacity 1: items are queued
	heartbeat chan time.Duration
	stop      chan struct{}
	done      chan struct{}

	// mu guards the fields below.
	mu      sync.Mutex
	queue   []outItem
	stopped bool // no more items are accepted
}

// newWriter returns the writer of nc; frames go out through out (nc,
// counted).
func newWriter(nc net.Conn, out io.Writer, log *slog.Logger) *writer {
	wr := &writer{
		w:         amqp.NewWriter(out),
		nc:        nc,
		log:       log,
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
	wr.mu.Lock()
	if wr.stopped {
		wr.mu.Unlock()
		return false
	}
	wr.queue = append(wr.queue, items...)
	wr.mu.Unlock()
	select {
	case wr.signal <- struct{}{}:
	default:
	}
	return true
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
			if err := wr.write(&batch[i]); err != nil {
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
	if it.content {
		return wr.w.WriteMethodContent(it.channel, it.method, it.method.ClassID(), it.props, it.body, wr.frameMax.Load())
	}
	return wr.w.WriteMethod(it.channel, it.method)
}

// refuse handles an item that cannot be encoded (nothing of it was
// written). Dropping the connection for it, as a write error does, would
// make a message that cannot be sent to this client cost every consumer of
// its queue its connection, again and again; instead the item is skipped
// and its refused callback takes a delivery back.
func (wr *writer) refuse(it *outItem, err error) {
	name := "lazy"
	if it.method != nil {
		name = it.method.Name()
	}
	wr.log.Warn("amqp frame cannot be encoded, not sent", logChannel, it.channel, logMethod, name, logErr, err)
	if it.refused != nil {
		it.refused()
	}
}

func (wr *writer) fail(err error) {
	wr.log.Debug("write failed", logErr, err)
	wr.mu.Lock()
	wr.stopped = true
	wr.queue = nil
	wr.mu.Unlock()
	wr.nc.Close()
}
