package httpapi

// Redrive tasks: POST …/redrive starts one in the dead-letter workflow
// (package dlq), which runs, paces, persists and resumes it; GET lists and
// reads tasks, DELETE cancels one.

import (
	"net/http"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/dlq"
)

// Name and CheckWrite make a user the workflow's dlq.User.
func (u *user) Name() string { return u.name }

func (u *user) CheckWrite(vhost, kind, name string) error {
	return u.check(vhost, permWrite, kind, name)
}

var _ dlq.User = (*user)(nil)

// workflowUser returns the user a resumed task acts for.
func (s *Server) workflowUser(name string) (dlq.User, error) {
	info, err := s.b.User(name)
	if err != nil {
		return nil, err
	}
	return &user{name: name, tags: info.Tags, b: s.b}, nil
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
	t, err := s.dlq.StartRedrive(u, vh, name, req)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, t)
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request, u *user) {
	out := []api.Task{}
	for _, t := range s.dlq.Tasks() {
		if u.admin() || t.User == u.name {
			out = append(out, t)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// taskFor returns the task of the path's id that u may see; it answers
// 404 and returns false when there is none.
func (s *Server) taskFor(w http.ResponseWriter, r *http.Request, u *user) (api.Task, bool) {
	id := pathValue(r, "id")
	t, ok := s.dlq.Task(id)
	if !ok || (!u.admin() && t.User != u.name) {
		writeError(w, http.StatusNotFound, "not_found", "no task '"+id+"'")
		return api.Task{}, false
	}
	return t, true
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request, u *user) {
	if t, ok := s.taskFor(w, r, u); ok {
		writeJSON(w, http.StatusOK, t)
	}
}

// cancelTask stops a running task; the messages it moved stay moved.
func (s *Server) cancelTask(w http.ResponseWriter, r *http.Request, u *user) {
	t, ok := s.taskFor(w, r, u)
	if !ok {
		return
	}
	t, err := s.dlq.Cancel(r.Context(), t.ID)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}
