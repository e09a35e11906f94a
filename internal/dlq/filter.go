package dlq

// Filters: which messages of a queue a browse lists or a redrive takes, by
// their dead-letter history (the newest x-death entry) and their content.
// The broker lists a queue page by page (broker.Browse); a Filter is the
// Match it asks about each message.

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
)

// Filter selects messages by their dead-letter history and content. The
// zero Filter matches everything.
type Filter struct {
	Reason string // x-death's newest entry's reason
	Source string // x-death's newest entry's queue
	// Header and HeaderValue: the header must exist and, when HeaderValue
	// is non-empty, its value printed must equal HeaderValue.
	Header      string
	HeaderValue string
	Body        string    // substring of the body
	Since       time.Time // death time (or timestamp property) at or after
	Until       time.Time // death time (or timestamp property) before
	// State, when set, is broker.StateReady, StateUnacked or StateDelayed:
	// Browse returns only messages in that state. Match does not see it (a
	// message's state is the queue's, not the message's).
	State string
}

// IsZero reports whether f matches everything.
func (f Filter) IsZero() bool { return f == Filter{} }

// ParseHeaderFilter sets f's header condition from "name=value" (or just
// "name": the header exists).
func (f *Filter) ParseHeaderFilter(s string) { f.Header, f.HeaderValue, _ = strings.Cut(s, "=") }

func (f Filter) withState(s string) Filter { f.State = s; return f }

// selection is f as the broker's browse takes it.
func (f Filter) selection() broker.Select {
	s := broker.Select{State: f.State}
	if !f.withState("").IsZero() {
		s.Match = f.Match
	}
	return s
}

// Death is the newest x-death entry of a dead letter.
type Death struct {
	Queue    string
	Reason   string
	Exchange string
	Keys     []string
	Count    int64
	Time     time.Time
}

// LastDeath returns the newest x-death entry of m.
func LastDeath(m *message.Message) (Death, bool) {
	arr, ok := m.Properties.Headers["x-death"].([]any)
	if !ok || len(arr) == 0 {
		return Death{}, false
	}
	t, ok := arr[0].(message.Table)
	if !ok {
		return Death{}, false
	}
	var d Death
	d.Queue, _ = t["queue"].(string)
	d.Reason, _ = t["reason"].(string)
	d.Exchange, _ = t["exchange"].(string)
	d.Count, _ = message.IntValue(t["count"])
	d.Time, _ = t["time"].(time.Time)
	if keys, ok := t["routing-keys"].([]any); ok {
		for _, k := range keys {
			if s, ok := k.(string); ok {
				d.Keys = append(d.Keys, s)
			}
		}
	}
	return d, d.Queue != ""
}

// Match reports whether m passes the filter.
func (f Filter) Match(m *message.Message) bool {
	d, dead := LastDeath(m)
	if f.Reason != "" && (!dead || d.Reason != f.Reason) {
		return false
	}
	if f.Source != "" && (!dead || d.Queue != f.Source) {
		return false
	}
	if f.Header != "" {
		v, ok := m.Properties.Headers[f.Header]
		if !ok || (f.HeaderValue != "" && headerString(v) != f.HeaderValue) {
			return false
		}
	}
	if f.Body != "" && !bytes.Contains(m.Body, []byte(f.Body)) {
		return false
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		t := d.Time
		if t.IsZero() {
			t = m.Properties.Timestamp
		}
		if t.IsZero() || (!f.Since.IsZero() && t.Before(f.Since)) || (!f.Until.IsZero() && !t.Before(f.Until)) {
			return false
		}
	}
	return true
}

func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return fmt.Sprint(x.Unix())
	}
	return fmt.Sprint(v)
}

// matchingIDs returns the ids of the queue's ready messages that pass f,
// in order. It scans the whole queue.
func (w *Workflow) matchingIDs(vhost, queue string, f Filter) ([]uint64, error) {
	var ids []uint64
	after := uint64(0)
	for {
		page, err := w.b.Browse(vhost, queue, after, 1000, f.selection())
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			if m.State == broker.StateReady {
				ids = append(ids, m.ID)
			}
		}
		if !page.More {
			return ids, nil
		}
		after = page.Next
	}
}
