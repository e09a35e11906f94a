package httpapi

// A quorum queue's members: grow (POST .../members {"node": NAME}) and
// shrink (DELETE .../members/NAME), which `sluice queue grow|shrink`
// drive; and the cluster's nodes: add (POST /api/nodes {"name", "address"})
// and remove (DELETE /api/nodes/NAME), which `sluice cluster add|remove`
// drive. Administrators only: placement is the operator's. Each answers
// 204 once the change is applied on the answering node.

import (
	"net/http"
)

func (s *Server) memberRoutes() {
	s.route("POST /api/queues/{vhost}/{name}/members", needAdministrator, s.growQueue)
	s.route("DELETE /api/queues/{vhost}/{name}/members/{node}", needAdministrator, s.shrinkQueue)
	s.route("POST /api/nodes", needAdministrator, s.addNode)
	s.route("DELETE /api/nodes/{name}", needAdministrator, s.removeNode)
}

func (s *Server) addNode(w http.ResponseWriter, r *http.Request, _ *user) {
	var body struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Name == "" || body.Address == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `want {"name": NAME, "address": "host:port"}`)
		return
	}
	if err := s.b.AddClusterNode(body.Name, body.Address); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request, _ *user) {
	if err := s.b.RemoveClusterNode(pathValue(r, "name")); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) growQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	var body struct {
		Node string `json:"node"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Node == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `want {"node": NAME}`)
		return
	}
	if err := s.b.GrowQueue(vh, pathValue(r, "name"), body.Node); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) shrinkQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	if err := s.b.ShrinkQueue(vh, pathValue(r, "name"), pathValue(r, "node")); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
