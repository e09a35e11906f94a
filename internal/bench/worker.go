package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// confirmGrace is how long a publisher waits, after it stopped publishing,
// for the confirms still outstanding.
const confirmGrace = 10 * time.Second

// phaseRun is the state the workers of one phase share. Counters are atomic
// because the progress printer reads them while workers add to them.
type phaseRun struct {
	// limit bounds the messages publishers send in all (0: none).
	limit   int64
	claimed atomic.Int64

	sent, confirmed, nacked   atomic.Int64
	consumed, acked, requeued atomic.Int64
	publishersDone            atomic.Bool
	// drainTarget, when positive, is the number of acks that ends the
	// consumers of a phase without publishers (backlog's drain).
	drainTarget int64

	done     chan struct{} // closed when consumers have everything
	doneOnce sync.Once

	churn *churnTable // nil unless consumers requeue

	// copies is how many queues each published message reaches (fanout),
	// so consumers are done at that many acks per message.
	copies int64
	// interval, when positive, is the time between one publisher's
	// messages (Config.Rate).
	interval time.Duration
}

func newPhaseRun(limit, drainTarget int64, requeues int) *phaseRun {
	p := &phaseRun{limit: limit, drainTarget: drainTarget, done: make(chan struct{}), copies: 1}
	if requeues > 0 {
		p.churn = &churnTable{counts: make(map[uint64]int)}
	}
	return p
}

// claim reserves one message for a publisher; false once limit is reached.
func (p *phaseRun) claim() bool {
	return p.limit == 0 || p.claimed.Add(1) <= p.limit
}

// checkDone closes done when consumers have acked every message the
// publishers got into the queue: the confirmed ones with confirms, the sent
// ones without. Consumers call it after each ack, the phase once its
// publishers have finished.
func (p *phaseRun) checkDone(confirms bool) {
	var target int64
	switch {
	case p.drainTarget > 0:
		target = p.drainTarget
	case !p.publishersDone.Load():
		return
	case confirms:
		target = p.confirmed.Load()
	default:
		target = p.sent.Load()
	}
	if p.drainTarget == 0 {
		target *= p.copies
	}
	if p.acked.Load() >= target {
		p.doneOnce.Do(func() { close(p.done) })
	}
}

// churnTable counts the deliveries of each message, for all consumers of a
// churn phase.
type churnTable struct {
	mu     sync.Mutex
	counts map[uint64]int
}

// deliver counts one delivery of message id and reports whether it is to be
// requeued (true) or acked; an acked message is forgotten.
func (t *churnTable) deliver(id uint64, requeues int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.counts[id] + 1
	if n <= requeues {
		t.counts[id] = n
		return true
	}
	delete(t.counts, id)
	return false
}

// Body layout: the send time (nanoseconds since the run's epoch), then the
// message id (publisher index << 40 | sequence), both big endian; the rest is
// filler.
func stampBody(body []byte, sentAt time.Duration, id uint64) {
	binary.BigEndian.PutUint64(body[0:8], uint64(sentAt))
	binary.BigEndian.PutUint64(body[8:16], id)
}

func readStamp(body []byte) (sentAt time.Duration, id uint64, ok bool) {
	if len(body) < minMessageSize {
		return 0, 0, false
	}
	return time.Duration(binary.BigEndian.Uint64(body[0:8])), binary.BigEndian.Uint64(body[8:16]), true
}

func newBody(size int) []byte {
	b := make([]byte, size)
	for i := minMessageSize; i < size; i++ {
		b[i] = byte('a' + i%26)
	}
	return b
}

// publisher publishes on its own connection until ctx ends or the phase's
// limit is reached, then waits (within confirmGrace, or until hard ends) for
// its outstanding confirms. It records publish-to-confirm latency in lat.
func (s *session) publisher(ctx, hard context.Context, idx int, p *phaseRun, lat *Histogram) error {
	conn, err := s.dial(hard, fmt.Sprintf("publisher %d", idx))
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("publisher %d: open channel: %w", idx, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	k := s.cfg.Confirms
	var (
		slots      []atomic.Int64 // send time by delivery tag modulo k
		tokens     chan struct{}  // one per unconfirmed message
		readerDone = make(chan struct{})
	)
	if k > 0 {
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("publisher %d: confirm.select: %w", idx, err)
		}
		slots = make([]atomic.Int64, k)
		tokens = make(chan struct{}, k)
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, k))
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			defer close(readerDone)
			for c := range confirms {
				lat.Record(time.Since(s.epoch) - time.Duration(slots[c.DeliveryTag%uint64(k)].Load()))
				if c.Ack {
					p.confirmed.Add(1)
				} else {
					p.nacked.Add(1)
				}
				<-tokens
			}
		})
	} else {
		close(readerDone)
	}
	// Closing the channel ends the confirm reader; deferred after wg.Wait,
	// so it runs first.
	defer ch.Close()

	mode := amqp.Transient
	if s.cfg.Persistent {
		mode = amqp.Persistent
	}
	body := newBody(s.cfg.MessageSize)
	msg := amqp.Publishing{DeliveryMode: mode, Body: body, Headers: benchHeaders(s.cfg.Headers)}
	exchange, key := s.cfg.exchange()
	pace := newPacer(p.interval)
	for seq := uint64(0); p.claim(); seq++ {
		if !pace.wait(ctx) {
			return s.awaitConfirms(hard, idx, tokens, readerDone)
		}
		if k > 0 {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return s.awaitConfirms(hard, idx, tokens, readerDone)
			case <-readerDone:
				return fmt.Errorf("publisher %d: channel closed: %w", idx, closeReason(closed))
			}
		} else if ctx.Err() != nil {
			return nil
		}
		sentAt := time.Since(s.epoch)
		if k > 0 {
			slots[ch.GetNextPublishSeqNo()%uint64(k)].Store(int64(sentAt))
		}
		stampBody(body, sentAt, uint64(idx)<<40|seq)
		if err := ch.Publish(exchange, key, false, false, msg); err != nil {
			return fmt.Errorf("publisher %d: publish: %w", idx, err)
		}
		p.sent.Add(1)
	}
	if k > 0 {
		return s.awaitConfirms(hard, idx, tokens, readerDone)
	}
	return nil
}

// awaitConfirms waits until every token is back, which means every message
// was confirmed, within confirmGrace.
func (s *session) awaitConfirms(hard context.Context, idx int, tokens chan struct{}, readerDone <-chan struct{}) error {
	t := time.NewTimer(confirmGrace)
	defer t.Stop()
	for range cap(tokens) {
		select {
		case tokens <- struct{}{}:
		case <-readerDone:
			return fmt.Errorf("publisher %d: channel closed while awaiting confirms", idx)
		case <-hard.Done():
			return nil
		case <-t.C:
			return fmt.Errorf("publisher %d: confirms outstanding %v after publishing stopped", idx, confirmGrace)
		}
	}
	return nil
}

// consumer consumes on its own connection until ctx ends or the phase is
// done, acking (or, in churn, first nacking) every delivery. It records
// publish-to-delivery latency of acked deliveries in lat.
func (s *session) consumer(ctx, hard context.Context, idx int, p *phaseRun, lat *Histogram) error {
	conn, err := s.dial(hard, fmt.Sprintf("consumer %d", idx))
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("consumer %d: open channel: %w", idx, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	defer ch.Close()
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("consumer %d: basic.qos: %w", idx, err)
	}
	qs := s.cfg.queues()
	deliveries, err := ch.Consume(qs[idx%len(qs)], fmt.Sprintf("sluice-bench-%d", idx), false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consumer %d: basic.consume: %w", idx, err)
	}
	acker := acker{ch: ch, every: s.cfg.MultiAck}
	for {
		select {
		case <-ctx.Done():
			return acker.flush()
		case <-p.done:
			return acker.flush()
		case d, ok := <-deliveries:
			if !ok {
				if ctx.Err() != nil || hard.Err() != nil {
					return nil
				}
				return fmt.Errorf("consumer %d: deliveries ended: %w", idx, closeReason(closed))
			}
			p.consumed.Add(1)
			sentAt, id, ok := readStamp(d.Body)
			if !ok {
				return fmt.Errorf("consumer %d: body of %d bytes is not the bench's", idx, len(d.Body))
			}
			if p.churn != nil && p.churn.deliver(id, s.cfg.Requeues) {
				if err := ch.Nack(d.DeliveryTag, false, true); err != nil {
					return fmt.Errorf("consumer %d: nack: %w", idx, err)
				}
				p.requeued.Add(1)
				continue
			}
			lat.Record(time.Since(s.epoch) - sentAt)
			if err := acker.ack(d.DeliveryTag); err != nil {
				return fmt.Errorf("consumer %d: %w", idx, err)
			}
			p.acked.Add(1)
			p.checkDone(s.cfg.Confirms > 0)
		}
	}
}

// pacer spaces a publisher's messages interval apart (none when 0). It
// keeps to the schedule rather than to the gap since the last message, so a
// late wake-up is made up by the next messages and the rate holds.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(interval time.Duration) *pacer { return &pacer{interval: interval, next: time.Now()} }

// wait returns once the next message is due: true, or false when ctx ended.
func (pc *pacer) wait(ctx context.Context) bool {
	if pc.interval <= 0 {
		return true
	}
	if d := time.Until(pc.next); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	pc.next = pc.next.Add(pc.interval)
	return true
}

// acker acks deliveries one by one, or every `every` with multiple=true.
type acker struct {
	ch      *amqp.Channel
	every   int
	pending int
	last    uint64
}

func (a *acker) ack(tag uint64) error {
	if a.every <= 1 {
		if err := a.ch.Ack(tag, false); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		return nil
	}
	a.pending++
	a.last = tag
	if a.pending < a.every {
		return nil
	}
	return a.flush()
}

func (a *acker) flush() error {
	if a.pending == 0 {
		return nil
	}
	a.pending = 0
	if err := a.ch.Ack(a.last, true); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("ack multiple: %w", err)
	}
	return nil
}

// closeReason returns why a channel was closed, from its NotifyClose
// channel, or amqp.ErrClosed when it does not say.
func closeReason(c <-chan *amqp.Error) error {
	select {
	case e, ok := <-c:
		if ok && e != nil {
			return e
		}
	default:
	}
	return amqp.ErrClosed
}

// benchHeaders returns n headers, h00…, each a 16-byte string; nil for 0.
func benchHeaders(n int) amqp.Table {
	if n == 0 {
		return nil
	}
	t := make(amqp.Table, n)
	for i := range n {
		t[fmt.Sprintf("h%02d", i)] = fmt.Sprintf("value-%010d", i)
	}
	return t
}
