package httpapi

// Creating and deleting vhosts (administrators). Deleting one closes the
// AMQP connections still open to it with 320 CONNECTION_FORCED, as
// RabbitMQ does.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/sluicemq/sluice/internal/api"
)

func (s *Server) putVHost(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "vhost")
	var body api.VHostPut
	if r.ContentLength != 0 {
		if err := decodeOptional(r, &body); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	created, err := s.b.PutVHost(name)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	if !created {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.log.Info("vhost created", "vhost", name, "user", u.name)
	w.WriteHeader(http.StatusCreated)
}

// decodeOptional reads a JSON body that may be empty.
func decodeOptional(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

func (s *Server) deleteVHost(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "vhost")
	if err := s.b.DeleteVHost(name); err != nil {
		writeBrokerError(w, err)
		return
	}
	if s.conns != nil {
		CloseVHostConnections(s.conns, name)
	}
	s.log.Info("vhost deleted", "vhost", name, "user", u.name)
	w.WriteHeader(http.StatusNoContent)
}

// CloseVHostConnections closes the AMQP connections to a deleted vhost
// (320 CONNECTION_FORCED): on the node that deleted it, and on the others
// of a cluster once the deletion reaches them.
func CloseVHostConnections(conns Connections, vhost string) {
	for _, c := range conns.Connections() {
		if info := c.Info(); info.VHost == vhost {
			conns.CloseConnection(info.Name, fmt.Sprintf("vhost '%s' is deleted", vhost))
		}
	}
}
