package httpapi

// JSON Schemas for x-schema: Sluice's own resource.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

// routeSchemas registers the schema endpoints.
func (s *Server) routeSchemas() {
	s.route("GET /api/schemas", needMonitoringOrManagement, s.listSchemas)
	s.route("GET /api/schemas/{vhost}", needMonitoringOrManagement, s.listSchemas)
	s.route("GET /api/schemas/{vhost}/{name}", needMonitoringOrManagement, s.getSchema)
	s.route("PUT /api/schemas/{vhost}/{name}", needManagement, s.putSchema)
	s.route("DELETE /api/schemas/{vhost}/{name}", needManagement, s.deleteSchema)
}

// writeValidationError answers a message that failed validation (a
// broker.ValidationError in err's chain) with 422 and what failed; it
// reports whether it did.
func writeValidationError(w http.ResponseWriter, err error) bool {
	var ve *broker.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	e := ValidationFailure{Kind: "invalid_message", Reason: err.Error(), Errors: []api.ValidationError{}}
	for _, x := range ve.Errors {
		e.Errors = append(e.Errors, api.ValidationError{Pointer: x.Pointer, Message: x.Message})
	}
	writeJSON(w, http.StatusUnprocessableEntity, e)
	return true
}

// ValidationFailure is the 422 answer to a publish whose message failed
// validation: the usual {error, reason} plus each failure, with a JSON
// pointer into the message.
type ValidationFailure struct {
	Kind   string                `json:"error"`
	Reason string                `json:"reason"`
	Errors []api.ValidationError `json:"errors"`
}

func apiSchema(s broker.SchemaInfo) api.Schema {
	used := s.UsedBy
	if used == nil {
		used = []string{}
	}
	return api.Schema{Name: s.Name, VHost: s.VHost, Schema: json.RawMessage(s.Document), UsedBy: used}
}

func (s *Server) listSchemas(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	ss, err := s.b.Schemas(vh)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.Schema{}
	for _, x := range ss {
		if u.seesVHost(x.VHost) {
			out = append(out, apiSchema(x))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSchema(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	x, err := s.b.Schema(vh, pathValue(r, "name"))
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiSchema(x))
}

// putSchema registers {"schema": <JSON Schema document>}: 201 new, 204
// replaced, 400 when it is missing, not an object, or does not compile.
func (s *Server) putSchema(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	var body struct {
		Schema json.RawMessage `json:"schema"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	doc := bytes.TrimSpace(body.Schema)
	switch {
	case len(doc) == 0 || bytes.Equal(doc, []byte("null")):
		writeError(w, http.StatusBadRequest, "bad_request", "schema: missing; want {\"schema\": {...}}")
		return
	case doc[0] != '{':
		writeError(w, http.StatusBadRequest, "bad_request", "schema: want a JSON object")
		return
	}
	if err := u.check(vh, permConfigure, "schema", name); err != nil {
		writeBrokerError(w, err)
		return
	}
	created, err := s.b.PutSchema(vh, name, doc)
	answerDeclare(w, err, !created)
}

func (s *Server) deleteSchema(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	if err := u.check(vh, permConfigure, "schema", name); err != nil {
		writeBrokerError(w, err)
		return
	}
	if err := s.b.DeleteSchema(vh, name); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
