package broker

import (
	"encoding/binary"
	"slices"
	"sync"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
)

// txState is what a transactional channel holds back until commit. As in
// RabbitMQ, a publish is routed when it is published (its queues are
// chosen then), and enqueued — or returned, when none of its queues is
// left — at commit; its TTL counts from the commit.
type txState struct {
	publishes []txPublish
	settles   []txSettle
}

// txPublish is one held publish.
type txPublish struct {
	req       *publishReq // nil: no queue took it when it was published
	msg       *message.Message
	mandatory bool
	done      func(error) // req's done, or the unroutable publish's
}

type txSettle struct {
	how settleKind
	ps  []pending
}

// discard drops held publishes; their done is told nil (nothing stored,
// nothing to confirm: a tx channel has no confirms).
func (t txState) discard() {
	for _, p := range t.publishes {
		p.done(nil)
	}
}

// pendings returns the deliveries of the held acks and nacks.
func (t txState) pendings() []pending {
	var ps []pending
	for _, s := range t.settles {
		ps = append(ps, s.ps...)
	}
	return ps
}

// holdLocked keeps a publish for the commit; req is nil for a publish no
// queue took.
func (ch *Channel) holdLocked(req *publishReq, msg *message.Message, mandatory bool, done func(error)) {
	if req != nil {
		done = req.done
	}
	ch.tx.publishes = append(ch.tx.publishes, txPublish{req: req, msg: msg, mandatory: mandatory, done: done})
}

// SelectTx puts the channel in tx mode.
func (ch *Channel) SelectTx() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.mode == modeConfirm {
		return errorf(PreconditionFailed, "cannot switch from confirm to tx mode")
	}
	ch.mode = modeTx
	return nil
}

// CommitTx publishes the held messages (waiting until they are stored and
// in their queues) and then applies the held acks and nacks. A held
// mandatory message none of whose queues is left (or that had none) is
// handed to returned, in publish order, before CommitTx returns;
// returned may be nil.
func (ch *Channel) CommitTx(returned func(msg *message.Message)) error {
	ch.mu.Lock()
	if ch.mode != modeTx {
		ch.mu.Unlock()
		return errorf(PreconditionFailed, "channel is not transactional")
	}
	t := ch.tx
	ch.tx = txState{}
	ch.mu.Unlock()

	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		errLast error
	)
	nowMs := ch.env.now().UnixMilli()
	for i, p := range t.publishes {
		r := p.req
		delayed := r != nil && r.delayDue != 0 // routed when due
		if r != nil && !delayed {
			r.targets = slices.DeleteFunc(r.targets, (*queue).isDeleted)
		}
		if r == nil || len(r.targets) == 0 && !delayed {
			if p.mandatory && returned != nil {
				returned(p.msg)
			}
			p.done(nil)
			continue
		}
		if !delayed {
			r.restamp(nowMs)
		}
		done := r.done
		wg.Add(1)
		r.done = func(err error) {
			if err != nil {
				errMu.Lock()
				errLast = err
				errMu.Unlock()
			}
			if done != nil {
				done(err)
			}
			wg.Done()
		}
		if err := ch.submit(r); err != nil {
			wg.Done()
			for _, rest := range t.publishes[i+1:] {
				rest.done(err)
			}
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	for _, s := range t.settles {
		ch.countSettled(s.ps, s.how)
		ch.settle(s.ps, s.how)
	}
	return errLast
}

// restamp makes the commit the message's publish time, from which its
// TTL counts (RabbitMQ's TTL counts from the enqueue).
func (r *publishReq) restamp(ms int64) {
	r.meta.PubMs = ms
	if len(r.rec) >= records.RecordHeader {
		binary.BigEndian.PutUint64(r.rec[2:records.RecordHeader], uint64(ms))
	}
}

func (q *queue) isDeleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// RollbackTx drops the held messages and puts the held acks' deliveries
// back among the channel's unacked ones.
func (ch *Channel) RollbackTx() error {
	ch.mu.Lock()
	if ch.mode != modeTx {
		ch.mu.Unlock()
		return errorf(PreconditionFailed, "channel is not transactional")
	}
	t := ch.tx
	ch.tx = txState{}
	for _, s := range t.settles {
		ch.restoreLocked(s.ps)
	}
	ch.mu.Unlock()
	t.discard()
	return nil
}
