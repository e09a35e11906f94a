package httpapi

// Per-user and per-vhost limits as RabbitMQ's HTTP API has them:
// /api/user-limits/{user}/{name} and /api/vhost-limits/{vhost}/{name},
// with a body {"value": N}. Changes are recorded in the audit log.

import (
	"encoding/json"
	"fmt"
	"net/http"

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
