package dlq

// Redrive planning: where each dead letter goes and what it looks like
// there. A message goes to the explicit target (a queue, or an exchange
// routing it by its routing key), else back to the queue it died in (its
// newest x-death entry), with the exchange and routing key it died with;
// it carries x-redrive-count one higher and keeps its x-death history. A
// message going into a queue directly needs the user's write permission
// there (an exchange target's permission is checked once, by checkTarget).
// The broker then moves the chunk, each message atomically (broker.Move).

import (
	"fmt"
	"slices"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
)

// RedriveCountHeader counts how many times a message was redriven.
const RedriveCountHeader = "x-redrive-count"

// Target says where redriven messages go. The zero value sends each
// message to the queue it died in (its newest x-death entry's queue).
type Target struct {
	Queue    string // a queue, through the default exchange
	Exchange string // or an exchange, routed with the message's routing key
}

// Result is the outcome of one message's redrive.
type Result struct {
	ID  uint64
	To  string // "queue 'orders'" or "exchange 'x'"
	Err error  // nil when moved (or, in a dry run, movable)
}

// moveChunk redrives the ready messages ids of a queue for u, now. A
// message that is unacked, gone, has no destination u may write to, or
// which its destination refuses gets an error in its result and stays
// where it is; the call fails as a whole only when the queue or the
// explicit target is missing. With dryRun it checks and reports without
// moving. progress, when set, returns the records stored with message i's
// move (broker.MoveOptions.Records), given the results of the messages
// before it as they stood when the moves were planned.
func (w *Workflow) moveChunk(u User, vhost, queue string, ids []uint64, t Target, dryRun bool,
	progress func(i int, before []Result) []broker.TaskRecord) ([]Result, error) {
	if err := w.targetExists(vhost, t); err != nil {
		return nil, err
	}
	results := make([]Result, len(ids))
	outs := make([]broker.MoveOut, 0, len(ids))
	at := make([]int, 0, len(ids)) // the place in ids of each of outs
	// Permission answers are kept for the chunk: a change applies from
	// the next one.
	checked := map[string]error{}
	for i, id := range ids {
		results[i].ID = id
		out, err := w.plan(u, vhost, queue, id, t, checked)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].To = destination(out)
		outs = append(outs, out)
		at = append(at, i)
	}
	opts := broker.MoveOptions{DryRun: dryRun}
	if progress != nil {
		var planned []Result
		opts.Records = func(j int, errs []error) []broker.TaskRecord {
			if planned == nil {
				planned = slices.Clone(results)
				for k, err := range errs {
					planned[at[k]].Err = err
				}
			}
			return progress(at[j], planned[:at[j]])
		}
	}
	if w.planned != nil {
		w.planned()
	}
	errs, err := w.b.Move(vhost, queue, outs, opts)
	if err != nil {
		return nil, err
	}
	for j, err := range errs {
		results[at[j]].Err = err
	}
	return results, nil
}

// targetExists fails when t names a queue or an exchange that is missing.
func (w *Workflow) targetExists(vhost string, t Target) error {
	var err error
	switch {
	case t.Exchange != "":
		_, err = w.b.Exchange(vhost, t.Exchange)
	case t.Queue != "":
		_, err = w.b.Queue(vhost, t.Queue)
	}
	return err
}

func destination(out broker.MoveOut) string {
	if out.Exchange != "" {
		return fmt.Sprintf("exchange '%s'", out.Exchange)
	}
	return fmt.Sprintf("queue '%s'", out.Queue)
}

// plan reads message id and decides where it goes and as what; checked
// keeps the answers about destination queues (they exist, u may write).
func (w *Workflow) plan(u User, vhost, queue string, id uint64, t Target, checked map[string]error) (broker.MoveOut, error) {
	sm, err := w.b.Message(vhost, queue, id)
	if err != nil {
		return broker.MoveOut{}, err
	}
	m := redriven(sm.Message)
	out := broker.MoveOut{ID: id, Message: m, Version: sm.Version}
	switch {
	case t.Exchange != "":
		m.Exchange = t.Exchange
		out.Exchange = t.Exchange
		return out, nil
	case t.Queue != "":
		out.Queue = t.Queue
	default:
		d, ok := LastDeath(m)
		if !ok {
			return out, &broker.Error{Code: broker.PreconditionFailed, Reason: fmt.Sprintf(
				"message %d has no x-death header naming the queue it died in; give a target", id)}
		}
		out.Queue = d.Queue
		if d.Exchange != "" || len(d.Keys) > 0 {
			m.Exchange = d.Exchange
			if len(d.Keys) > 0 {
				m.RoutingKey = d.Keys[0]
			}
		}
	}
	err, ok := checked[out.Queue]
	if !ok {
		if _, err = w.b.Queue(vhost, out.Queue); err == nil {
			err = u.CheckWrite(vhost, "queue", out.Queue)
		}
		checked[out.Queue] = err
	}
	if err != nil && t.Queue == "" && broker.CodeOf(err) == broker.NotFound {
		return out, &broker.Error{Code: broker.NotFound, Reason: fmt.Sprintf(
			"message %d died in queue '%s', which no longer exists in vhost '%s'; give a target", id, out.Queue, vhost)}
	}
	return out, err
}

// redriven returns a copy of m with x-redrive-count incremented; its
// x-death history stays.
func redriven(m *message.Message) *message.Message {
	c := *m
	h := make(message.Table, len(m.Properties.Headers)+1)
	for k, v := range m.Properties.Headers {
		h[k] = v
	}
	n, _ := message.IntValue(h[RedriveCountHeader])
	h[RedriveCountHeader] = n + 1
	c.Properties.Headers = h
	c.Properties.Flags |= message.FlagHeaders
	c.Body = append([]byte(nil), m.Body...)
	return &c
}
