package httpapi

// Who may do what: basic auth against the broker's users, then RabbitMQ's
// rules. administrator may do everything; management may use the vhosts
// it has permissions on, within those permissions; monitoring may read
// every listing; a user without these tags may not use the API.

import (
	"errors"
	"net/http"
	"slices"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/broker"
)

// tagNeed is the tag a route needs.
type tagNeed uint8

const (
	needAny tagNeed = iota
	needMonitoringOrManagement
	needManagement
	needAdministrator
)

type user struct {
	name string
	tags []string
	b    *broker.Broker
}

func (u *user) has(tag string) bool { return slices.Contains(u.tags, tag) }

func (u *user) admin() bool { return u.has(broker.TagAdministrator) }

func (u *user) monitoring() bool { return u.admin() || u.has(broker.TagMonitoring) }

// may checks the route's tag requirement.
func (u *user) may(need tagNeed) bool {
	mgmt := u.admin() || u.has(broker.TagMonitoring) || u.has(broker.TagManagement) || u.has(broker.TagPolicymaker)
	switch need {
	case needAny:
		return true
	case needMonitoringOrManagement, needManagement:
		return mgmt
	case needAdministrator:
		return u.admin()
	}
	return false
}

func (s *Server) authenticate(r *http.Request) (*user, error) {
	name, password, ok := r.BasicAuth()
	if !ok {
		return nil, errors.New("basic auth required")
	}
	login := broker.Login{Door: "http", Remote: r.RemoteAddr, User: name, Password: password}
	if err := s.b.Authenticate(login); err != nil {
		return nil, err
	}
	info, err := s.b.User(name)
	if err != nil {
		return nil, err
	}
	return &user{name: name, tags: info.Tags, b: s.b}, nil
}

// The permission kinds, as the routes name them.
const (
	permConfigure = access.Configure
	permWrite     = access.Write
	permRead      = access.Read
)

// seesVHost reports whether u may see a vhost's objects: monitoring and
// administrator users see all, others those they have permissions on.
func (u *user) seesVHost(vhost string) bool {
	if u.monitoring() {
		return true
	}
	ok, err := u.b.Checker(vhost, u.name).HasVHost()
	return err == nil && ok
}

// checker is u's permission checker on vhost, the one its AMQP
// connections use; nil for an administrator, who holds every permission
// the API checks, as the operator of the dead letter workflow.
func (u *user) checker(vhost string) *access.Checker {
	if u.admin() {
		return nil
	}
	return u.b.Checker(vhost, u.name)
}

// check returns an AccessRefused error unless u holds permission kind on
// the resource named name in vhost, by the rules AMQP checks; the reason
// names the permission, which the API's users cannot look up in a log.
func (u *user) check(vhost string, kind access.Kind, resourceType, name string) error {
	err := u.checker(vhost).Check(kind, resourceType, name)
	var d *access.Denied
	if errors.As(err, &d) {
		return &broker.Error{Code: broker.AccessRefused, Reason: d.Reason + " (" + kind.String() + " permission)", Err: err}
	}
	return err
}

// queueAllowed answers 404 for a queue that does not exist and 403 when u
// lacks kind permission on it; it reports whether the request may go on.
func (s *Server) queueAllowed(w http.ResponseWriter, u *user, vh, name string, kind access.Kind) bool {
	if _, err := s.b.Queue(vh, name); err != nil {
		writeBrokerError(w, err)
		return false
	}
	if err := u.check(vh, kind, "queue", name); err != nil {
		writeBrokerError(w, err)
		return false
	}
	return true
}
