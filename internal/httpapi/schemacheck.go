package httpapi

// POST /api/schemas/{vhost}/{name}/validate: checks a body against a
// registered schema without publishing anything. The console checks an
// edited body with it, against the schema of the message's queue and of
// the queue it died in, before it saves, and shows each error at its
// field.

import (
	"fmt"
	"net/http"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/schema"
)

func (s *Server) routeSchemaCheck() {
	s.routeSized("POST /api/schemas/{vhost}/{name}/validate", needMonitoringOrManagement, s.messageBodyBytes(), s.validateAgainstSchema) // a message body
}

func (s *Server) validateAgainstSchema(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	var in api.SchemaCheck
	if !decodeBody(w, r, &in) {
		return
	}
	body, err := decodePayload(in.Payload, in.PayloadEncoding)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	name := pathValue(r, "name")
	info, err := s.b.Schema(vh, name)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	sch, err := schema.Compile(info.Document)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_error", fmt.Sprintf("compile schema '%s': %v", name, err))
		return
	}
	errs := sch.Validate(body)
	if len(errs) == 0 {
		writeJSON(w, http.StatusOK, api.SchemaChecked{Valid: true})
		return
	}
	out := ValidationFailure{Kind: "invalid_message", Reason: fmt.Sprintf("body does not match schema '%s': %s", name, errs[0]),
		Errors: []api.ValidationError{}}
	for _, e := range errs {
		out.Errors = append(out.Errors, api.ValidationError{Pointer: e.Pointer, Message: e.Message})
	}
	writeJSON(w, http.StatusUnprocessableEntity, out)
}
