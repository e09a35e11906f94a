package httpapi

// Messages: publish and get (RabbitMQ's), purge, and Sluice's browse,
// read, edit and delete of single messages, each recorded in the audit log
// when it changes a queue.

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/dlq"
	"github.com/sluicemq/sluice/internal/message"
)

func (s *Server) publish(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	x := exchangeName(r, "name")
	// Authorised before the body is read (guard.go).
	if _, err := s.b.Exchange(vh, x); err != nil {
		writeBrokerError(w, err)
		return
	}
	if err := u.check(vh, permWrite, "exchange", x); err != nil {
		writeBrokerError(w, err)
		return
	}
	var p api.Publish
	if !decodeBody(w, r, &p) {
		return
	}
	if err := broker.CheckRoutingKey(p.RoutingKey); err != nil {
		writeBrokerError(w, err)
		return
	}
	body, err := decodePayload(p.Payload, p.PayloadEncoding)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if int64(len(body)) > s.cfg.MaxMessageSize {
		writeError(w, http.StatusRequestEntityTooLarge, "bad_request",
			fmt.Sprintf("payload of %d bytes; the largest message is %d bytes (--max-message-size)", len(body), s.cfg.MaxMessageSize))
		return
	}
	props, err := amqpProperties(p.Properties, nil)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if p.Delay < 0 {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("delay: %d, want a non-negative number of ms", p.Delay))
		return
	}
	if p.Delay > 0 {
		if props.Headers == nil {
			props.Headers = message.Table{}
		}
		props.Headers["x-delay"] = p.Delay
		props.Flags |= message.FlagHeaders
	}
	msg := &message.Message{Exchange: x, RoutingKey: p.RoutingKey, Properties: props, Body: body}
	var routed bool
	err = s.session(vh, u, func(ch *broker.Channel) error {
		done := make(chan error, 1)
		var err error
		routed, err = ch.Publish(msg, false, func(err error) { done <- err })
		if err != nil {
			return err
		}
		return <-done
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Published{Routed: routed})
}

func (s *Server) getMessages(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	if !s.queueAllowed(w, u, vh, name, permRead) { // before the body is read
		return
	}
	var g api.Get
	if !decodeBody(w, r, &g) {
		return
	}
	if g.Count < 1 {
		g.Count = 1
	}
	var settle func(ch *broker.Channel, tag uint64) error
	switch g.AckMode {
	case "ack_requeue_false":
		settle = func(ch *broker.Channel, tag uint64) error { return ch.Ack(tag, false) }
	case "ack_requeue_true", "reject_requeue_true", "":
		settle = func(ch *broker.Channel, tag uint64) error { return ch.Nack(tag, false, true) }
	case "reject_requeue_false":
		settle = func(ch *broker.Channel, tag uint64) error { return ch.Nack(tag, false, false) }
	default:
		writeError(w, http.StatusBadRequest, "bad_request",
			fmt.Sprintf("ackmode: %q, want ack_requeue_true, ack_requeue_false, reject_requeue_true or reject_requeue_false", g.AckMode))
		return
	}
	if g.Encoding != "" && g.Encoding != "auto" && g.Encoding != "base64" {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("encoding: %q, want auto or base64", g.Encoding))
		return
	}
	out := []api.GotMessage{}
	err := s.session(vh, u, func(ch *broker.Channel) error {
		var tags []uint64
		for range g.Count {
			d, err := ch.Get(name, false)
			if err != nil {
				return err
			}
			if d == nil {
				break
			}
			tags = append(tags, d.DeliveryTag)
			body := d.Body
			if g.Truncate > 0 && len(body) > g.Truncate {
				body = body[:g.Truncate]
			}
			props, err := d.Props()
			if err != nil {
				return err
			}
			m := api.GotMessage{PayloadBytes: len(d.Body), Redelivered: d.Redelivered, Exchange: d.Exchange,
				RoutingKey: d.RoutingKey, MessageCount: int(d.MessageCount), Properties: apiProperties(props)}
			m.Payload, m.PayloadEncoding = payload(body, g.Encoding == "base64")
			out = append(out, m)
		}
		for _, t := range tags {
			if err := settle(ch, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	if g.AckMode == "ack_requeue_false" || g.AckMode == "reject_requeue_false" {
		s.audit1(u, "get", vh, name, fmt.Sprintf("ackmode %s", g.AckMode), nil, len(out))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) purgeQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	if !s.queueAllowed(w, u, vh, name, permRead) {
		return
	}
	n, err := s.b.PurgeQueue(vh, name)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	s.audit1(u, "purge", vh, name, "", nil, n)
	writeJSON(w, http.StatusOK, api.Purged{MessageCount: n})
}

// queueForMessages resolves {vhost}/{name} and checks read permission.
func (s *Server) queueForMessages(w http.ResponseWriter, r *http.Request, u *user, kind access.Kind) (string, string, bool) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return "", "", false
	}
	name := pathValue(r, "name")
	if !s.queueAllowed(w, u, vh, name, kind) {
		return "", "", false
	}
	return vh, name, true
}

func (s *Server) browse(w http.ResponseWriter, r *http.Request, u *user) {
	vh, name, ok := s.queueForMessages(w, r, u, permRead)
	if !ok {
		return
	}
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("after: %q is not a message id", v))
			return
		}
		after = n
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit: %q, want 1..10000", v))
			return
		}
		limit = n
	}
	f, err := dlq.ParseFilter(api.Filter{Reason: q.Get("reason"), Source: q.Get("source"), Header: q.Get("header"),
		Body: q.Get("body"), Since: q.Get("since"), Until: q.Get("until")})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	// The state is filtered here, not in the console, so a page of a
	// million-message queue still holds the unacked or delayed ones.
	switch st := q.Get("state"); st {
	case "", broker.StateReady, broker.StateUnacked, broker.StateDelayed:
		f.State = st
	default:
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("state: %q, want ready, unacked or delayed", st))
		return
	}
	page, err := s.dlq.Browse(vh, name, after, limit, f)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := api.MessagePage{Messages: []api.Message{}, Next: page.Next, More: page.More}
	b64 := q.Get("encoding") == "base64"
	for _, m := range page.Messages {
		out.Messages = append(out.Messages, apiMessage(m, b64))
	}
	writeJSON(w, http.StatusOK, out)
}

func messageID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	v := pathValue(r, "id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("message id %q is not a number", v))
		return 0, false
	}
	return id, true
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request, u *user) {
	vh, name, ok := s.queueForMessages(w, r, u, permRead)
	if !ok {
		return
	}
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	m, err := s.dlq.Message(vh, name, id)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiMessage(m, r.URL.Query().Get("encoding") == "base64"))
}

func (s *Server) putMessage(w http.ResponseWriter, r *http.Request, u *user) {
	vh, name, ok := s.queueForMessages(w, r, u, permWrite)
	if !ok {
		return
	}
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	var e api.MessageEdit
	if !decodeBody(w, r, &e) {
		return
	}
	got, err := s.dlq.Replace(u, vh, name, id, func(cur *message.Message) (*message.Message, []string, error) {
		return editedMessage(cur, e)
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiMessage(got, false))
}

// editedMessage applies the edit e to a copy of cur and names what it
// changed; an edit that is malformed or changes nothing is InvalidArgument.
func editedMessage(cur *message.Message, e api.MessageEdit) (*message.Message, []string, error) {
	bad := func(reason string) (*message.Message, []string, error) {
		return nil, nil, &broker.Error{Code: broker.InvalidArgument, Reason: reason}
	}
	m := *cur
	var changed []string
	if e.Payload != nil {
		body, err := decodePayload(*e.Payload, e.PayloadEncoding)
		if err != nil {
			return bad(err.Error())
		}
		m.Body = body
		changed = append(changed, "payload")
	}
	if e.Properties != nil {
		props, err := amqpProperties(*e.Properties, cur.Properties.Headers)
		if err != nil {
			return bad(err.Error())
		}
		m.Properties = props
		changed = append(changed, "properties")
	}
	if e.RoutingKey != nil {
		m.RoutingKey = *e.RoutingKey
		changed = append(changed, "routing_key")
	}
	if len(changed) == 0 {
		return bad("nothing to change: give payload, properties or routing_key")
	}
	return &m, changed, nil
}

func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request, u *user) {
	vh, name, ok := s.queueForMessages(w, r, u, permWrite)
	if !ok {
		return
	}
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	if err := s.dlq.Delete(u, vh, name, id); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// audit1 records an operator action; a failure to record is logged (the
// action already happened).
func (s *Server) audit1(u *user, action, vh, queue, detail string, ids []uint64, n int) {
	if _, err := s.auditLog.Record(access.NewAuditEntry(u.name, action, vh, queue, detail, ids, n)); err != nil {
		s.log.Error("record audit entry", "action", action, "queue", queue, "err", err)
	}
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit: %q, want a positive number", v))
			return
		}
		limit = n
	}
	es, err := s.auditLog.Entries(q.Get("after"), limit)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.AuditEntry{}
	for _, e := range es {
		if !u.seesVHost(e.VHost) {
			continue
		}
		out = append(out, api.AuditEntry{ID: e.ID, Time: e.Time.In(time.UTC), User: e.User, Action: e.Action,
			VHost: e.VHost, Queue: e.Queue, Detail: e.Detail, IDs: e.IDs, Count: e.Count})
	}
	writeJSON(w, http.StatusOK, out)
}
