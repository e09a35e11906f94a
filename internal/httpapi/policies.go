package httpapi

// Policies and operator policies: RabbitMQ's /api/policies and
// /api/operator-policies. Changes are recorded in the audit log.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

func (s *Server) routePolicies() {
	s.route("GET /api/policies", needMonitoringOrManagement, s.listPolicies)
	s.route("GET /api/policies/{vhost}", needMonitoringOrManagement, s.listPolicies)
	s.route("GET /api/policies/{vhost}/{name}", needMonitoringOrManagement, s.getPolicy)
	s.route("PUT /api/policies/{vhost}/{name}", needPolicymaker, s.putPolicy)
	s.route("DELETE /api/policies/{vhost}/{name}", needPolicymaker, s.deletePolicy)
	s.route("GET /api/operator-policies", needMonitoringOrManagement, s.listPolicies)
	s.route("GET /api/operator-policies/{vhost}", needMonitoringOrManagement, s.listPolicies)
	s.route("GET /api/operator-policies/{vhost}/{name}", needMonitoringOrManagement, s.getPolicy)
	s.route("PUT /api/operator-policies/{vhost}/{name}", needPolicymaker, s.putPolicy)
	s.route("DELETE /api/operator-policies/{vhost}/{name}", needPolicymaker, s.deletePolicy)
	s.route("GET /api/parameters", needMonitoringOrManagement, s.listParameters)
}

// listParameters lists the runtime parameters as RabbitMQ does; Sluice's
// only ones are the operator policies (component operator_policy).
func (s *Server) listParameters(w http.ResponseWriter, r *http.Request, u *user) {
	ps, err := s.b.Policies("", true)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.DefParameter{}
	for _, p := range ps {
		if u.seesVHost(p.VHost) {
			out = append(out, operatorParameter(p))
		}
	}
	writeListing(w, r, out)
}

// operatorParameter is an operator policy as RabbitMQ's runtime parameter.
func operatorParameter(p broker.Policy) api.DefParameter {
	v, _ := json.Marshal(map[string]any{"pattern": p.Pattern, "definition": p.Definition, "priority": p.Priority, "apply-to": p.ApplyTo})
	return api.DefParameter{VHost: p.VHost, Component: "operator_policy", Name: p.Name, Value: v}
}

// needPolicymaker: as RabbitMQ, administrators and policymakers (with
// configure permission on the vhost) set policies, only administrators
// operator policies; mayPolicy checks which.
const needPolicymaker = needManagement

func isOperator(r *http.Request) bool {
	return strings.HasPrefix(r.Pattern, "GET /api/operator-policies") ||
		strings.Contains(r.Pattern, " /api/operator-policies")
}

func apiPolicy(p broker.Policy) api.Policy {
	def := p.Definition
	if def == nil {
		def = map[string]any{}
	}
	return api.Policy{VHost: p.VHost, Name: p.Name, Pattern: p.Pattern, ApplyTo: p.ApplyTo, Definition: def, Priority: p.Priority}
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	ps, err := s.b.Policies(vh, isOperator(r))
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.Policy{}
	for _, p := range ps {
		if u.seesVHost(p.VHost) {
			out = append(out, apiPolicy(p))
		}
	}
	writeListing(w, r, out)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	p, err := s.b.GetPolicy(vh, pathValue(r, "name"), isOperator(r))
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiPolicy(p))
}

// mayPolicy reports whether u may change policies of vh: administrators,
// policymakers with configure permission on the vhost; operator policies
// administrators only.
func (s *Server) mayPolicy(w http.ResponseWriter, r *http.Request, u *user, vh string) bool {
	if u.admin() {
		return true
	}
	if !isOperator(r) && u.has(broker.TagPolicymaker) {
		if err := u.check(vh, permConfigure, "policy", pathValue(r, "name")); err == nil {
			return true
		}
	}
	writeError(w, http.StatusForbidden, "not_authorised", fmt.Sprintf("user '%s' may not change %s", u.name, policyKind(r)))
	return false
}

func policyKind(r *http.Request) string {
	if isOperator(r) {
		return "operator policies"
	}
	return "policies"
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	var d api.PolicyPut
	if !decodeBody(w, r, &d) || !s.mayPolicy(w, r, u, vh) {
		return
	}
	if d.Definition == nil {
		writeError(w, http.StatusBadRequest, "bad_request", "definition: missing; want an object of policy settings")
		return
	}
	p := broker.Policy{VHost: vh, Name: name, Pattern: d.Pattern, ApplyTo: d.ApplyTo, Definition: d.Definition, Operator: isOperator(r)}
	if d.Priority != nil {
		p.Priority = *d.Priority
	}
	created, err := s.b.PutPolicy(p)
	if err == nil {
		s.audit1(u, "policy.set", vh, "", fmt.Sprintf("%s '%s' pattern %q", policyKind(r), name, d.Pattern), nil, 0)
	}
	answerDeclare(w, err, !created)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	if !s.mayPolicy(w, r, u, vh) {
		return
	}
	if err := s.b.DeletePolicy(vh, name, isOperator(r)); err != nil {
		writeBrokerError(w, err)
		return
	}
	s.audit1(u, "policy.delete", vh, "", fmt.Sprintf("%s '%s'", policyKind(r), name), nil, 0)
	w.WriteHeader(http.StatusNoContent)
}

// policyFields are a queue's policy, operator_policy and
// effective_policy_definition.
func policyFields(q broker.QueueInfo) (policy, operator *string, def map[string]any) {
	if q.Policy != "" {
		policy = &q.Policy
	}
	if q.OperatorPolicy != "" {
		operator = &q.OperatorPolicy
	}
	def = q.EffectivePolicy
	if def == nil {
		def = map[string]any{}
	}
	return policy, operator, def
}
