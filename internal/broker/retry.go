package broker

// Retries: x-retry-backoff and x-retry-jitter hold a returned message back
// before it is ready again; x-consumer-timeout takes back deliveries left
// unacked too long (a failed delivery, held back by the same schedule).

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// retryWait is a returned message waiting out its backoff.
type retryWait struct {
	e   entry
	due int64 // unix ms
}

// tracked is an unacked delivery of a queue with x-consumer-timeout.
type tracked struct {
	ch  *Channel
	tag uint64
	at  int64 // unix ms of the delivery
}

// parseBackoff reads x-retry-backoff: an array of non-negative integers
// (ms) or a string of Go durations separated by commas.
func parseBackoff(v any) ([]int64, error) {
	var out []int64
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			n, ok := intValue(x)
			if !ok {
				return nil, fmt.Errorf("{unacceptable_type,%s}", typeName(x))
			}
			if n < 0 {
				return nil, fmt.Errorf("{value_negative,%d}", n)
			}
			out = append(out, n)
		}
	case string:
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil {
				return nil, fmt.Errorf("{invalid_duration,<<\"%s\">>}", strings.TrimSpace(part))
			}
			if d < 0 {
				return nil, fmt.Errorf("{value_negative,<<\"%s\">>}", strings.TrimSpace(part))
			}
			out = append(out, d.Milliseconds())
		}
	default:
		return nil, fmt.Errorf("{unacceptable_type,%s}", typeName(v))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty")
	}
	return out, nil
}

// parseRetryArgs reads x-retry-backoff and x-retry-jitter into o.
func parseRetryArgs(args message.Table, o *QueueOptions, bad func(arg, why string) error) error {
	if v, ok := args["x-retry-backoff"]; ok {
		ds, err := parseBackoff(v)
		if err != nil {
			return bad("x-retry-backoff", err.Error())
		}
		o.RetryBackoff = ds
	}
	if v, ok := args["x-retry-jitter"]; ok {
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		case message.Decimal:
			f = float64(x.Value)
			for range x.Scale {
				f /= 10
			}
		default:
			n, ok := intValue(v)
			if !ok {
				return bad("x-retry-jitter", fmt.Sprintf("{unacceptable_type,%s}", typeName(v)))
			}
			f = float64(n)
		}
		if f < 0 || f > 1 {
			return bad("x-retry-jitter", fmt.Sprintf("{value_out_of_range,%g}", f))
		}
		o.RetryJitter = f
	}
	return nil
}

// backoffFor returns the wait of a message returned for the n-th time
// (n >= 1): the n-th delay, the last repeating, spread by the jitter
// uniformly over ±jitter of it.
func (q *queue) backoffFor(n uint16) int64 {
	ds := q.opts().RetryBackoff
	d := ds[min(int(max(n, 1)), len(ds))-1]
	if j := q.opts().RetryJitter; j > 0 && d > 0 {
		d += int64(float64(d) * j * (2*rand.Float64() - 1))
	}
	return max(d, 0)
}

// delayLocked parks a returned message until its backoff passes. The wait
// is durable: a delay-index entry, and for a persistent message of a
// durable queue its state records when it is due.
func (q *queue) delayLocked(b *store.Batch, e entry) {
	due := q.env.now().UnixMilli() + q.backoffFor(e.deliveries)
	if q.durable && e.flags&entryPersistent != 0 {
		b.PutState(q.id, e.seq, records.EncodeStateDue(uint32(e.deliveries), due))
		e.flags |= entryState
	}
	b.PutDelay(due, q.id, e.seq)
	q.delayed[e.seq] = retryWait{e: e, due: due}
	q.holdSeqLocked(e.seq)
	if q.env.delays != nil {
		q.env.delays.add(delayItem{due: due, q: q.id, seq: e.seq})
	}
}

// releaseRetry makes a waiting message ready again (the scheduler calls
// it when its time came). A wait that is gone only loses its index entry.
func (q *queue) releaseRetry(seq uint64, due int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var b store.Batch
	b.DeleteDelay(due, q.id, seq)
	rw, ok := q.delayed[seq]
	if q.deleted || !ok || rw.due != due {
		q.applyLocked(&b)
		return
	}
	delete(q.delayed, seq)
	e := rw.e
	if e.flags&entryState != 0 {
		b.PutState(q.id, seq, records.EncodeState(uint32(e.deliveries)))
	}
	q.ready.putBack(e)
	q.dispatchLocked()
	q.dropExpiredLocked()
	q.advanceFloorLocked(&b)
	q.applyLocked(&b)
}

// delayedCount returns how many returned messages wait out a backoff.
func (q *queue) delayedCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.delayed)
}

// trackLocked notes an unacked delivery for x-consumer-timeout.
func (q *queue) trackLocked(ch *Channel, tag, seq uint64, noAck bool) {
	if noAck || q.opts().ConsumerTimeout < 0 {
		return
	}
	q.timeouts[seq] = tracked{ch: ch, tag: tag, at: q.env.now().UnixMilli()}
}

// timeOutLocked takes back the deliveries unacked for longer than
// x-consumer-timeout: each counts as a failed delivery (returnLocked), its
// channel stays open and a late ack of it is ignored.
func (q *queue) timeOutLocked() {
	if q.opts().ConsumerTimeout < 0 || len(q.timeouts) == 0 {
		return
	}
	now := q.env.now().UnixMilli()
	var b store.Batch
	for seq, t := range q.timeouts {
		if now-t.at <= q.opts().ConsumerTimeout {
			continue
		}
		delete(q.timeouts, seq)
		e, ok := q.unacked[seq]
		if !ok {
			continue
		}
		delete(q.unacked, seq)
		t.ch.expireDelivery(t.tag)
		q.env.log.Warn("consumer timeout: delivery returned to its queue", "queue", q.name, "seq", seq,
			"timeout_ms", q.opts().ConsumerTimeout)
		q.returnLocked(&b, e, nil)
	}
	q.enforceLimitsLocked()
	q.dispatchLocked()
	q.advanceFloorLocked(&b)
	q.applyLocked(&b)
}
