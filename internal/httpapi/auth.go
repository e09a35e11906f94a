package httpapi

// Who may do what: basic auth against the broker's users, then RabbitMQ's
// rules. administrator may do everything; management may use the vhosts
// it has permissions on, within those permissions; monitoring may read
// every listing; a user without these tags may not use the API.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/sluicemq/sluice/internal/broker"
)

// access is the tag a route needs.
type access uint8

const (
	needAny access = iota
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
func (u *user) may(need access) bool {
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
	if err := s.b.Authenticate(name, password, isLoopback(r.RemoteAddr)); err != nil {
		return nil, err
	}
	info, err := s.b.User(name)
	if err != nil {
		return nil, err
	}
	return &user{name: name, tags: info.Tags, b: s.b}, nil
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// permKind is one of RabbitMQ's three permissions.
type permKind uint8

const (
	permConfigure permKind = iota
	permWrite
	permRead
)

func (k permKind) String() string {
	return [...]string{"configure", "write", "read"}[k]
}

// seesVHost reports whether u may see a vhost's objects: monitoring and
// administrator users see all, others those they have permissions on.
func (u *user) seesVHost(vhost string) bool {
	if u.monitoring() {
		return true
	}
	_, err := u.b.Permission(vhost, u.name)
	return err == nil
}

// check returns an AccessRefused error unless u holds permission kind on
// the resource named name in vhost. Administrators hold every permission
// the API checks, as the operators of the dead letter workflow.
func (u *user) check(vhost string, kind permKind, resourceType, name string) error {
	if u.admin() {
		return nil
	}
	p, err := u.b.Permission(vhost, u.name)
	if err != nil {
		return &broker.Error{Code: broker.AccessRefused,
			Reason: fmt.Sprintf("access to vhost '%s' refused for user '%s'", vhost, u.name)}
	}
	// RabbitMQ's matching, as AMQP checks it: unanchored, "" matches "".
	if broker.PermissionMatches([...]string{p.Configure, p.Write, p.Read}[kind], name) {
		return nil
	}
	return &broker.Error{Code: broker.AccessRefused,
		Reason: fmt.Sprintf("access to %s '%s' in vhost '%s' refused for user '%s' (%s permission)", resourceType, name, vhost, u.name, kind)}
}

// queueAllowed answers 404 for a queue that does not exist and 403 when u
// lacks kind permission on it; it reports whether the request may go on.
func (s *Server) queueAllowed(w http.ResponseWriter, u *user, vh, name string, kind permKind) bool {
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
