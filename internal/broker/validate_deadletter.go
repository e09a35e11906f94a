package broker

// Dead-lettering of invalid messages (x-validation-failure: dead-letter):
// the copy meant for a queue goes to that queue's dead-letter exchange
// instead, with reason invalid and the errors in x-validation-error.

import (
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/message"
)

// deadLetterInvalid sends each invalid copy to its queue's dead-letter
// exchange and joins their stores with the publish of the valid copies,
// so the publisher's done (its confirm) comes once, after all of them.
func (ch *Channel) deadLetterInvalid(msg *message.Message, targets *[]*queue, done *func(error), invalid []invalidCopy) (handled, routed bool, err error) {
	if _, err := messageTTL(msg); err != nil {
		// Publish would refuse the valid copies after the dead letters
		// went out; refuse the whole publish first.
		return true, false, err
	}
	now := ch.env.now()
	type dl struct {
		qs  []*queue
		msg *message.Message
	}
	var letters []dl
	for _, inv := range invalid {
		dm := invalidDeadLetter(msg, inv.q, inv.err, now)
		qs := ch.vh.deadLetterTargets(inv.q, dm, reasonInvalid)
		if len(qs) == 0 {
			ch.env.log.Warn("invalid message dead-lettered to an exchange that routes it nowhere; dropped",
				"queue", inv.q.name, "vhost", ch.vh.name, "dead_letter_exchange", dm.Exchange, "routing_key", dm.RoutingKey)
			continue
		}
		inv.q.countDeadLettered(reasonInvalid)
		letters = append(letters, dl{qs: qs, msg: dm})
	}
	kept := make([]*queue, 0, len(*targets))
	for _, q := range *targets {
		if !isInvalid(invalid, q) {
			kept = append(kept, q)
		}
	}
	parts := len(letters)
	if len(kept) > 0 {
		parts++
	}
	j := &joinDone{left: parts, done: *done}
	if parts == 0 {
		(*done)(nil)
		return true, true, nil
	}
	for _, l := range letters {
		req, err := newPublishReq(l.msg, l.qs, j.one, now)
		if err != nil {
			j.one(err)
			continue
		}
		if err := ch.submit(req); err != nil {
			j.one(err)
		}
	}
	if len(kept) == 0 {
		return true, true, nil
	}
	*targets, *done = kept, j.one
	return false, false, nil
}

func isInvalid(invalid []invalidCopy, q *queue) bool {
	for _, inv := range invalid {
		if inv.q == q {
			return true
		}
	}
	return false
}

// joinDone calls done once, after left parts finished, with the first
// error any part had.
type joinDone struct {
	mu   sync.Mutex
	left int
	err  error
	done func(error)
}

func (j *joinDone) one(err error) {
	j.mu.Lock()
	if err != nil && j.err == nil {
		j.err = err
	}
	j.left--
	last, first := j.left == 0, j.err
	j.mu.Unlock()
	if last {
		j.done(first)
	}
}

// reasonInvalid is the x-death reason of a message that failed validation.
const reasonInvalid = "invalid"

// invalidDeadLetter builds the dead letter of msg refused by q: the
// headers every dead letter gets (deadLetterMessage: x-death, CC/BCC
// stripped, expiration moved) plus x-validation-error, an array of tables
// {schema, pointer, message}. msg itself is not changed.
func invalidDeadLetter(msg *message.Message, q *queue, verr *ValidationError, now time.Time) *message.Message {
	dm := deadLetterMessage(msg, q, reasonInvalid, now)
	errs := make([]any, 0, len(verr.Errors))
	for _, e := range verr.Errors {
		errs = append(errs, message.Table{"schema": verr.Schema, "pointer": e.Pointer, "message": e.Message})
	}
	dm.Properties.Headers["x-validation-error"] = errs
	return dm
}
