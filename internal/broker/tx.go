package broker

import "sync"

// txState is what a transactional channel holds back until commit.
type txState struct {
	publishes []*publishReq
	settles   []txSettle
}

type txSettle struct {
	how settleKind
	ps  []pending
}

// discard drops held publishes; their done is told nil (nothing stored,
// nothing to confirm: a tx channel has no confirms).
func (t txState) discard() {
	for _, r := range t.publishes {
		if r.done != nil {
			r.done(nil)
		}
	}
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
// in their queues) and then applies the held acks and nacks.
func (ch *Channel) CommitTx() error {
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
	for i, r := range t.publishes {
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
				if rest.done != nil {
					rest.done(err)
				}
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
