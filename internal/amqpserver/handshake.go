package amqpserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
)

// serverProperties are connection.start's server-properties, with the
// capabilities RabbitMQ clients look for.
func (c *conn) serverProperties() message.Table {
	cfg := c.srv.cfg
	return message.Table{
		"product":      cfg.Product,
		"version":      cfg.Version,
		"platform":     "Go " + runtime.Version(),
		"copyright":    "Copyright the Sluice authors",
		"information":  "Licensed under the Apache License 2.0",
		"cluster_name": cfg.ClusterName,
		"capabilities": message.Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"authentication_failure_close": true,
			"per_consumer_qos":             true,
			"direct_reply_to":              true,
		},
	}
}

// handshake handles a channel-0 method before connection.open-ok.
func (c *conn) handshake(m amqp.Method) error {
	switch c.state {
	case awaitStartOk:
		so, ok := m.(*amqp.ConnectionStartOk)
		if !ok {
			return newError(amqp.CommandInvalid, m, "expected 'connection.start_ok', got '%s'", m.Name())
		}
		return c.startOk(so)
	case awaitTuneOk:
		to, ok := m.(*amqp.ConnectionTuneOk)
		if !ok {
			return newError(amqp.CommandInvalid, m, "expected 'connection.tune_ok', got '%s'", m.Name())
		}
		return c.tuneOk(to)
	default:
		if cl, ok := m.(*amqp.ConnectionClose); ok {
			return c.connectionMethod(cl)
		}
		op, ok := m.(*amqp.ConnectionOpen)
		if !ok {
			return newError(amqp.CommandInvalid, m, "expected 'connection.open', got '%s'", m.Name())
		}
		return c.open(op)
	}
}

func (c *conn) startOk(m *amqp.ConnectionStartOk) error {
	c.clientProp = m.ClientProperties
	var failureClose bool
	if caps, ok := m.ClientProperties["capabilities"].(message.Table); ok {
		c.cancelNotify, _ = caps["consumer_cancel_notify"].(bool)
		c.blockedNotify, _ = caps["connection.blocked"].(bool)
		failureClose, _ = caps["authentication_failure_close"].(bool)
	}
	var (
		user, pass string
		err        error
	)
	switch m.Mechanism {
	case "PLAIN":
		user, pass, err = parsePlain(m.Response)
	case "AMQPLAIN":
		user, pass, err = parseAMQPlain(m.Response)
	case "EXTERNAL":
		return c.startOkExternal(failureClose)
	default:
		return newError(amqp.CommandInvalid, m, "unknown authentication mechanism '%s'", m.Mechanism)
	}
	if err != nil {
		return newError(amqp.AccessRefused, m, "%s", err)
	}
	login := broker.Login{Door: "amqp", Remote: c.nc.RemoteAddr().String(), User: user, Password: pass}
	if err := c.srv.broker.Authenticate(login); err != nil {
		return c.loginRefused(user, m.Mechanism, failureClose, err)
	}
	c.loggedIn(user)
	return nil
}

// loginRefused answers a failed login. The broker logs failed logins,
// gathered per source; this line is for debugging one connection.
func (c *conn) loginRefused(user, mechanism string, failureClose bool, err error) error {
	c.log.Debug("amqp login refused", logUser, user, "mechanism", mechanism, logErr, err)
	if !failureClose {
		// As RabbitMQ: a client without the
		// authentication_failure_close capability expects the
		// socket to close, without connection.close (0-9-1's rule).
		c.done = true
		return nil
	}
	e := newError(amqp.AccessRefused, nil, // as RabbitMQ: no method named
		"Login was refused using authentication mechanism %s. For details see the broker logfile.", mechanism)
	e.connection = true
	return e
}

// loggedIn moves on to connection.tune once user has logged in.
func (c *conn) loggedIn(user string) {
	c.user = user
	cfg := c.srv.cfg
	c.wr.method(0, &amqp.ConnectionTune{
		ChannelMax: cfg.ChannelMax,
		FrameMax:   cfg.FrameMax,
		Heartbeat:  uint16(cfg.Heartbeat / time.Second),
	})
	c.state = awaitTuneOk
}

func (c *conn) tuneOk(m *amqp.ConnectionTuneOk) error {
	cfg := c.srv.cfg
	switch {
	case m.FrameMax != 0 && m.FrameMax < amqp.FrameMinSize:
		return newError(amqp.NotAllowed, m, "frame_max=%d < %d min size", m.FrameMax, amqp.FrameMinSize)
	case m.FrameMax > cfg.FrameMax || m.FrameMax == 0 && cfg.FrameMax != 0:
		return newError(amqp.NotAllowed, m, "frame_max=%d > %d max size", m.FrameMax, cfg.FrameMax)
	case m.ChannelMax > cfg.ChannelMax:
		return newError(amqp.NotAllowed, m, "negotiated channel_max = %d is higher than the maximum allowed value (%d)", m.ChannelMax, cfg.ChannelMax)
	}
	c.frameMax = m.FrameMax
	c.channelMax = m.ChannelMax
	if c.channelMax == 0 {
		c.channelMax = cfg.ChannelMax
	}
	c.heartbeat = time.Duration(m.Heartbeat) * time.Second
	c.r.SetMaxFrameSize(maxFrameSize(c.frameMax))
	c.wr.frameMax.Store(c.frameMax)
	c.wr.setHeartbeat(c.heartbeat)
	c.state = awaitOpen
	return nil
}

func (c *conn) open(m *amqp.ConnectionOpen) error {
	if err := c.countOpen(); err != nil { // limits.go
		return err
	}
	bc, err := c.srv.broker.Connect(broker.ConnInfo{
		Name:             c.name,
		User:             c.user,
		VHost:            m.VirtualHost,
		RemoteAddr:       c.nc.RemoteAddr().String(),
		ClientProperties: c.clientProp,
	})
	if err != nil {
		e := fromBroker(err, m)
		e.connection = true
		return e
	}
	c.bconn = bc
	c.wr.setOnFull(bc.SetOutputFull)
	c.vhost = m.VirtualHost
	c.state = opened
	c.log = c.log.With(logUser, c.user, logVHost, c.vhost)
	c.nc.SetReadDeadline(time.Time{})
	c.wr.method(0, &amqp.ConnectionOpenOk{})
	c.log.Info("amqp connection opened", "heartbeat", c.heartbeat, "frame_max", c.frameMax, "channel_max", c.channelMax)

	reason, _ := c.srv.blockState()
	c.mu.Lock()
	c.isOpen = true
	c.mu.Unlock()
	if reason != "" {
		c.notifyBlocked(reason)
	}
	return nil
}

// parsePlain reads a SASL PLAIN response: [authzid] NUL authcid NUL passwd.
func parsePlain(resp string) (user, pass string, err error) {
	parts := bytes.Split([]byte(resp), []byte{0})
	if len(parts) != 3 {
		return "", "", errors.New("malformed PLAIN response")
	}
	return string(parts[1]), string(parts[2]), nil
}

// parseAMQPlain reads an AMQPLAIN response: a field table without its
// length prefix, holding LOGIN and PASSWORD.
func parseAMQPlain(resp string) (user, pass string, err error) {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(resp)))
	b = append(b, resp...)
	t, _, err := message.ReadTable(b)
	if err != nil {
		return "", "", fmt.Errorf("malformed AMQPLAIN response: %v", err)
	}
	user, ok1 := t["LOGIN"].(string)
	pass, ok2 := t["PASSWORD"].(string)
	if !ok1 || !ok2 {
		return "", "", errors.New("AMQPLAIN response lacks LOGIN or PASSWORD")
	}
	return user, pass, nil
}
