package broker

// Recovery: Open rebuilds durable definitions and the durable queues'
// message indexes from the store.

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

func (b *Broker) recover() error {
	st := b.env.st
	known := make(map[store.QueueID]bool)
	var queues []*queue
	if err := scanDefs(st, records.MetaExchange, records.DecodeExchangeDef, func(d records.ExchangeDef) {
		vh := b.vhosts[d.VHost]
		if vh == nil || vh.exchanges[d.Name] != nil {
			return
		}
		vh.exchanges[d.Name] = recoverExchange(d)
	}); err != nil {
		return err
	}
	if err := scanDefs(st, records.MetaQueue, records.DecodeQueueDef, func(d records.QueueDef) {
		vh := b.vhosts[d.VHost]
		if vh == nil {
			return
		}
		q := vh.recoverQueue(d)
		vh.queues[q.name] = q
		if q.home != "" {
			return // another node's (metasync.go): its id is not one of this store's
		}
		known[q.id] = true
		if !q.quorum {
			queues = append(queues, q)
		}
	}); err != nil {
		return err
	}
	for _, vh := range b.vhosts {
		vh.applyExchangePolicies() // policy.go
	}
	if err := scanDefs(st, records.MetaBinding, records.DecodeBindingDef, func(d records.BindingDef) {
		if vh := b.vhosts[d.VHost]; vh != nil {
			vh.recoverBindingLocked(d)
		}
	}); err != nil {
		return err
	}
	if v, err := st.GetMeta(records.MetaDelayQueueID); err == nil {
		if id, _, derr := records.DecodeQueueIDCounter("delay queue id", v); derr == nil {
			known[id] = true
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

// recoverExchange makes the exchange of a stored definition.
func recoverExchange(d records.ExchangeDef) *exchange {
	return newExchange(d.Name, d.Type, true, d.AutoDelete, d.Internal, d.Args)
}

// recoverQueue makes the queue of a stored definition: a quorum queue
// (rebuilt when this node serves it, quorum.go), another node's classic
// queue (its placement names that node, metasync.go) or one of this
// node's, whose messages the caller recovers.
func (vh *vhost) recoverQueue(d records.QueueDef) *queue {
	opts, err := parseQueueArgs(d.Args, d.Name, d.VHost)
	if err != nil {
		vh.env.log.Warn("recover queue: ignoring invalid arguments", "queue", d.Name, "err", err)
		opts, _ = parseQueueArgs(nil, d.Name, d.VHost)
	}
	q := newQueue(vh, d.ID, d.Name)
	q.durable, q.declaredDurable, q.autoDelete, q.args = true, true, d.AutoDelete, d.Args
	q.setOpts(vh.env.policies.effectiveOptions(d.VHost, d.Name, d.Args, opts)) // policy.go
	if vh.env.cluster != nil && vh.env.cluster.Replicated(q.id) {
		q.quorum = true
	} else {
		q.home = vh.placement(d.Name)
	}
	return q
}

// recoverBindingLocked adds the binding of a stored definition, unless
// its ends are missing or it exists (vh.mu held, or Open running alone).
func (vh *vhost) recoverBindingLocked(d records.BindingDef) {
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
	err := b.env.st.ScanMeta(records.MetaQueueID, func(key string, _ []byte) bool {
		n, err := strconv.ParseUint(key[len(records.MetaQueueID):], 16, 64)
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

// recoverMessages rebuilds a durable queue's index from its floor, reading
// only the small index entries the write pipeline wrote next to each record
// (store.Store.ScanIndex), never the records: persistent messages come back
// ready (redelivered, with their delivery count, when they had been
// delivered; waiting when they were waiting out a retry backoff), transient
// ones are deleted.
func (q *queue) recoverMessages() error {
	var batch store.Batch
	q.mu.Lock()
	err := q.rebuildLocked(&batch)
	q.mu.Unlock()
	if err != nil {
		return err
	}
	if err := q.env.st.Apply(&batch, true); err != nil {
		return fmt.Errorf("open broker: queue %q cleanup: %w", q.name, err)
	}
	return nil
}

// rebuildLocked fills the queue's index from the store and adds the
// cleanup (transient messages, stale states, the floor) to batch.
func (q *queue) rebuildLocked(batch *store.Batch) error {
	st := q.env.st
	floor, err := st.Floor(q.id)
	if err != nil {
		return fmt.Errorf("open broker: queue %q floor: %w", q.name, err)
	}
	// What the store holds, so advancing the floor below writes only a
	// floor that moved (an unchanged floor written at every start made each
	// restart leave one more overlapping memtable flush behind).
	q.floor = floor
	states := make(map[uint64]msgState)
	err = st.ScanState(q.id, func(seq uint64, v []byte) bool {
		if seq == records.MarkSeq {
			mark, derr := records.DecodeMark(v)
			if derr != nil {
				q.env.log.Warn("recover queue: unreadable delivered mark; its messages come back undelivered",
					"queue", q.name, "err", derr)
				batch.DeleteState(q.id, seq)
			}
			q.mark = mark
			return true
		}
		n, due, derr := records.DecodeState(v)
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
	last, err := st.LastSeq(q.id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("open broker: queue %q last seq: %w", q.name, err)
	}
	err = st.ScanIndex(q.id, floor, func(seq uint64, v []byte) bool {
		q.recoverEntry(batch, seq, v, states)
		return true
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("open broker: queue %q messages: %w", q.name, err)
	}
	for seq := range states {
		batch.DeleteState(q.id, seq) // state of a message that is gone
	}
	q.nextSeq = max(last, floor) + 1
	q.high = q.nextSeq
	q.advanceFloorLocked(batch)
	return nil
}

// recoverEntry puts the message of one index entry back in the
// queue (ready, or waiting out its retry backoff), or deletes it when it
// is transient. An unreadable entry is rebuilt from the message's record;
// a message whose record is unreadable too is dropped. Called before the
// queue is shared, so q.mu is not needed.
func (q *queue) recoverEntry(batch *store.Batch, seq uint64, v []byte, states map[uint64]msgState) {
	x, err := records.DecodeIndex(v)
	if err != nil {
		rec, gerr := q.env.st.Get(q.id, seq)
		if gerr == nil {
			x, gerr = records.IndexOfRecord(rec)
		}
		if gerr != nil {
			q.env.log.Warn("recover queue: dropping unreadable message", "queue", q.name, "seq", seq, "err", gerr)
			x.Persistent = false
		}
	}
	st, hasState := states[seq]
	delete(states, seq)
	if !x.Persistent {
		batch.DeleteMessage(q.id, seq)
		if hasState {
			batch.DeleteState(q.id, seq)
		}
		return
	}
	e := entry{seq: seq, size: x.Size, flags: entryPersistent,
		expires: expiry(x.PubMs, x.TTL, q.opts().MessageTTL), priority: q.priorityLevel(x.Prio)}
	if !hasState && seq < q.mark {
		// Delivered once, under the delivered mark.
		e.flags |= entryRedelivered
		e.deliveries = 1
	}
	if hasState {
		e.flags |= entryRedelivered | entryState
		e.deliveries = uint16(min(st.deliveries, 1<<16-1))
		if st.due != 0 {
			// Waiting out a retry backoff: the scheduler reads its
			// delay-index entry and releases it.
			q.delayed[seq] = retryWait{e: e, due: st.due}
			q.holdSeqLocked(seq)
			return
		}
	}
	q.ready.push(e)
}
