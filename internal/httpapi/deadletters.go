package httpapi

// GET /api/dead-letters: the queues that hold dead letters, as the
// dead-letter workflow (package dlq) counts them, among those the user may
// read. The console's dead-letter view is drawn from it.

import "net/http"

func (s *Server) routeDeadLetters() {
	s.route("GET /api/dead-letters", needManagement, s.deadLetters)
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request, u *user) {
	out, err := s.dlq.DeadLetterQueues(func(vh, q string) bool {
		return u.seesVHost(vh) && u.check(vh, permRead, "queue", q) == nil
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
