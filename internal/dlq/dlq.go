// Package dlq is the dead-letter workflow over the broker: browsing a
// queue's messages with a filter, editing and deleting one, the summary of
// the queues that hold dead letters, and redrive tasks, each change
// recorded in the audit log (access.AuditLog). It owns the filters,
// plans where each redriven message goes (redrive.go) and decides who may
// send it there (the caller's write permission on every destination; the
// headers the broker owns are not editable), and keeps redrive tasks
// durable. The broker lists a queue's messages page by page
// (broker.Browse), moves each message atomically (broker.Move, over its
// one move primitive) and checks it against the target's x-schema.
//
// httpapi is its front door; the broker never imports it.
//
// Goroutines: each running task has one goroutine, owned by the Workflow
// (New resumes the tasks a restart interrupted, Close stops them and waits;
// a stopped task resumes at the next New). A Workflow is safe for
// concurrent use.
package dlq

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
)

// User is what the workflow needs of the user it acts for.
type User interface {
	Name() string
	// CheckWrite returns an AccessRefused *broker.Error unless the user
	// may write to the resource (kind "queue" or "exchange") named name
	// in vhost.
	CheckWrite(vhost, kind, name string) error
}

// Config configures the workflow.
type Config struct {
	Logger *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
	// RedriveChunk is how many messages a redrive task moves per step.
	RedriveChunk int
	// KeepTasks bounds the finished tasks kept (in memory and store).
	KeepTasks int
	// User returns the user a resumed task acts for, by name.
	User func(name string) (User, error)
	// Audit is the audit log the workflow's changes are recorded in
	// (nil: the log kept in the broker's store, timed by Now).
	Audit *access.AuditLog
}

// DefaultConfig returns the configuration `sluice serve` starts with.
func DefaultConfig() Config {
	return Config{Logger: slog.Default(), Now: time.Now, RedriveChunk: 100, KeepTasks: 100}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.RedriveChunk < 1:
		return fmt.Errorf("dlq config: RedriveChunk %d, want at least 1", c.RedriveChunk)
	case c.KeepTasks < 1:
		return fmt.Errorf("dlq config: KeepTasks %d, want at least 1", c.KeepTasks)
	case c.User == nil:
		return errors.New("dlq config: User is nil")
	}
	return nil
}

// Workflow is the dead-letter workflow of one broker.
type Workflow struct {
	cfg   Config
	b     *broker.Broker
	log   *slog.Logger
	audit *access.AuditLog
	wg    sync.WaitGroup

	mu     sync.Mutex
	tasks  map[string]*task
	order  []string // task ids, oldest first
	closed bool

	// planned, when set (by tests), runs between planning a chunk's moves
	// and making them: where an edit can slip in.
	planned func()
}

// New returns the workflow over b and resumes the tasks a restart
// interrupted.
func New(cfg Config, b *broker.Broker) (*Workflow, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Audit == nil {
		cfg.Audit = access.NewAuditLog(b, cfg.Now)
	}
	w := &Workflow{cfg: cfg, b: b, log: cfg.Logger, audit: cfg.Audit, tasks: make(map[string]*task)}
	if err := w.resume(); err != nil { // tasks.go
		return nil, fmt.Errorf("dlq: %w", err)
	}
	return w, nil
}

// ParseFilter turns the API's filter into a Filter; errors name the
// field.
func ParseFilter(f api.Filter) (Filter, error) {
	out := Filter{Reason: f.Reason, Source: f.Source, Body: f.Body}
	switch f.Reason {
	case "", "rejected", "expired", "maxlen", "delivery_limit", "invalid":
	default:
		return out, fmt.Errorf("filter reason: %q is not one of rejected, expired, maxlen, delivery_limit, invalid", f.Reason)
	}
	if f.Header != "" {
		out.ParseHeaderFilter(f.Header)
		if out.Header == "" {
			return out, fmt.Errorf("filter header: %q has an empty name; want name or name=value", f.Header)
		}
	}
	for _, t := range []struct {
		name string
		in   string
		dst  *time.Time
	}{{"since", f.Since, &out.Since}, {"until", f.Until, &out.Until}} {
		if t.in == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.in)
		if err != nil {
			return out, fmt.Errorf("filter %s: %q is not an RFC 3339 time (like 2026-01-02T15:04:05Z)", t.name, t.in)
		}
		*t.dst = v
	}
	return out, nil
}

// Browse returns a page of the queue's messages that pass f, without
// consuming or changing them.
func (w *Workflow) Browse(vhost, queue string, after uint64, limit int, f Filter) (broker.BrowsePage, error) {
	return w.b.Browse(vhost, queue, after, limit, f.selection())
}

// Message reads one message without consuming it.
func (w *Workflow) Message(vhost, queue string, id uint64) (broker.StoredMessage, error) {
	return w.b.Message(vhost, queue, id)
}

// ownedHeader reports whether the broker writes header k: the dead-letter
// history, the delivery and redrive counts. An edit may not change them,
// or a user who may edit a dead letter queue could name any queue of the
// vhost as the place a message died in and redrive it there.
func ownedHeader(k string) bool {
	switch k {
	case "x-death", "x-delivery-count", RedriveCountHeader:
		return true
	}
	return strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}

// checkOwnedHeaders refuses an edit that adds, removes or changes a header
// the broker owns.
func checkOwnedHeaders(old, edited message.Table) error {
	for _, t := range [2]message.Table{old, edited} {
		for k := range t {
			if !ownedHeader(k) {
				continue
			}
			ov, inOld := old[k]
			nv, inNew := edited[k]
			if inOld != inNew || !reflect.DeepEqual(ov, nv) {
				return &broker.Error{Code: broker.InvalidArgument, Reason: fmt.Sprintf(
					"header '%s' is written by the broker and cannot be edited; edit the body, the other headers or the properties", k)}
			}
		}
	}
	return nil
}

// Replace replaces a ready message in place with what edit makes of it
// (its routing key, properties and body; changed names what the edit
// changed, for the audit log), after checking that the headers the broker
// owns are as they were; the broker checks it against the queue's
// x-schema.
func (w *Workflow) Replace(u User, vhost, queue string, id uint64,
	edit func(cur *message.Message) (edited *message.Message, changed []string, err error)) (broker.StoredMessage, error) {
	cur, err := w.b.Message(vhost, queue, id)
	if err != nil {
		return broker.StoredMessage{}, err
	}
	edited, changed, err := edit(cur.Message)
	if err != nil {
		return broker.StoredMessage{}, err
	}
	if err := checkOwnedHeaders(cur.Message.Properties.Headers, edited.Properties.Headers); err != nil {
		return broker.StoredMessage{}, err
	}
	if err := w.b.ReplaceMessage(vhost, queue, id, edited, cur.Version); err != nil {
		return broker.StoredMessage{}, err
	}
	w.record(u.Name(), "edit", vhost, queue, fmt.Sprintf("replaced %v", changed), []uint64{id}, 1)
	return w.b.Message(vhost, queue, id)
}

// Delete removes one ready message.
func (w *Workflow) Delete(u User, vhost, queue string, id uint64) error {
	if err := w.b.DeleteMessage(vhost, queue, id); err != nil {
		return err
	}
	w.record(u.Name(), "delete", vhost, queue, "", []uint64{id}, 1)
	return nil
}

// record records an action that happened; a failure to record is logged.
func (w *Workflow) record(user, action, vhost, queue, detail string, ids []uint64, n int) {
	if _, err := w.audit.Record(access.NewAuditEntry(user, action, vhost, queue, detail, ids, n)); err != nil {
		w.log.Error("record audit entry", "action", action, "queue", queue, "err", err)
	}
}
