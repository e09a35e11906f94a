package access

// Permissions as RabbitMQ has them for AMQP 0-9-1: a user may open a
// connection to a vhost it has a permission record on, and each operation
// needs the configure, write or read permission on the resources it
// touches:
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
// The HTTP API asks the same questions of the same Checker for its
// routes. Each permission is a regular expression matched, unanchored as
// RabbitMQ's re:run, against the resource's name; the default exchange is
// named "amq.default" (whatever name a door spells it with) and an empty
// expression matches only "".

import (
	"fmt"
	"regexp"
	"sync/atomic"
)

// Kind is one of RabbitMQ's three permissions.
type Kind uint8

// The permissions.
const (
	Configure Kind = iota
	Write
	Read
)

func (k Kind) String() string {
	return [...]string{"configure", "write", "read"}[k]
}

// Permission is a user's access to one vhost: regular expressions over
// the resource names it may configure, write and read, as RabbitMQ's.
type Permission struct {
	User      string
	VHost     string
	Configure string
	Write     string
	Read      string
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

// compiled is a Permission ready to check.
type compiled [3]matcher // by Kind

// Compile checks that p's three expressions are regular expressions.
func Compile(p Permission) error {
	_, err := compile(p)
	return err
}

func compile(p Permission) (compiled, error) {
	var cp compiled
	for i, expr := range [...]string{p.Configure, p.Write, p.Read} {
		m, err := compileMatcher(expr)
		if err != nil {
			return compiled{}, fmt.Errorf("%s: %w", Kind(i), err)
		}
		cp[i] = m
	}
	return cp, nil
}

// Matches reports whether the permission expression expr grants access to
// the resource named name, by RabbitMQ's rules (unanchored; "" matches
// only ""). An expression that does not compile grants nothing.
func Matches(expr, name string) bool {
	m, err := compileMatcher(expr)
	return err == nil && m.match(name)
}

// Denied is a refused operation; its text is RabbitMQ's reason, and each
// front door maps it to 403 ACCESS_REFUSED (AMQP) or 403 (HTTP).
type Denied struct{ Reason string }

func (e *Denied) Error() string { return e.Reason }

// Loader reads a user's permission on a vhost; ok is false when the user
// has none there.
type Loader func() (p Permission, ok bool, err error)

// snapshot is what a Checker loaded, and when.
type snapshot struct {
	gen  uint64
	perm compiled
	ok   bool // the user has a permission record on the vhost
}

// Checker checks one user's operations on one vhost. It keeps the
// compiled permission it last loaded and reloads it when gen moved (the
// owner of the user table bumps it whenever a permission or a user
// changes), so a change applies to the next operation of open
// connections. A nil *Checker allows everything: the broker's own
// sessions and the API's administrators. Safe for concurrent use.
type Checker struct {
	user, vhost string
	gen         *atomic.Uint64
	load        Loader
	snap        atomic.Pointer[snapshot]
}

// NewChecker returns the checker of user on vhost.
func NewChecker(user, vhost string, gen *atomic.Uint64, load Loader) *Checker {
	return &Checker{user: user, vhost: vhost, gen: gen, load: load}
}

// User and VHost name what c checks.
func (c *Checker) User() string  { return c.user }
func (c *Checker) VHost() string { return c.vhost }

// current returns the snapshot, reloading it when permissions changed.
func (c *Checker) current() (*snapshot, error) {
	gen := c.gen.Load() // before loading: a change during the load bumps it again
	if s := c.snap.Load(); s != nil && s.gen == gen {
		return s, nil
	}
	p, ok, err := c.load()
	if err != nil {
		return nil, err
	}
	s := &snapshot{gen: gen, ok: ok}
	if ok {
		// Stored expressions were checked when they were set; one
		// that fails now grants nothing.
		s.perm, _ = compile(p)
	}
	c.snap.Store(s)
	return s, nil
}

// HasVHost reports whether the user holds a permission record on the
// vhost (what opening a connection to it needs).
func (c *Checker) HasVHost() (bool, error) {
	if c == nil {
		return true, nil
	}
	s, err := c.current()
	if err != nil {
		return false, err
	}
	return s.ok, nil
}

// VHostDenied is the refusal of a user without a permission record on
// the vhost.
func (c *Checker) VHostDenied() *Denied {
	return &Denied{Reason: fmt.Sprintf("access to vhost '%s' refused for user '%s'", c.vhost, c.user)}
}

// Check returns a *Denied unless the user holds kind on the resource of
// resourceType ("queue", "exchange") named name. The default exchange is
// checked as "amq.default", whether name spells it "" or so.
func (c *Checker) Check(kind Kind, resourceType, name string) error {
	if c == nil {
		return nil
	}
	s, err := c.current()
	if err != nil {
		return err
	}
	if !s.ok {
		return c.VHostDenied()
	}
	if resourceType == "exchange" && name == "" {
		name = "amq.default"
	}
	if s.perm[kind].match(name) {
		return nil
	}
	return &Denied{Reason: fmt.Sprintf("access to %s '%s' in vhost '%s' refused for user '%s'", resourceType, name, c.vhost, c.user)}
}
