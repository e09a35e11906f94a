package httpapi

// Redrive tasks: POST …/redrive starts one; it runs on a goroutine owned
// by the task manager, moving messages in chunks (each message one atomic
// store batch, see broker.Redrive), paced by an optional rate, and can be
// cancelled. Finished tasks are kept (up to Config.KeepTasks) for GET.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

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

// maxTaskErrors bounds the per-message errors a task reports.
const maxTaskErrors = 100

type task struct {
	cancel   context.CancelFunc
	finished chan struct{} // closed when the task's goroutine returns

	mu   sync.Mutex
	view api.Task
}

func (t *task) snapshot() api.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.view
	v.Errors = slices.Clone(v.Errors)
	v.Moves = slices.Clone(v.Moves)
	return v
}

type taskManager struct {
	s  *Server
	wg sync.WaitGroup

	mu     sync.Mutex
	tasks  map[string]*task
	order  []string // ids, oldest first
	closed bool
}

func newTaskManager(s *Server) *taskManager {
	return &taskManager{s: s, tasks: make(map[string]*task)}
}

// start registers a task and runs fn on its own goroutine.
func (m *taskManager) start(view api.Task, fn func(ctx context.Context, t *task)) (*task, error) {
	var r [8]byte
	_, _ = rand.Read(r[:])
	view.ID = hex.EncodeToString(r[:])
	view.State = taskRunning
	view.Created = m.s.cfg.Now().UTC()
	ctx, cancel := context.WithCancel(context.Background())
	t := &task{cancel: cancel, finished: make(chan struct{}), view: view}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		cancel()
		return nil, &broker.Error{Code: broker.ResourceError, Reason: "server is shutting down"}
	}
	m.tasks[view.ID] = t
	m.order = append(m.order, view.ID)
	m.pruneLocked()
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer close(t.finished)
		defer cancel()
		fn(ctx, t)
	}()
	return t, nil
}

// pruneLocked forgets the oldest finished tasks beyond KeepTasks.
func (m *taskManager) pruneLocked() {
	for len(m.order) > m.s.cfg.KeepTasks {
		dropped := false
		for i, id := range m.order {
			t := m.tasks[id]
			if t.snapshot().State != taskRunning {
				delete(m.tasks, id)
				m.order = slices.Delete(m.order, i, i+1)
				dropped = true
				break
			}
		}
		if !dropped {
			return
		}
	}
}

func (m *taskManager) get(id string) *task {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tasks[id]
}

func (m *taskManager) list() []*task {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*task, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, m.tasks[id])
	}
	return out
}

func (m *taskManager) close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	for _, t := range m.tasks {
		t.cancel()
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) redrive(w http.ResponseWriter, r *http.Request, u *user) {
	vh, name, ok := s.queueForMessages(w, r, u, permRead)
	if !ok {
		return
	}
	var req api.Redrive
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Rate < 0 {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("rate: %v, want messages per second ≥ 0", req.Rate))
		return
	}
	if req.Target != "" && req.TargetExchange != "" {
		writeError(w, http.StatusBadRequest, "bad_request", "give target (a queue) or target_exchange, not both")
		return
	}
	if req.IDs != nil && req.Filter != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "give ids or filter, not both")
		return
	}
	var f broker.Filter
	if req.Filter != nil {
		var err error
		if f, err = parseFilter(*req.Filter); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	target := broker.MoveTarget{Queue: req.Target, Exchange: req.TargetExchange}
	if target.Queue != "" {
		if _, err := s.b.Queue(vh, target.Queue); err != nil {
			writeBrokerError(w, err)
			return
		}
		if err := u.check(vh, permWrite, "queue", target.Queue); err != nil {
			writeBrokerError(w, err)
			return
		}
	}
	if target.Exchange != "" {
		if _, err := s.b.Exchange(vh, target.Exchange); err != nil {
			writeBrokerError(w, err)
			return
		}
		if err := u.check(vh, permWrite, "exchange", target.Exchange); err != nil {
			writeBrokerError(w, err)
			return
		}
	}
	ids := req.IDs
	if ids == nil {
		var err error
		if ids, err = s.b.MatchingIDs(vh, name, f, 0); err != nil {
			writeBrokerError(w, err)
			return
		}
	}
	view := api.Task{Kind: "redrive", VHost: vh, Queue: name, User: u.name, DryRun: req.DryRun, Total: len(ids)}
	t, err := s.tasks.start(view, func(ctx context.Context, t *task) {
		s.runRedrive(ctx, t, u, ids, target, req.Rate, req.DryRun)
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, t.snapshot())
}

// runRedrive moves ids chunk by chunk, paced to rate messages per second.
func (s *Server) runRedrive(ctx context.Context, t *task, u *user, ids []uint64, target broker.MoveTarget, rate float64, dryRun bool) {
	v := t.snapshot()
	chunk := s.cfg.RedriveChunk
	if rate > 0 {
		chunk = max(1, min(chunk, int(rate/10)))
	}
	start := time.Now()
	var moved []uint64
	state, failure := taskDone, ""
	for done := 0; done < len(ids); {
		if ctx.Err() != nil {
			state = taskCancelled
			break
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(done) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					timer.Stop()
					continue
				case <-timer.C:
				}
			}
		}
		part := ids[done:min(done+chunk, len(ids))]
		results, err := s.b.Redrive(v.VHost, v.Queue, part, target, dryRun)
		if err != nil {
			state, failure = taskFailed, err.Error()
			break
		}
		done += len(part)
		t.mu.Lock()
		for _, res := range results {
			t.view.Done++
			switch {
			case res.Err != nil:
				t.view.Failed++
				if len(t.view.Errors) < maxTaskErrors {
					t.view.Errors = append(t.view.Errors, api.TaskError{ID: res.ID, Reason: res.Err.Error()})
				}
			default:
				t.view.Moved++
				moved = append(moved, res.ID)
				if dryRun && len(t.view.Moves) < 1000 {
					t.view.Moves = append(t.view.Moves, api.TaskMove{ID: res.ID, To: res.To})
				}
			}
		}
		t.mu.Unlock()
	}
	now := s.cfg.Now().UTC()
	t.mu.Lock()
	t.view.State, t.view.Error, t.view.Finished = state, failure, &now
	t.mu.Unlock()
	if !dryRun {
		to := "the queues they died in"
		switch {
		case target.Queue != "":
			to = fmt.Sprintf("queue '%s'", target.Queue)
		case target.Exchange != "":
			to = fmt.Sprintf("exchange '%s'", target.Exchange)
		}
		s.audit1(u, "redrive", v.VHost, v.Queue, fmt.Sprintf("task %s to %s: %s", v.ID, to, state), moved, len(moved))
	}
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request, u *user) {
	out := []api.Task{}
	for _, t := range s.tasks.list() {
		v := t.snapshot()
		if u.admin() || v.User == u.name {
			out = append(out, v)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) taskFor(w http.ResponseWriter, r *http.Request, u *user) *task {
	id := pathValue(r, "id")
	t := s.tasks.get(id)
	if t == nil || (!u.admin() && t.snapshot().User != u.name) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no task '%s'", id))
		return nil
	}
	return t
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request, u *user) {
	if t := s.taskFor(w, r, u); t != nil {
		writeJSON(w, http.StatusOK, t.snapshot())
	}
}

// cancelTask stops a running task; the messages it moved stay moved.
func (s *Server) cancelTask(w http.ResponseWriter, r *http.Request, u *user) {
	t := s.taskFor(w, r, u)
	if t == nil {
		return
	}
	if v := t.snapshot(); v.State != taskRunning {
		writeError(w, http.StatusConflict, "precondition_failed", fmt.Sprintf("task '%s' is %s", v.ID, v.State))
		return
	}
	t.cancel()
	select {
	case <-t.finished:
	case <-r.Context().Done():
	}
	writeJSON(w, http.StatusOK, t.snapshot())
}
