package broker

// Permission checks for client connections, as RabbitMQ makes them for
// AMQP 0-9-1: a user may open a connection to a vhost it has a permission
// record on, and each operation needs the configure, write or read
// permission on the resources it touches:
//
//	queue.declare (not passive)    configure on the queue
//	  with x-dead-letter-exchange  and read on the queue, write on the DLX
//	queue.delete                   configure on the queue
//	queue.purge                    read on the queue
//	queue.bind, queue.unbind       write on the queue, read on the exchange
//	exchange.declare (not passive) configure on the exchange
//	  with alternate-exchange      and read on it, write on the AE
//	exchange.delete                configure on the exchange
//	exchange.bind, exchange.unbind write on the destination, read on the source
//	basic.publish                  write on the exchange
//	basic.consume, basic.get       read on the queue
//
// Each permission is a regular expression matched, unanchored as
// RabbitMQ's re:run, against the resource's name; the default exchange is
// named "amq.default" and an empty expression matches only "".
//
// Connections opened with Broker.Connect are checked; admin sessions
// (AdminSession) are not: the HTTP API checks its users itself. A
// connection keeps the compiled permission it last loaded and reloads it
// when the user table's permission generation moved (a permission or a
// user was changed or deleted), so a change applies to the next
// operation of open connections.

import (
	"fmt"
	"regexp"
	"sync/atomic"
)

// PermissionKind is one of RabbitMQ's three permissions.
type PermissionKind uint8

// The permissions.
const (
	PermConfigure PermissionKind = iota
	PermWrite
	PermRead
)

func (k PermissionKind) String() string {
	return [...]string{"configure", "write", "read"}[k]
}

// matcher is one compiled permission expression.
type matcher struct {
	all bool // ".*": skip the regexp
	re  *regexp.Regexp
}

func compileMatcher(expr string) (matcher, error) {
	switch expr {
	case ".*", "^.*", "^.*$", ".*$":
		return matcher{all: true}, nil
	case "":
		expr = "^$"
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return matcher{}, err
	}
	return matcher{re: re}, nil
}

func (m matcher) match(name string) bool { return m.all || (m.re != nil && m.re.MatchString(name)) }

// compiledPerm is a Permission ready to check.
type compiledPerm [3]matcher // by PermissionKind

func compilePermission(p Permission) (compiledPerm, error) {
	var cp compiledPerm
	for i, expr := range [...]string{p.Configure, p.Write, p.Read} {
		m, err := compileMatcher(expr)
		if err != nil {
			return compiledPerm{}, fmt.Errorf("%s: %w", PermissionKind(i), err)
		}
		cp[i] = m
	}
	return cp, nil
}

// PermissionMatches reports whether the permission expression expr (as
// stored in a Permission) grants access to the resource named name, by
// RabbitMQ's rules (unanchored; "" matches only ""). An expression that
// does not compile grants nothing.
func PermissionMatches(expr, name string) bool {
	m, err := compileMatcher(expr)
	return err == nil && m.match(name)
}

// permSnapshot is what a connection loaded, and when.
type permSnapshot struct {
	gen  uint64
	perm compiledPerm
	ok   bool // the user has a permission record on the vhost
}

// connAccess checks a connection's operations against its user's
// permission on its vhost. Safe for concurrent use.
type connAccess struct {
	user, vhost string
	gen         *atomic.Uint64 // the user table's permission generation
	load        func() (Permission, error)
	snap        atomic.Pointer[permSnapshot]
}

// newConnAccess returns the checker of user on vhost, or NotAllowed when
// the user has no permission on the vhost.
func (b *Broker) newConnAccess(vhost, user string) (*connAccess, error) {
	a := &connAccess{user: user, vhost: vhost, gen: &b.users.permGen,
		load: func() (Permission, error) { return b.Permission(vhost, user) }}
	s, err := a.current()
	if err != nil {
		return nil, err
	}
	if !s.ok {
		return nil, errorf(NotAllowed, "access to vhost '%s' refused for user '%s'", vhost, user)
	}
	return a, nil
}

// current returns the snapshot, reloading it when permissions changed.
func (a *connAccess) current() (*permSnapshot, error) {
	gen := a.gen.Load() // before loading: a change during the load bumps it again
	if s := a.snap.Load(); s != nil && s.gen == gen {
		return s, nil
	}
	s := &permSnapshot{gen: gen}
	p, err := a.load()
	switch {
	case CodeOf(err) == NotFound:
	case err != nil:
		return nil, err
	default:
		// Stored expressions were checked by SetPermission; one that
		// fails now grants nothing.
		s.perm, _ = compilePermission(p)
		s.ok = true
	}
	a.snap.Store(s)
	return s, nil
}

// check returns AccessRefused unless the user holds kind on the resource.
func (a *connAccess) check(kind PermissionKind, resourceType, name string) error {
	if a == nil {
		return nil
	}
	s, err := a.current()
	if err != nil {
		return err
	}
	if !s.ok {
		return errorf(AccessRefused, "access to vhost '%s' refused for user '%s'", a.vhost, a.user)
	}
	if resourceType == "exchange" && name == "" {
		name = "amq.default"
	}
	if s.perm[kind].match(name) {
		return nil
	}
	return errorf(AccessRefused, "access to %s '%s' in vhost '%s' refused for user '%s'", resourceType, name, a.vhost, a.user)
}

// allow checks one permission of the channel's connection.
func (ch *Channel) allow(kind PermissionKind, resourceType, name string) error {
	return ch.conn.access.check(kind, resourceType, name)
}

// allowQueueDeclare checks a queue.declare: configure on the queue, and
// with a dead-letter exchange, read on the queue and write on the DLX.
func (ch *Channel) allowQueueDeclare(d QueueDecl) error {
	if err := ch.allow(PermConfigure, "queue", d.Name); err != nil {
		return err
	}
	if dlx, ok := d.Args["x-dead-letter-exchange"].(string); ok {
		if err := ch.allow(PermRead, "queue", d.Name); err != nil {
			return err
		}
		return ch.allow(PermWrite, "exchange", dlx)
	}
	return nil
}

// allowExchangeDeclare checks an exchange.declare: configure on the
// exchange, and with an alternate exchange, read on the exchange and
// write on the AE.
func (ch *Channel) allowExchangeDeclare(d ExchangeDecl) error {
	if err := ch.allow(PermConfigure, "exchange", d.Name); err != nil {
		return err
	}
	if ae, ok := d.Args["alternate-exchange"].(string); ok {
		if err := ch.allow(PermRead, "exchange", d.Name); err != nil {
			return err
		}
		return ch.allow(PermWrite, "exchange", ae)
	}
	return nil
}

// allowBind checks a (un)bind: write on the destination, read on the
// source.
func (ch *Channel) allowBind(bnd Binding, toExchange bool) error {
	dest := "queue"
	if toExchange {
		dest = "exchange"
	}
	if err := ch.allow(PermWrite, dest, bnd.Destination); err != nil {
		return err
	}
	return ch.allow(PermRead, "exchange", bnd.Source)
}
