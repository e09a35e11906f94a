package httpapi

// Per-user and per-vhost limits as RabbitMQ's HTTP API has them:
// /api/user-limits/{user}/{name} and /api/vhost-limits/{vhost}/{name},
// with a body {"value": N}. Changes are recorded in the audit log.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

func (s *Server) routeLimits() {
	s.route("GET /api/user-limits", needAdministrator, s.listLimits(broker.UserLimit))
	s.route("GET /api/user-limits/{user}", needAdministrator, s.listLimits(broker.UserLimit))
	s.route("PUT /api/user-limits/{user}/{name}", needAdministrator, s.putLimit(broker.UserLimit))
	s.route("DELETE /api/user-limits/{user}/{name}", needAdministrator, s.deleteLimit(broker.UserLimit))
	s.route("GET /api/vhost-limits", needMonitoringOrManagement, s.listLimits(broker.VHostLimit))
	s.route("GET /api/vhost-limits/{vhost}", needMonitoringOrManagement, s.listLimits(broker.VHostLimit))
	s.route("PUT /api/vhost-limits/{vhost}/{name}", needAdministrator, s.putLimit(broker.VHostLimit))
	s.route("DELETE /api/vhost-limits/{vhost}/{name}", needAdministrator, s.deleteLimit(broker.VHostLimit))
}

// limitEntry is one user's or vhost's limits in RabbitMQ's JSON:
// {"user": "u", "value": {"max-connections": 10}} (or "vhost").
func limitEntry(scope broker.LimitScope, l broker.Limits) map[string]any {
	key := "user"
	if scope == broker.VHostLimit {
		key = "vhost"
	}
	return map[string]any{key: l.Name, "value": l.Values}
}

func (s *Server) listLimits(scope broker.LimitScope) func(http.ResponseWriter, *http.Request, *user) {
	return func(w http.ResponseWriter, r *http.Request, u *user) {
		owner := pathValue(r, ownerKey(scope))
		out := []map[string]any{}
		for _, l := range s.b.LimitsOf(scope, owner) {
			if scope == broker.UserLimit || u.seesVHost(l.Name) {
				out = append(out, limitEntry(scope, l))
			}
		}
		writeListing(w, r, out)
	}
}

func (s *Server) putLimit(scope broker.LimitScope) func(http.ResponseWriter, *http.Request, *user) {
	return func(w http.ResponseWriter, r *http.Request, u *user) {
		owner, name := pathValue(r, ownerKey(scope)), pathValue(r, "name")
		var body struct {
			Value *json.Number `json:"value"`
		}
		if !decodeBody(w, r, &body) {
			return
		}
		if body.Value == nil {
			writeError(w, http.StatusBadRequest, "bad_request", `value: missing; want {"value": N} (a negative N: no limit)`)
			return
		}
		v, err := body.Value.Int64()
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("value %s: want an integer", body.Value))
			return
		}
		if err := s.b.SetLimit(scope, owner, name, v); err != nil {
			writeBrokerError(w, err)
			return
		}
		s.audit1(u, "limit.set", "", "", fmt.Sprintf("%s limit %s of '%s' = %d", limitKind(scope), name, owner, v), nil, 0)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) deleteLimit(scope broker.LimitScope) func(http.ResponseWriter, *http.Request, *user) {
	return func(w http.ResponseWriter, r *http.Request, u *user) {
		owner, name := pathValue(r, ownerKey(scope)), pathValue(r, "name")
		if err := s.b.DeleteLimit(scope, owner, name); err != nil {
			writeBrokerError(w, err)
			return
		}
		s.audit1(u, "limit.delete", "", "", fmt.Sprintf("%s limit %s of '%s'", limitKind(scope), name, owner), nil, 0)
		w.WriteHeader(http.StatusNoContent)
	}
}

// ownerKey is the path parameter naming the user or vhost.
func ownerKey(scope broker.LimitScope) string { return limitKind(scope) }

func limitKind(scope broker.LimitScope) string {
	if scope == broker.UserLimit {
		return "user"
	}
	return "vhost"
}

// Limits in a definitions file, as RabbitMQ writes them: a user's under
// "limits" of its users entry, a vhost's as the runtime parameter
// {"component": "vhost-limits", "name": "limits", "value": {...}}.

// plannedLimit is one limit an import sets.
type plannedLimit struct {
	scope       broker.LimitScope
	owner, name string
	value       int64
}

// userLimitsOf is a user's limits for its definitions entry.
func (s *Server) userLimitsOf(user string) map[string]any {
	out := map[string]any{}
	for _, l := range s.b.LimitsOf(broker.UserLimit, user) {
		for k, v := range l.Values {
			out[k] = v
		}
	}
	return out
}

// vhostLimitParameters are the vhost-limits parameters of vh ("": all).
func (s *Server) vhostLimitParameters(vh string) []api.DefParameter {
	var out []api.DefParameter
	for _, l := range s.b.LimitsOf(broker.VHostLimit, vh) {
		v, _ := json.Marshal(l.Values)
		out = append(out, api.DefParameter{VHost: l.Name, Component: "vhost-limits", Name: "limits", Value: v})
	}
	return out
}

// planLimits reads the limits of an owner from a definitions file; where
// names the entry in errors.
func planLimits(scope broker.LimitScope, owner, where string, values map[string]any) ([]plannedLimit, error) {
	var out []plannedLimit
	for _, name := range sortedNames(values) {
		if err := broker.CheckLimitName(scope, name); err != nil {
			return nil, &importError{reason: fmt.Sprintf("%s: %s", where, reasonOf(err))}
		}
		n, err := json.Number(fmt.Sprint(values[name])).Int64()
		if err != nil {
			return nil, &importError{reason: fmt.Sprintf("%s: limit %s = %v, want an integer", where, name, values[name])}
		}
		out = append(out, plannedLimit{scope, owner, name, n})
	}
	return out, nil
}

// planVHostLimits reads one vhost-limits parameter.
func planVHostLimits(x api.DefParameter, vh, where string) ([]plannedLimit, error) {
	var values map[string]any
	dec := json.NewDecoder(bytes.NewReader(x.Value))
	dec.UseNumber()
	if err := dec.Decode(&values); err != nil {
		return nil, &importError{reason: fmt.Sprintf("%s: value: %v", where, err)}
	}
	return planLimits(broker.VHostLimit, vh, where, values)
}

func sortedNames(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}
