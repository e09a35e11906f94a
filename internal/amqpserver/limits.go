package amqpserver

import "github.com/sluicemq/sluice/internal/amqp"

// countOpen takes one of Config.MaxConnections for a connection at
// connection.open, or refuses it with 530 NOT_ALLOWED as RabbitMQ refuses a
// connection over its node limit. Per-user and per-vhost limits are the
// broker's (broker.Connect).
func (c *conn) countOpen() error {
	max := c.srv.cfg.MaxConnections
	n := c.srv.openConns.Add(1)
	c.counted = true
	if max > 0 && n > int64(max) {
		c.srv.openConns.Add(-1)
		c.counted = false
		if onceASecond(&c.srv.refuseWarned) {
			c.log.Warn("amqp connection refused: the connection limit is reached", "max_connections", max)
		}
		e := newError(amqp.NotAllowed, nil, "connection refused: node connection limit (%d) is reached", max)
		e.connection = true
		return e
	}
	return nil
}
