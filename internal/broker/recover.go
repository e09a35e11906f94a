package broker

// Recovery: Open rebuilds durable definitions and the durable queues'
// message indexes from the store.

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
)

func (b *Broker) recover() error {
	st := b.env.st
	known := make(map[store.QueueID]bool)
	var queues []*queue
	if err := scanDefs(st, metaExchange, decodeExchangeDef, func(d exchangeDef) {
		vh := b.vhosts[d.VHost]
		if vh == nil || vh.exchanges[d.Name] != nil {
			return
		}
		vh.exchanges[d.Name] = newExchange(d.Name, d.Type, true, d.AutoDelete, d.Internal, d.Args)
	}); err != nil {
		return err
	}
	if err := scanDefs(st, metaQueue, decodeQueueDef, func(d queueDef) {
		vh := b.vhosts[d.VHost]
		if vh == nil {
			return
		}
		opts, err := parseQueueArgs(d.Args, d.Name, d.VHost)
		if err != nil {
			b.env.log.Warn("recover queue: ignoring invalid arguments", "queue", d.Name, "err", err)
			opts, _ = parseQueueArgs(nil, d.Name, d.VHost)
		}
		q := newQueue(vh, d.ID, d.Name)
		q.durable, q.declaredDurable, q.autoDelete, q.args, q.opts = true, true, d.AutoDelete, d.Args, opts
		vh.queues[q.name] = q
		known[q.id] = true
		queues = append(queues, q)
	}); err != nil {
		return err
	}
	if err := scanDefs(st, metaBinding, decodeBindingDef, func(d bindingDef) {
		b.recoverBinding(d)
	}); err != nil {
		return err
	}
	if v, err := st.GetMeta(metaDelayQueueID); err == nil {
		if n, perr := strconv.ParseUint(string(v), 10, 64); perr == nil {
			known[store.QueueID(n)] = true
		}
	}
	if err := b.dropUnknownQueues(known); err != nil {
		return err
	}
	for _, q := range queues {
		if err := q.recoverMessages(); err != nil {
			return err
		}
	}
	return nil
}

// scanDefs decodes every metadata value under prefix.
func scanDefs[D any](st store.Store, prefix string, decode func([]byte) (D, error), fn func(D)) error {
	var derr error
	err := st.ScanMeta(prefix, func(key string, v []byte) bool {
		d, err := decode(v)
		if err != nil {
			derr = fmt.Errorf("definition %q: %w", key, err)
			return false
		}
		fn(d)
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("open broker: recover definitions: %w", err)
	}
	return nil
}

func (b *Broker) recoverBinding(d bindingDef) {
	vh := b.vhosts[d.VHost]
	if vh == nil {
		return
	}
	src := vh.exchanges[d.Source]
	if src == nil {
		return
	}
	bd := &binding{src: src, key: d.Key, args: d.Args}
	if d.ToExchange {
		bd.x = vh.exchanges[d.Dest]
	} else {
		bd.q = vh.queues[d.Dest]
	}
	if (bd.x == nil && bd.q == nil) || src.findBinding(bd.q, bd.x, bd.key, bd.args) != nil {
		return
	}
	src.addBinding(bd)
}

// dropUnknownQueues removes the messages of queues that did not survive
// (non-durable or exclusive ones of the previous run).
func (b *Broker) dropUnknownQueues(known map[store.QueueID]bool) error {
	var batch store.Batch
	err := b.env.st.ScanMeta(metaQueueID, func(key string, _ []byte) bool {
		n, err := strconv.ParseUint(key[len(metaQueueID):], 16, 64)
		if err != nil {
			return true
		}
		if id := store.QueueID(n); !known[id] {
			batch.DropQueue(id)
			batch.DeleteMeta(key)
		}
		return true
	})
	if err == nil {
		err = b.env.st.Apply(&batch, true)
	}
	if err != nil {
		return fmt.Errorf("open broker: drop leftover queues: %w", err)
	}
	return nil
}

// msgState is a decoded per-message state record.
type msgState struct {
	deliveries uint32
	due        int64 // unix ms a retry wait ends; 0 when not waiting
}

// recoverMessages rebuilds a durable queue's index from its floor:
// persistent messages come back ready (redelivered when they had been
// delivered), transient ones are deleted.
func (q *queue) recoverMessages() error {
	st := q.env.st
	floor, err := st.Floor(q.id)
	if err != nil {
		return fmt.Errorf("open broker: queue %q floor: %w", q.name, err)
	}
	states := make(map[uint64]msgState)
	var batch store.Batch
	err = st.ScanState(q.id, func(seq uint64, v []byte) bool {
		n, due, derr := decodeState(v)
		if derr != nil || seq < floor {
			batch.DeleteState(q.id, seq)
			return true
		}
		states[seq] = msgState{n, due}
		return true
	})
	if err != nil {
		return fmt.Errorf("open broker: queue %q states: %w", q.name, err)
	}
	last := floor
	err = st.Scan(q.id, floor, func(seq uint64, rec []byte) bool {
		last = max(last, seq)
		flags, ferr := recordFlags(rec)
		size, serr := recordBodySize(rec)
		if ferr == nil {
			ferr = serr
		}
		if ferr != nil || flags&recPersistent == 0 {
			if ferr != nil {
				q.env.log.Warn("recover queue: dropping unreadable message", "queue", q.name, "seq", seq, "err", ferr)
			}
			batch.DeleteMessage(q.id, seq)
			if _, ok := states[seq]; ok {
				batch.DeleteState(q.id, seq)
			}
			return true
		}
		e := entry{seq: seq, size: uint32(min(size, 1<<32-1)), flags: entryPersistent}
		if m, err := decodeRecord(rec); err == nil {
			ttl, err := messageTTL(m)
			if err != nil {
				ttl = -1
			}
			e.expires = expiry(recordPublished(rec), ttl, q.opts.MessageTTL)
			if m.Properties.Flags&message.FlagPriority != 0 {
				e.priority = q.priorityLevel(m.Properties.Priority)
			}
		}
		if st, ok := states[seq]; ok {
			e.flags |= entryRedelivered | entryState
			e.deliveries = uint16(min(st.deliveries, 1<<16-1))
			delete(states, seq)
			if st.due != 0 {
				// Waiting out a retry backoff: the scheduler reads its
				// delay-index entry and releases it.
				q.delayed[seq] = retryWait{e: e, due: st.due}
				q.holdSeqLocked(seq)
				return true
			}
		}
		q.ready.push(e)
		return true
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("open broker: queue %q messages: %w", q.name, err)
	}
	for seq := range states {
		batch.DeleteState(q.id, seq) // state of a message that is gone
	}
	q.nextSeq = max(last+1, 1)
	q.high = q.nextSeq
	q.mu.Lock()
	q.advanceFloorLocked(&batch)
	q.mu.Unlock()
	if err := st.Apply(&batch, true); err != nil {
		return fmt.Errorf("open broker: queue %q cleanup: %w", q.name, err)
	}
	return nil
}
