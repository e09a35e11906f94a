package httpapi

// Definitions: RabbitMQ's GET|POST /api/definitions (and per vhost), the
// topology as one JSON file — users with their password hashes, vhosts,
// permissions, policies and operator policies, exchanges, queues,
// bindings — plus Sluice's schemas. An import is validated as a whole
// before anything is applied, and applying it again changes nothing.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

func (s *Server) routeDefinitions() {
	s.route("GET /api/definitions", needAdministrator, s.exportDefinitions)
	s.route("GET /api/definitions/{vhost}", needAdministrator, s.exportDefinitions)
	s.routeSized("POST /api/definitions", needAdministrator, s.cfg.MaxDefinitionsBytes, s.importDefinitions)
	s.routeSized("POST /api/definitions/{vhost}", needAdministrator, s.cfg.MaxDefinitionsBytes, s.importDefinitions)
}

func (s *Server) exportDefinitions(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	d, err := s.Definitions(vh)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+r.URL.Query().Get("download")+`"`)
	}
	writeJSON(w, http.StatusOK, d)
}

// Definitions exports the topology of vh ("" for the whole broker).
func (s *Server) Definitions(vh string) (api.Definitions, error) {
	d := api.Definitions{RabbitVersion: "3.10.8", RabbitMQVersion: "3.10.8", ProductName: "Sluice", ProductVersion: s.cfg.Version,
		Policies: []api.Policy{}, Queues: []api.DefQueue{}, Exchanges: []api.DefExchange{}, Bindings: []api.DefBinding{}}
	keep := func(v string) string { // per-vhost files carry no vhost
		if vh != "" {
			return ""
		}
		return v
	}
	if vh == "" {
		for _, x := range s.b.Users() {
			d.Users = append(d.Users, api.DefUser{Name: x.Name, PasswordHash: x.PasswordHash,
				HashingAlgorithm: x.HashingAlgorithm, Tags: nonNil(x.Tags), Limits: s.userLimitsOf(x.Name)}) // limits.go
		}
		for _, n := range s.b.VHosts() {
			d.VHosts = append(d.VHosts, api.DefVHost{Name: n})
		}
		ps, err := s.b.Permissions("", "")
		if err != nil {
			return d, err
		}
		for _, p := range ps {
			d.Permissions = append(d.Permissions, apiPermission(p))
		}
		d.TopicPermissions, d.GlobalParameters = []json.RawMessage{}, []json.RawMessage{}
	}
	ops, err := s.b.Policies(vh, true)
	if err != nil {
		return d, err
	}
	for _, p := range ops {
		d.Parameters = append(d.Parameters, operatorParameter(p)) // policies.go
	}
	d.Parameters = append(d.Parameters, s.vhostLimitParameters(vh)...) // limits.go
	if d.Parameters == nil {
		d.Parameters = []api.DefParameter{}
	}
	ps, err := s.b.Policies(vh, false)
	if err != nil {
		return d, err
	}
	for _, p := range ps {
		ap := apiPolicy(p)
		ap.VHost = keep(p.VHost)
		d.Policies = append(d.Policies, ap)
	}
	qs, err := s.b.Queues(vh)
	if err != nil {
		return d, err
	}
	for _, q := range qs {
		if q.Exclusive || !q.Durable && q.Owner != "" {
			continue
		}
		d.Queues = append(d.Queues, api.DefQueue{Name: q.Name, VHost: keep(q.VHost), Durable: q.Durable, AutoDelete: q.AutoDelete,
			Arguments: nonNilMap(jsonTable(q.Args))})
	}
	xs, err := s.b.Exchanges(vh)
	if err != nil {
		return d, err
	}
	for _, x := range xs {
		if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
			continue
		}
		d.Exchanges = append(d.Exchanges, api.DefExchange{Name: x.Name, VHost: keep(x.VHost), Type: x.Type, Durable: x.Durable,
			AutoDelete: x.AutoDelete, Internal: x.Internal, Arguments: nonNilMap(jsonTable(x.Args))})
	}
	bs, err := s.b.Bindings(vh)
	if err != nil {
		return d, err
	}
	for _, b := range bs {
		if b.Source == "" {
			continue
		}
		d.Bindings = append(d.Bindings, api.DefBinding{Source: b.Source, VHost: keep(b.VHost), Destination: b.Destination,
			DestinationType: b.DestinationType, RoutingKey: b.RoutingKey, Arguments: nonNilMap(jsonTable(b.Args))})
	}
	schemas, err := s.b.Schemas(vh)
	if err != nil {
		return d, err
	}
	for _, sc := range schemas {
		d.Schemas = append(d.Schemas, api.DefSchema{VHost: keep(sc.VHost), Name: sc.Name, Schema: sc.Document})
	}
	return d, nil
}

func nonNil(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func (s *Server) importDefinitions(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	var d api.Definitions
	if !decodeBody(w, r, &d) {
		return
	}
	if err := s.ImportDefinitions(d, vh, u.name); err != nil {
		writeImportError(w, err)
		return
	}
	s.audit1(u, "definitions.import", vh, "", fmt.Sprintf("%d queues, %d exchanges, %d bindings, %d policies",
		len(d.Queues), len(d.Exchanges), len(d.Bindings), len(d.Policies)), nil, 0)
	w.WriteHeader(http.StatusNoContent)
}

// importError is a definitions file that does not validate: 400.
type importError struct{ reason string }

func (e *importError) Error() string { return e.reason }

func writeImportError(w http.ResponseWriter, err error) {
	if ie, ok := err.(*importError); ok {
		writeError(w, http.StatusBadRequest, "bad_request", "definitions: "+ie.reason)
		return
	}
	writeBrokerError(w, err)
}

// DecodeDefinitions reads a definitions file (sluice serve
// --load-definitions).
func DecodeDefinitions(b []byte) (api.Definitions, error) {
	var d api.Definitions
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("definitions: %w", err)
	}
	return d, nil
}

// ImportDefinitions applies d (into vhost only, when vhost is not "") as
// user: validated first, then vhosts, users, permissions, schemas,
// policies, exchanges, queues and bindings in that order.
func (s *Server) ImportDefinitions(d api.Definitions, vhost, user string) error {
	plan, err := s.planImport(d, vhost)
	if err != nil {
		return err
	}
	for _, v := range plan.vhosts {
		if _, err := s.b.PutVHost(v); err != nil {
			return fmt.Errorf("vhost '%s': %w", v, err)
		}
	}
	for _, x := range plan.users {
		if _, err := s.b.PutUser(x.name, "", x.hash, x.tags); err != nil {
			return fmt.Errorf("user '%s': %w", x.name, err)
		}
	}
	for _, p := range plan.perms {
		if err := s.b.SetPermission(p); err != nil {
			return fmt.Errorf("permission of '%s' on vhost '%s': %w", p.User, p.VHost, err)
		}
	}
	for _, l := range plan.limits {
		if err := s.b.SetLimit(l.scope, l.owner, l.name, l.value); err != nil {
			return fmt.Errorf("limit %s of '%s': %w", l.name, l.owner, err)
		}
	}
	for _, sc := range plan.schemas {
		if _, err := s.b.PutSchema(sc.VHost, sc.Name, sc.Schema); err != nil {
			return fmt.Errorf("schema '%s' in vhost '%s': %w", sc.Name, sc.VHost, err)
		}
	}
	for _, p := range plan.policies {
		if _, err := s.b.PutPolicy(p); err != nil {
			return fmt.Errorf("policy '%s' in vhost '%s': %w", p.Name, p.VHost, err)
		}
	}
	for _, x := range plan.exchanges {
		if err := s.adminDo(x.vhost, user, func(ch *broker.Channel) error { return ch.DeclareExchange(x.decl) }); err != nil {
			return fmt.Errorf("exchange '%s' in vhost '%s': %w", x.decl.Name, x.vhost, err)
		}
	}
	for _, q := range plan.queues {
		if err := s.adminDo(q.vhost, user, func(ch *broker.Channel) error { _, err := ch.DeclareQueue(q.decl); return err }); err != nil {
			return fmt.Errorf("queue '%s' in vhost '%s': %w", q.decl.Name, q.vhost, err)
		}
	}
	for _, b := range plan.bindings {
		err := s.adminDo(b.vhost, user, func(ch *broker.Channel) error {
			if b.toExchange {
				return ch.BindExchange(b.bnd)
			}
			return ch.BindQueue(b.bnd)
		})
		if err != nil {
			return fmt.Errorf("binding from '%s' to '%s' in vhost '%s': %w", b.bnd.Source, b.bnd.Destination, b.vhost, err)
		}
	}
	return nil
}

func (s *Server) adminDo(vh, user string, fn func(ch *broker.Channel) error) error {
	conn, ch, err := s.b.AdminSession(vh, user)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(ch)
}

type importPlan struct {
	vhosts []string
	users  []struct {
		name, hash string
		tags       []string
	}
	perms     []broker.Permission
	limits    []plannedLimit // limits.go
	policies  []broker.Policy
	schemas   []api.DefSchema
	exchanges []struct {
		vhost string
		decl  broker.ExchangeDecl
	}
	queues []struct {
		vhost string
		decl  broker.QueueDecl
	}
	bindings []struct {
		vhost      string
		toExchange bool
		bnd        broker.Binding
	}
}

// planImport validates d and turns it into the broker's terms.
func (s *Server) planImport(d api.Definitions, only string) (*importPlan, error) {
	bad := func(format string, args ...any) error { return &importError{reason: fmt.Sprintf(format, args...)} }
	p := &importPlan{}
	known := map[string]bool{}
	for _, v := range s.b.VHosts() {
		known[v] = true
	}
	if only == "" {
		for i, v := range d.VHosts {
			if v.Name == "" {
				return nil, bad("vhosts[%d]: name is empty", i)
			}
			known[v.Name] = true
			p.vhosts = append(p.vhosts, v.Name)
		}
	}
	vhostOf := func(what string, i int, v string) (string, error) {
		if only != "" {
			return only, nil
		}
		if v == "" {
			return "", bad("%s[%d]: vhost is missing", what, i)
		}
		if !known[v] {
			return "", bad("%s[%d]: vhost '%s' is neither in the file nor in the broker", what, i, v)
		}
		return v, nil
	}
	if only == "" {
		for i, x := range d.Users {
			if x.Name == "" {
				return nil, bad("users[%d]: name is empty", i)
			}
			if _, err := access.ParseHash(x.PasswordHash, x.HashingAlgorithm); err != nil {
				return nil, bad("users[%d] '%s': %v", i, x.Name, err)
			}
			tags, err := parseTags(x.Tags)
			if err != nil {
				return nil, bad("users[%d] '%s': %v", i, x.Name, err)
			}
			p.users = append(p.users, struct {
				name, hash string
				tags       []string
			}{x.Name, x.PasswordHash, tags})
			lims, err := planLimits(broker.UserLimit, x.Name, fmt.Sprintf("users[%d] '%s'", i, x.Name), x.Limits)
			if err != nil {
				return nil, err
			}
			p.limits = append(p.limits, lims...)
		}
		for i, x := range d.Permissions {
			vh, err := vhostOf("permissions", i, x.VHost)
			if err != nil {
				return nil, err
			}
			p.perms = append(p.perms, broker.Permission{User: x.User, VHost: vh, Configure: x.Configure, Write: x.Write, Read: x.Read})
		}
	}
	for i, x := range d.Policies {
		vh, err := vhostOf("policies", i, x.VHost)
		if err != nil {
			return nil, err
		}
		p.policies = append(p.policies, broker.Policy{VHost: vh, Name: x.Name, Pattern: x.Pattern, ApplyTo: x.ApplyTo,
			Priority: x.Priority, Definition: x.Definition})
		if err := broker.ValidatePolicy(p.policies[len(p.policies)-1]); err != nil {
			return nil, bad("policies[%d] '%s': %s", i, x.Name, reasonOf(err))
		}
	}
	for i, x := range d.Parameters {
		if x.Component != "operator_policy" && x.Component != "vhost-limits" {
			return nil, bad("parameters[%d]: component '%s' is not supported; Sluice knows operator_policy and vhost-limits", i, x.Component)
		}
		vh, err := vhostOf("parameters", i, x.VHost)
		if err != nil {
			return nil, err
		}
		if x.Component == "vhost-limits" {
			lims, err := planVHostLimits(x, vh, fmt.Sprintf("parameters[%d] vhost-limits of '%s'", i, vh)) // limits.go
			if err != nil {
				return nil, err
			}
			p.limits = append(p.limits, lims...)
			continue
		}
		var v api.PolicyPut
		dec := json.NewDecoder(bytes.NewReader(x.Value))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, bad("parameters[%d] '%s': value: %v", i, x.Name, err)
		}
		op := broker.Policy{VHost: vh, Name: x.Name, Pattern: v.Pattern, ApplyTo: v.ApplyTo, Definition: v.Definition, Operator: true}
		if v.Priority != nil {
			op.Priority = *v.Priority
		}
		if err := broker.ValidatePolicy(op); err != nil {
			return nil, bad("parameters[%d] '%s': %s", i, x.Name, reasonOf(err))
		}
		p.policies = append(p.policies, op)
	}
	for i, x := range d.Schemas {
		vh, err := vhostOf("schemas", i, x.VHost)
		if err != nil {
			return nil, err
		}
		x.VHost = vh
		p.schemas = append(p.schemas, x)
	}
	for i, x := range d.Exchanges {
		vh, err := vhostOf("exchanges", i, x.VHost)
		if err != nil {
			return nil, err
		}
		if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
			continue // predeclared
		}
		args, err := amqpTable(x.Arguments)
		if err != nil {
			return nil, bad("exchanges[%d] '%s': arguments: %v", i, x.Name, err)
		}
		if !broker.ValidExchangeType(x.Type, args) {
			return nil, bad("exchanges[%d] '%s': type '%s' is not an exchange type Sluice knows", i, x.Name, x.Type)
		}
		p.exchanges = append(p.exchanges, struct {
			vhost string
			decl  broker.ExchangeDecl
		}{vh, broker.ExchangeDecl{Name: x.Name,
			Type: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Args: args}})
	}
	for i, x := range d.Queues {
		vh, err := vhostOf("queues", i, x.VHost)
		if err != nil {
			return nil, err
		}
		if x.Name == "" {
			return nil, bad("queues[%d]: name is empty", i)
		}
		args, err := amqpTable(x.Arguments)
		if err != nil {
			return nil, bad("queues[%d] '%s': arguments: %v", i, x.Name, err)
		}
		if err := broker.ValidateQueueArgs(vh, x.Name, args); err != nil {
			return nil, bad("queues[%d] '%s': %s", i, x.Name, reasonOf(err))
		}
		p.queues = append(p.queues, struct {
			vhost string
			decl  broker.QueueDecl
		}{vh, broker.QueueDecl{Name: x.Name,
			Durable: x.Durable, AutoDelete: x.AutoDelete, Args: args}})
	}
	for i, x := range d.Bindings {
		vh, err := vhostOf("bindings", i, x.VHost)
		if err != nil {
			return nil, err
		}
		if x.DestinationType != "queue" && x.DestinationType != "exchange" {
			return nil, bad("bindings[%d]: destination_type '%s', want queue or exchange", i, x.DestinationType)
		}
		args, err := amqpTable(x.Arguments)
		if err != nil {
			return nil, bad("bindings[%d]: arguments: %v", i, err)
		}
		p.bindings = append(p.bindings, struct {
			vhost      string
			toExchange bool
			bnd        broker.Binding
		}{vh, x.DestinationType == "exchange", broker.Binding{Source: x.Source, Destination: x.Destination, Key: x.RoutingKey, Args: args}})
	}
	return p, nil
}

// reasonOf is a broker error's reason (its text without the code).
func reasonOf(err error) string {
	var be *broker.Error
	if errors.As(err, &be) {
		return be.Reason
	}
	return err.Error()
}
