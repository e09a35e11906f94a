package dlq

// Redrive tasks. A task moves a snapshot of message ids, chunk by chunk
// (each message one atomic move, moveChunk), paced by an optional
// rate, and can be cancelled. It is durable: its definition and its
// audit entry are stored before it moves anything, and its progress is
// written inside every move's own store batch, so after a crash (kill -9)
// the stored progress counts exactly the messages that moved; the next
// New resumes it from there. Finished tasks are kept (up to
// Config.KeepTasks) for reading.
//
// Records (broker.TaskRecord keys):
//
//	<id>     taskDef: the request, the ids, the audit entry's id; written once
//	<id>/p   taskProgress: state and counts; with every move, and after each chunk
//	<id>/e   []api.TaskError: the first maxTaskErrors failures; when one is added

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

// Task states.
const (
	taskRunning   = "running"
	taskDone      = "done"
	taskCancelled = "cancelled"
	taskFailed    = "failed"
)

const (
	// maxTaskErrors bounds the per-message errors a task reports.
	maxTaskErrors = 100
	// maxDryRunMoves bounds the destinations a dry run reports.
	maxDryRunMoves = 1000
)

// taskDef is what a task was asked to do.
type taskDef struct {
	View     api.Task `json:"view"` // as created
	IDs      []byte   `json:"ids"`  // the message ids, as zigzag varint deltas
	Target   string   `json:"target,omitempty"`
	Exchange string   `json:"target_exchange,omitempty"`
	Rate     float64  `json:"rate,omitempty"`
	// AuditID and AuditTime name the task's audit entry.
	AuditID   string    `json:"audit_id,omitempty"`
	AuditTime time.Time `json:"audit_time,omitempty"`
}

// taskProgress is the part of a task that changes as it runs.
type taskProgress struct {
	State    string     `json:"state"`
	Done     int        `json:"done"`
	Moved    int        `json:"moved"`
	Failed   int        `json:"failed"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
}

type task struct {
	def    taskDef
	ids    []uint64
	user   User
	cancel context.CancelFunc
	// byUser is set when a user cancelled the task (not a shutdown,
	// after which it resumes).
	byUser   atomic.Bool
	finished chan struct{} // closed when the task's goroutine returns

	mu   sync.Mutex
	view api.Task

	// stored and storedErrs are the progress last written and how many
	// errors with it; only the task's goroutine touches them.
	stored     taskProgress
	storedErrs int
}

func (t *task) snapshot() api.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.view
	v.Errors = slices.Clone(v.Errors)
	v.Moves = slices.Clone(v.Moves)
	return v
}

func progressOf(v api.Task) taskProgress {
	return taskProgress{State: v.State, Done: v.Done, Moved: v.Moved, Failed: v.Failed, Finished: v.Finished, Error: v.Error}
}

// records returns the stored form of progress p and, when withErrors, of
// the task's errors errs.
func (t *task) records(p taskProgress, errs []api.TaskError, withErrors bool) []broker.TaskRecord {
	id := t.def.View.ID
	v, _ := json.Marshal(p)
	recs := []broker.TaskRecord{{Key: id + "/p", Value: v}}
	if withErrors {
		e, _ := json.Marshal(errs)
		recs = append(recs, broker.TaskRecord{Key: id + "/e", Value: e})
	}
	return recs
}

func encodeIDs(ids []uint64) []byte {
	out := make([]byte, 0, len(ids)*2)
	prev := uint64(0)
	for _, id := range ids {
		out = binary.AppendVarint(out, int64(id-prev))
		prev = id
	}
	return out
}

func decodeIDs(b []byte) ([]uint64, error) {
	var out []uint64
	prev := uint64(0)
	for len(b) > 0 {
		d, n := binary.Varint(b)
		if n <= 0 {
			return nil, errors.New("task ids: bad varint")
		}
		prev += uint64(d)
		out = append(out, prev)
		b = b[n:]
	}
	return out, nil
}

// StartRedrive starts a redrive task of queue's messages for u (who may
// read the queue: the front door checked). Without a target each message
// goes back to the queue it died in, if u may write there.
func (w *Workflow) StartRedrive(u User, vhost, queue string, req api.Redrive) (api.Task, error) {
	bad := func(format string, args ...any) (api.Task, error) {
		return api.Task{}, &broker.Error{Code: broker.InvalidArgument, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case req.Rate < 0:
		return bad("rate: %v, want messages per second ≥ 0", req.Rate)
	case req.Target != "" && req.TargetExchange != "":
		return bad("give target (a queue) or target_exchange, not both")
	case req.IDs != nil && req.Filter != nil:
		return bad("give ids or filter, not both")
	}
	var f Filter
	if req.Filter != nil {
		var err error
		if f, err = ParseFilter(*req.Filter); err != nil {
			return bad("%s", err.Error())
		}
	}
	def := taskDef{Target: req.Target, Exchange: req.TargetExchange, Rate: req.Rate}
	if err := w.checkTarget(u, vhost, def); err != nil {
		return api.Task{}, err
	}
	ids := req.IDs
	if ids == nil {
		var err error
		if ids, err = w.matchingIDs(vhost, queue, f); err != nil {
			return api.Task{}, err
		}
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	def.View = api.Task{ID: hex.EncodeToString(r[:]), Kind: "redrive", VHost: vhost, Queue: queue, User: u.Name(),
		DryRun: req.DryRun, Total: len(ids), State: taskRunning, Created: w.cfg.Now().UTC()}
	def.IDs = encodeIDs(ids)
	t := &task{def: def, ids: ids, user: u, view: def.View}
	if !req.DryRun {
		// The audit entry comes first: a task that moved anything is in
		// the log, whatever happens to the broker afterwards.
		e, err := w.audit.Record(access.NewAuditEntry(u.Name(), "redrive", vhost, queue, t.auditDetail(taskRunning), nil, 0))
		if err != nil {
			return api.Task{}, err
		}
		t.def.AuditID, t.def.AuditTime = e.ID, e.Time
	}
	v, err := json.Marshal(t.def)
	if err != nil {
		return api.Task{}, &broker.Error{Code: broker.Internal, Reason: "encode task: " + err.Error(), Err: err}
	}
	recs := append([]broker.TaskRecord{{Key: def.View.ID, Value: v}}, t.records(progressOf(t.view), nil, false)...)
	if err := w.b.PutTaskRecords(recs...); err != nil {
		return api.Task{}, err
	}
	if err := w.run(t); err != nil {
		return api.Task{}, err
	}
	return t.snapshot(), nil
}

// checkTarget checks a task's explicit target: it exists and u may write
// to it.
func (w *Workflow) checkTarget(u User, vhost string, d taskDef) error {
	if d.Target != "" {
		if _, err := w.b.Queue(vhost, d.Target); err != nil {
			return err
		}
		return u.CheckWrite(vhost, "queue", d.Target)
	}
	if d.Exchange != "" {
		if _, err := w.b.Exchange(vhost, d.Exchange); err != nil {
			return err
		}
		return u.CheckWrite(vhost, "exchange", d.Exchange)
	}
	return nil
}

// auditDetail is the audit entry's detail for a task in state.
func (t *task) auditDetail(state string) string {
	to := "the queues they died in"
	switch {
	case t.def.Target != "":
		to = fmt.Sprintf("queue '%s'", t.def.Target)
	case t.def.Exchange != "":
		to = fmt.Sprintf("exchange '%s'", t.def.Exchange)
	}
	return fmt.Sprintf("task %s to %s: %s", t.def.View.ID, to, state)
}

// run registers t and starts its goroutine.
func (w *Workflow) run(t *task) error {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel, t.finished = cancel, make(chan struct{})
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		cancel()
		return &broker.Error{Code: broker.ResourceError, Reason: "server is shutting down"}
	}
	w.addLocked(t)
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		defer close(t.finished)
		defer cancel()
		w.redrive(ctx, t)
	}()
	return nil
}

// addLocked registers t and forgets the oldest finished tasks beyond
// KeepTasks.
func (w *Workflow) addLocked(t *task) {
	w.tasks[t.def.View.ID] = t
	w.order = append(w.order, t.def.View.ID)
	for len(w.order) > w.cfg.KeepTasks {
		i := slices.IndexFunc(w.order, func(id string) bool { return w.tasks[id].snapshot().State != taskRunning })
		if i < 0 {
			return
		}
		id := w.order[i]
		delete(w.tasks, id)
		w.order = slices.Delete(w.order, i, i+1)
		if err := w.b.DeleteTaskRecords(id); err != nil {
			w.log.Warn("forget a finished task", "task", id, "err", err)
		}
	}
}

// redrive moves t's remaining ids chunk by chunk, paced to its rate.
func (w *Workflow) redrive(ctx context.Context, t *task) {
	v := t.snapshot()
	target := Target{Queue: t.def.Target, Exchange: t.def.Exchange}
	chunk := w.cfg.RedriveChunk
	if rate := t.def.Rate; rate > 0 {
		chunk = max(1, min(chunk, int(rate/10)))
	}
	state, failure := taskDone, ""
	if err := w.checkTarget(t.user, v.VHost, t.def); err != nil {
		state, failure = taskFailed, err.Error()
	}
	start, from := time.Now(), v.Done
	for done := v.Done; state == taskDone && done < len(t.ids); {
		if !w.pace(ctx, t, start, done-from) {
			if !t.byUser.Load() {
				return // shut down: the stored task resumes at the next start
			}
			state = taskCancelled
			break
		}
		part := t.ids[done:min(done+chunk, len(t.ids))]
		var progress func(int, []Result) []broker.TaskRecord
		if !v.DryRun {
			progress = t.progressFunc()
		}
		results, err := w.moveChunk(t.user, v.VHost, v.Queue, part, target, v.DryRun, progress)
		if err != nil {
			state, failure = taskFailed, err.Error()
			break
		}
		done += len(part)
		t.count(results)
		// The last move's batch stored the progress, unless a message
		// failed after it, or in the store.
		if v := t.snapshot(); progressOf(v) != t.stored || len(v.Errors) != t.storedErrs {
			w.store(t, len(v.Errors) != t.storedErrs)
		}
	}
	// The audit entry is complete before the task says it finished.
	if t.def.AuditID != "" {
		moved := t.movedIDs()
		e := access.NewAuditEntry(v.User, "redrive", v.VHost, v.Queue, t.auditDetail(state), moved, len(moved))
		e.ID, e.Time = t.def.AuditID, t.def.AuditTime
		if err := w.audit.Update(e); err != nil {
			w.log.Error("record audit entry", "action", "redrive", "queue", v.Queue, "err", err)
		}
	}
	now := w.cfg.Now().UTC()
	t.mu.Lock()
	t.view.State, t.view.Error, t.view.Finished = state, failure, &now
	t.mu.Unlock()
	w.store(t, true)
}

// pace waits until the next chunk may go at the task's rate; it reports
// false when the task was stopped.
func (w *Workflow) pace(ctx context.Context, t *task, start time.Time, sent int) bool {
	if ctx.Err() != nil {
		return false
	}
	if t.def.Rate <= 0 {
		return true
	}
	wait := time.Until(start.Add(time.Duration(float64(sent) / t.def.Rate * float64(time.Second))))
	if wait <= 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// progressFunc returns moveChunk's progress hook for the next chunk: the
// record of message i says every message before it in the chunk has
// settled as planned and it moved.
func (t *task) progressFunc() func(int, []Result) []broker.TaskRecord {
	v := t.snapshot()
	base, errs := progressOf(v), v.Errors
	written := len(errs)
	return func(i int, before []Result) []broker.TaskRecord {
		p := base
		p.Done += i + 1
		p.Moved++
		all := errs
		for _, r := range before {
			if r.Err == nil {
				p.Moved++
				continue
			}
			p.Failed++
			all = appendError(all, r)
		}
		recs := t.records(p, all, len(all) != written)
		written = len(all)
		t.stored, t.storedErrs = p, len(all)
		return recs
	}
}

// appendError adds r's failure to errs, up to maxTaskErrors.
func appendError(errs []api.TaskError, r Result) []api.TaskError {
	if len(errs) >= maxTaskErrors {
		return errs
	}
	e := api.TaskError{ID: r.ID, Reason: r.Err.Error(), Status: statusOf(r.Err)}
	var ve *broker.ValidationError
	if errors.As(r.Err, &ve) {
		for _, x := range ve.Errors {
			e.Errors = append(e.Errors, api.ValidationError{Pointer: x.Pointer, Message: x.Message})
		}
	}
	return append(slices.Clip(errs), e)
}

// statusOf is the HTTP status a message's failure would have on its own:
// what the API answers for that message.
func statusOf(err error) int {
	var ve *broker.ValidationError
	if errors.As(err, &ve) {
		return 422
	}
	switch broker.CodeOf(err) {
	case broker.NotFound:
		return 404
	case broker.AccessRefused, broker.NotAllowed:
		return 403
	case broker.PreconditionFailed, broker.ResourceLocked:
		return 409
	case broker.InvalidArgument:
		return 400
	case broker.ResourceError:
		return 503
	}
	return 500
}

// count adds a chunk's results to t's view.
func (t *task) count(results []Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range results {
		t.view.Done++
		if r.Err != nil {
			t.view.Failed++
			t.view.Errors = appendError(t.view.Errors, r)
			continue
		}
		t.view.Moved++
		if t.view.DryRun && len(t.view.Moves) < maxDryRunMoves {
			t.view.Moves = append(t.view.Moves, api.TaskMove{ID: r.ID, To: r.To})
		}
	}
}

// store writes t's progress (and errors) as they are now.
func (w *Workflow) store(t *task, withErrors bool) {
	v := t.snapshot()
	if err := w.b.PutTaskRecords(t.records(progressOf(v), v.Errors, withErrors)...); err != nil {
		w.log.Error("store task progress", "task", v.ID, "err", err)
		return
	}
	t.stored = progressOf(v)
	if withErrors {
		t.storedErrs = len(v.Errors)
	}
}

// movedIDs returns the ids t moved: those it handled minus those that
// failed (exact while no more than maxTaskErrors failed).
func (t *task) movedIDs() []uint64 {
	v := t.snapshot()
	failed := make(map[uint64]bool, len(v.Errors))
	for _, e := range v.Errors {
		failed[e.ID] = true
	}
	var out []uint64
	for _, id := range t.ids[:v.Done] {
		if !failed[id] {
			out = append(out, id)
		}
	}
	return out
}

// resume loads the stored tasks: finished ones for reading, running ones
// restarted where they stopped.
func (w *Workflow) resume() error {
	defs := map[string]*task{}
	var order []string
	var derr error
	err := w.b.TaskRecords(func(r broker.TaskRecord) bool {
		id, part, _ := strings.Cut(r.Key, "/")
		t := defs[id]
		if t == nil {
			t = &task{}
			defs[id] = t
			order = append(order, id)
		}
		switch part {
		case "":
			derr = json.Unmarshal(r.Value, &t.def)
		case "p":
			var p taskProgress
			if derr = json.Unmarshal(r.Value, &p); derr == nil {
				t.view.State, t.view.Done, t.view.Moved, t.view.Failed = p.State, p.Done, p.Moved, p.Failed
				t.view.Finished, t.view.Error = p.Finished, p.Error
			}
		case "e":
			derr = json.Unmarshal(r.Value, &t.view.Errors)
		}
		if derr != nil {
			derr = fmt.Errorf("task record %q: %w", r.Key, derr)
		}
		return derr == nil
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	var tasks []*task
	for _, id := range order {
		t := defs[id]
		if t.def.View.ID == "" {
			continue // a torn pruning: no definition left
		}
		p := t.view
		t.view = t.def.View
		t.view.State, t.view.Done, t.view.Moved, t.view.Failed = p.State, p.Done, p.Moved, p.Failed
		t.view.Finished, t.view.Error, t.view.Errors = p.Finished, p.Error, p.Errors
		if t.ids, err = decodeIDs(t.def.IDs); err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
		tasks = append(tasks, t)
	}
	slices.SortStableFunc(tasks, func(a, b *task) int { return a.def.View.Created.Compare(b.def.View.Created) })
	for _, t := range tasks {
		if t.view.State != taskRunning {
			w.mu.Lock()
			w.addLocked(t)
			w.mu.Unlock()
			continue
		}
		u, err := w.cfg.User(t.view.User)
		if err != nil {
			now := w.cfg.Now().UTC()
			t.view.State, t.view.Error, t.view.Finished = taskFailed, fmt.Sprintf("resume after restart: %v", err), &now
			w.store(t, false)
			w.mu.Lock()
			w.addLocked(t)
			w.mu.Unlock()
			continue
		}
		t.user = u
		w.log.Info("resume redrive task", "task", t.view.ID, "queue", t.view.Queue, "done", t.view.Done, "total", t.view.Total)
		if err := w.run(t); err != nil {
			return err
		}
	}
	return nil
}

// Tasks returns every kept task, oldest first.
func (w *Workflow) Tasks() []api.Task {
	w.mu.Lock()
	ts := make([]*task, 0, len(w.order))
	for _, id := range w.order {
		ts = append(ts, w.tasks[id])
	}
	w.mu.Unlock()
	out := make([]api.Task, len(ts))
	for i, t := range ts {
		out[i] = t.snapshot()
	}
	return out
}

// Task returns one task (false when there is none by that id).
func (w *Workflow) Task(id string) (api.Task, bool) {
	w.mu.Lock()
	t := w.tasks[id]
	w.mu.Unlock()
	if t == nil {
		return api.Task{}, false
	}
	return t.snapshot(), true
}

// Cancel stops a running task and waits for it (until ctx ends); the
// messages it moved stay moved.
func (w *Workflow) Cancel(ctx context.Context, id string) (api.Task, error) {
	w.mu.Lock()
	t := w.tasks[id]
	w.mu.Unlock()
	if t == nil {
		return api.Task{}, &broker.Error{Code: broker.NotFound, Reason: fmt.Sprintf("no task '%s'", id)}
	}
	if v := t.snapshot(); v.State != taskRunning {
		return v, &broker.Error{Code: broker.PreconditionFailed, Reason: fmt.Sprintf("task '%s' is %s", v.ID, v.State)}
	}
	t.byUser.Store(true)
	t.cancel()
	select {
	case <-t.finished:
	case <-ctx.Done():
	}
	return t.snapshot(), nil
}

// Close stops the running tasks (they resume at the next New) and waits
// for them, until ctx ends.
func (w *Workflow) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	for _, t := range w.tasks {
		if t.cancel != nil {
			t.cancel()
		}
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
