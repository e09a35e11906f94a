package broker

// Permission checks for client connections. The rules (which operation
// needs which permission, how expressions match) are package access's;
// the broker builds each connection's access.Checker over its stored
// permissions and asks it before every operation (the table is in
// access/permission.go).
//
// Connections opened with Broker.Connect are checked; sessions opened
// with a nil checker (AdminSession) are not. The user table's permission
// generation moves whenever a permission or a user changes, so checkers
// reload and a change applies to the next operation of open connections.

import (
	"errors"

	"github.com/sluicemq/sluice/internal/access"
)

// Permission is a user's access to one vhost (access.Permission), named
// here too because the broker stores it.
type Permission = access.Permission

// Checker returns the permission checker of user on vhost, the one both
// front doors use: amqpserver's connections through Connect, httpapi
// for its requests.
func (b *Broker) Checker(vhost, user string) *access.Checker {
	return access.NewChecker(user, vhost, &b.users.permGen, func() (Permission, bool, error) {
		p, err := b.Permission(vhost, user)
		if CodeOf(err) == NotFound {
			return Permission{}, false, nil
		}
		return p, err == nil, err
	})
}

// newConnAccess returns the checker of user on vhost, or NotAllowed when
// the user has no permission on the vhost.
func (b *Broker) newConnAccess(vhost, user string) (*access.Checker, error) {
	c := b.Checker(vhost, user)
	ok, err := c.HasVHost()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(NotAllowed, "%s", c.VHostDenied().Reason)
	}
	return c, nil
}

// accessError turns a checker's refusal into AccessRefused.
func accessError(err error) error {
	var d *access.Denied
	if errors.As(err, &d) {
		return &Error{Code: AccessRefused, Reason: d.Reason, Err: err}
	}
	return err
}

// allow checks one permission of the channel's connection.
func (ch *Channel) allow(kind access.Kind, resourceType, name string) error {
	return accessError(ch.conn.access.Check(kind, resourceType, name))
}

// allowQueueDeclare checks a queue.declare: configure on the queue, and
// with a dead-letter exchange, read on the queue and write on the DLX.
func (ch *Channel) allowQueueDeclare(d QueueDecl) error {
	if err := ch.allow(access.Configure, "queue", d.Name); err != nil {
		return err
	}
	if dlx, ok := d.Args["x-dead-letter-exchange"].(string); ok {
		if err := ch.allow(access.Read, "queue", d.Name); err != nil {
			return err
		}
		return ch.allow(access.Write, "exchange", dlx)
	}
	return nil
}

// allowExchangeDeclare checks an exchange.declare: configure on the
// exchange, and with an alternate exchange, read on the exchange and
// write on the AE.
func (ch *Channel) allowExchangeDeclare(d ExchangeDecl) error {
	if err := ch.allow(access.Configure, "exchange", d.Name); err != nil {
		return err
	}
	if ae, ok := d.Args["alternate-exchange"].(string); ok {
		if err := ch.allow(access.Read, "exchange", d.Name); err != nil {
			return err
		}
		return ch.allow(access.Write, "exchange", ae)
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
	if err := ch.allow(access.Write, dest, bnd.Destination); err != nil {
		return err
	}
	return ch.allow(access.Read, "exchange", bnd.Source)
}
