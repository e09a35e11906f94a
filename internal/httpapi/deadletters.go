package httpapi

// GET /api/dead-letters: the queues that hold dead letters (messages
// with an x-death history), with counts by the reason and the source
// queue of each one's newest death and the newest failure. The console's
// dead-letter view is drawn from it.
//
// Counting reads messages, so it is bounded: each queue is counted from
// its head for at most deadLetterScan messages, and the answer says
// whether the count is complete.

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

// deadLetterScan bounds the dead letters counted in one queue.
const deadLetterScan = 10000

func (s *Server) routeDeadLetters() {
	s.route("GET /api/dead-letters", needManagement, s.deadLetters)
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request, u *user) {
	qs, err := s.b.Queues("")
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.DeadLetterQueue{}
	for _, q := range qs {
		if q.Messages() == 0 || !u.seesVHost(q.VHost) || u.check(q.VHost, permRead, "queue", q.Name) != nil {
			continue
		}
		d, err := s.countDeadLetters(q)
		if err != nil {
			if broker.CodeOf(err) == broker.NotFound {
				continue // deleted meanwhile
			}
			writeBrokerError(w, err)
			return
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
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) countDeadLetters(q broker.QueueInfo) (api.DeadLetterQueue, error) {
	d := api.DeadLetterQueue{VHost: q.VHost, Name: q.Name, Messages: q.Messages(),
		ByReason: map[string]int{}, BySource: map[string]int{}, Complete: true}
	var after uint64
	for {
		page, err := s.b.Browse(q.VHost, q.Name, after, 1000, broker.Filter{Header: "x-death"})
		if err != nil {
			return d, err
		}
		for _, m := range page.Messages {
			death, ok := broker.LastDeath(m.Message)
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
