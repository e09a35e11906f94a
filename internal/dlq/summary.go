package dlq

// The queues that hold dead letters (messages with an x-death history),
// with counts by the reason and the source queue of each one's newest
// death and the newest failure; the console's dead-letter view is drawn
// from it. Counting reads messages, so it is bounded: each queue is
// counted from its head for at most deadLetterScan messages, and the
// answer says whether the count is complete.

import (
	"slices"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

// deadLetterScan bounds the dead letters counted in one queue.
const deadLetterScan = 10000

// DeadLetterQueues summarizes the queues that hold dead letters among
// those visible says the caller may read, sorted by vhost and name.
func (w *Workflow) DeadLetterQueues(visible func(vhost, queue string) bool) ([]api.DeadLetterQueue, error) {
	qs, err := w.b.Queues("")
	if err != nil {
		return nil, err
	}
	out := []api.DeadLetterQueue{}
	for _, q := range qs {
		if q.Messages() == 0 || !visible(q.VHost, q.Name) {
			continue
		}
		d, err := w.countDeadLetters(q)
		if err != nil {
			if broker.CodeOf(err) == broker.NotFound {
				continue // deleted meanwhile
			}
			return nil, err
		}
		if d.DeadLetters > 0 {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b api.DeadLetterQueue) int {
		if c := strings.Compare(a.VHost, b.VHost); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

func (w *Workflow) countDeadLetters(q broker.QueueInfo) (api.DeadLetterQueue, error) {
	d := api.DeadLetterQueue{VHost: q.VHost, Name: q.Name, Messages: q.Messages(),
		ByReason: map[string]int{}, BySource: map[string]int{}, Complete: true}
	var after uint64
	for {
		page, err := w.b.Browse(q.VHost, q.Name, after, 1000, Filter{Header: "x-death"}.selection())
		if err != nil {
			return d, err
		}
		for _, m := range page.Messages {
			death, ok := LastDeath(m.Message)
			if !ok {
				continue
			}
			d.DeadLetters++
			d.ByReason[death.Reason]++
			d.BySource[death.Queue]++
			if d.Newest == nil || death.Time.After(d.Newest.Time) {
				d.Newest = &api.DeadLetterNewest{ID: m.ID, Reason: death.Reason, Source: death.Queue,
					Time: death.Time.In(time.UTC)}
			}
		}
		if !page.More {
			return d, nil
		}
		if d.DeadLetters >= deadLetterScan {
			d.Complete = false
			return d, nil
		}
		after = page.Next
	}
}
