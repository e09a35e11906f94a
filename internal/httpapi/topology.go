package httpapi

// RabbitMQ-compatible resources: overview, vhosts, queues, exchanges,
// bindings, connections, channels, consumers.

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

func (s *Server) overview(w http.ResponseWriter, r *http.Request, u *user) {
	o := api.Overview{ManagementVersion: "3.13.0", RabbitMQVersion: "3.13.0", ProductName: "Sluice",
		ProductVersion: s.cfg.Version, ClusterName: s.cfg.ClusterName, Node: s.cfg.NodeName}
	qs, _ := s.b.Queues("")
	for _, q := range qs {
		if !u.seesVHost(q.VHost) {
			continue
		}
		o.QueueTotals.Messages += q.Messages()
		o.QueueTotals.MessagesReady += q.Ready
		o.QueueTotals.MessagesUnacknowledged += q.Unacked
		o.QueueTotals.MessagesDelayed += q.Delayed
		o.ObjectTotals.Queues++
		o.ObjectTotals.Consumers += q.Consumers
	}
	xs, _ := s.b.Exchanges("")
	for _, x := range xs {
		if u.seesVHost(x.VHost) {
			o.ObjectTotals.Exchanges++
		}
	}
	for _, c := range s.connections(u) {
		o.ObjectTotals.Connections++
		o.ObjectTotals.Channels += len(c.ChannelInfos())
	}
	o.MessageStats = s.rates.overviewStats()
	o.Listeners = s.listeners()
	o.Alarms = s.alarms()
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, u *user) {
	writeJSON(w, http.StatusOK, api.Whoami{Name: u.name, Tags: u.tags})
}

func (s *Server) vhostInfo(name string) api.VHost {
	v := api.VHost{Name: name}
	qs, _ := s.b.Queues(name)
	for _, q := range qs {
		v.Messages += q.Messages()
		v.MessagesReady += q.Ready
		v.MessagesUnacknowledged += q.Unacked
		v.MessagesDelayed += q.Delayed
	}
	v.MessageStats = s.rates.vhostStats(qs)
	return v
}

func (s *Server) vhosts(w http.ResponseWriter, r *http.Request, u *user) {
	out := []api.VHost{}
	for _, n := range s.b.VHosts() {
		if u.seesVHost(n) {
			out = append(out, s.vhostInfo(n))
		}
	}
	writeListing(w, r, out)
}

func (s *Server) vhost(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "vhost")
	if !s.b.HasVHost(name) || !u.seesVHost(name) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no vhost '%s'", name))
		return
	}
	writeJSON(w, http.StatusOK, s.vhostInfo(name))
}

// vhostParam returns the {vhost} of the path ("" when absent), answering
// 404 for a vhost that does not exist or that u may not see.
func (s *Server) vhostParam(w http.ResponseWriter, r *http.Request, u *user) (string, bool) {
	vh := pathValue(r, "vhost")
	if vh == "" && r.Pattern != "" && !containsVHost(r.Pattern) {
		return "", true
	}
	if !s.b.HasVHost(vh) || !u.seesVHost(vh) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no vhost '%s'", vh))
		return "", false
	}
	return vh, true
}

func containsVHost(pattern string) bool {
	for i := 0; i+7 <= len(pattern); i++ {
		if pattern[i:i+7] == "{vhost}" {
			return true
		}
	}
	return false
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	qs, err := s.b.Queues(vh)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.Queue{}
	for _, q := range qs {
		if u.seesVHost(q.VHost) {
			out = append(out, s.apiQueue(q))
		}
	}
	writeListing(w, r, out)
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	q, err := s.b.Queue(vh, pathValue(r, "name"))
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.apiQueue(q))
}

// session opens an admin session for u on vh and calls fn with its
// channel, closing it afterwards.
func (s *Server) session(vh string, u *user, fn func(ch *broker.Channel) error) error {
	conn, ch, err := s.b.UserSession(vh, u.name, u.checker(vh))
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(ch)
}

func (s *Server) putQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	if err := u.check(vh, permConfigure, "queue", name); err != nil { // before the body is read
		writeBrokerError(w, err)
		return
	}
	var d api.QueueDeclare
	if !decodeBody(w, r, &d) {
		return
	}
	args, err := amqpTable(d.Arguments)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "arguments: "+err.Error())
		return
	}
	durable := d.Durable == nil || *d.Durable
	_, exists := s.b.Queue(vh, name)
	err = s.session(vh, u, func(ch *broker.Channel) error {
		_, err := ch.DeclareQueue(broker.QueueDecl{Name: name, Durable: durable, AutoDelete: d.AutoDelete, Args: args})
		return err
	})
	answerDeclare(w, err, exists == nil)
}

func (s *Server) deleteQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	if !s.queueAllowed(w, u, vh, name, permConfigure) {
		return
	}
	q := r.URL.Query()
	ifEmpty, ifUnused := q.Get("if-empty") == "true", q.Get("if-unused") == "true"
	err := s.session(vh, u, func(ch *broker.Channel) error {
		_, err := ch.DeleteQueue(name, ifUnused, ifEmpty)
		return err
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listExchanges(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	xs, err := s.b.Exchanges(vh)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.Exchange{}
	for _, x := range xs {
		if u.seesVHost(x.VHost) {
			out = append(out, s.apiExchange(x))
		}
	}
	writeListing(w, r, out)
}

// exchangeName maps RabbitMQ's name of the default exchange in URLs.
func exchangeName(r *http.Request, key string) string {
	n := pathValue(r, key)
	if n == "amq.default" {
		return ""
	}
	return n
}

func (s *Server) getExchange(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	x, err := s.b.Exchange(vh, exchangeName(r, "name"))
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.apiExchange(x))
}

func (s *Server) putExchange(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := exchangeName(r, "name")
	if err := u.check(vh, permConfigure, "exchange", name); err != nil { // before the body is read
		writeBrokerError(w, err)
		return
	}
	var d api.ExchangeDeclare
	if !decodeBody(w, r, &d) {
		return
	}
	if d.Type == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "type: missing; want direct, fanout, topic or headers")
		return
	}
	args, err := amqpTable(d.Arguments)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "arguments: "+err.Error())
		return
	}
	_, exists := s.b.Exchange(vh, name)
	durable := d.Durable == nil || *d.Durable
	err = s.session(vh, u, func(ch *broker.Channel) error {
		return ch.DeclareExchange(broker.ExchangeDecl{Name: name, Type: d.Type, Durable: durable,
			AutoDelete: d.AutoDelete, Internal: d.Internal, Args: args})
	})
	answerDeclare(w, err, exists == nil)
}

func (s *Server) deleteExchange(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := exchangeName(r, "name")
	if _, err := s.b.Exchange(vh, name); err != nil {
		writeBrokerError(w, err)
		return
	}
	if err := u.check(vh, permConfigure, "exchange", name); err != nil {
		writeBrokerError(w, err)
		return
	}
	ifUnused := r.URL.Query().Get("if-unused") == "true"
	if err := s.session(vh, u, func(ch *broker.Channel) error { return ch.DeleteExchange(name, ifUnused) }); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) bindings(vh string, u *user, keep func(broker.BindingInfo) bool) ([]api.Binding, error) {
	bs, err := s.b.Bindings(vh)
	if err != nil {
		return nil, err
	}
	out := []api.Binding{}
	for _, b := range bs {
		if u.seesVHost(b.VHost) && (keep == nil || keep(b)) {
			out = append(out, apiBinding(b))
		}
	}
	return out, nil
}

// writeBindings answers with the bindings of vh that keep accepts.
func (s *Server) writeBindings(w http.ResponseWriter, r *http.Request, u *user, vh string, keep func(broker.BindingInfo) bool) {
	out, err := s.bindings(vh, u, keep)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeListing(w, r, out)
}

func (s *Server) listBindings(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	s.writeBindings(w, r, u, vh, nil)
}

func (s *Server) queueBindings(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	name := pathValue(r, "name")
	if _, err := s.b.Queue(vh, name); err != nil {
		writeBrokerError(w, err)
		return
	}
	s.writeBindings(w, r, u, vh, func(b broker.BindingInfo) bool {
		return b.DestinationType == "queue" && b.Destination == name
	})
}

func (s *Server) listQueueBindings(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	x := exchangeName(r, "exchange")
	q, kind := bindingDest(r)
	if _, err := s.b.Exchange(vh, x); err != nil {
		writeBrokerError(w, err)
		return
	}
	if err := s.destExists(vh, q, kind); err != nil {
		writeBrokerError(w, err)
		return
	}
	s.writeBindings(w, r, u, vh, func(b broker.BindingInfo) bool {
		return b.Source == x && b.DestinationType == kind && b.Destination == q
	})
}

func (s *Server) bindQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	x := exchangeName(r, "exchange")
	q, kind := bindingDest(r)
	// Authorised before the body is read.
	if _, err := s.b.Exchange(vh, x); err != nil {
		writeBrokerError(w, err)
		return
	}
	if err := s.destExists(vh, q, kind); err != nil {
		writeBrokerError(w, err)
		return
	}
	for _, c := range []error{u.check(vh, permWrite, kind, q), u.check(vh, permRead, "exchange", x)} {
		if c != nil {
			writeBrokerError(w, c)
			return
		}
	}
	var d api.BindingCreate
	if !decodeBody(w, r, &d) {
		return
	}
	args, err := amqpTable(d.Arguments)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "arguments: "+err.Error())
		return
	}
	err = s.session(vh, u, func(ch *broker.Channel) error {
		bnd := broker.Binding{Source: x, Destination: q, Key: d.RoutingKey, Args: args}
		if kind == "exchange" {
			return ch.BindExchange(bnd)
		}
		return ch.BindQueue(bnd)
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	w.Header().Set("Location", escapedPath(r)+"/"+url.PathEscape(propertiesKey(d.RoutingKey, args)))
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) unbindQueue(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	x, props := exchangeName(r, "exchange"), pathValue(r, "props")
	q, kind := bindingDest(r)
	bs, err := s.b.Bindings(vh)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	var found *broker.BindingInfo
	for i, b := range bs {
		if b.Source == x && b.Source != "" && b.DestinationType == kind && b.Destination == q &&
			propsMatch(b, props) {
			found = &bs[i]
			break
		}
	}
	if found == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no binding '%s' from exchange '%s' to %s '%s' in vhost '%s'", props, x, kind, q, vh))
		return
	}
	if err := u.check(vh, permWrite, kind, q); err != nil {
		writeBrokerError(w, err)
		return
	}
	err = s.session(vh, u, func(ch *broker.Channel) error {
		bnd := broker.Binding{Source: x, Destination: q, Key: found.RoutingKey, Args: found.Args}
		if kind == "exchange" {
			return ch.UnbindExchange(bnd)
		}
		return ch.UnbindQueue(bnd)
	})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// connections returns the live connections u may see: all for monitoring
// users, their own for the others.
func (s *Server) connections(u *user) []*broker.Connection {
	if s.conns == nil {
		return nil
	}
	var out []*broker.Connection
	for _, c := range s.conns.Connections() {
		if u.monitoring() || c.Info().User == u.name {
			out = append(out, c)
		}
	}
	return out
}

func peer(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// trafficSource is what the API reads of a connection's byte counts when
// the AMQP front door offers it (amqpserver.Server does).
type trafficSource interface {
	Traffic(name string) (recvOct, sendOct uint64, ok bool)
}

// apiConnection describes c, with its traffic when the front door counts it.
func (s *Server) apiConnection(c *broker.Connection) api.Connection {
	out := apiConnection(c)
	if ts, ok := s.conns.(trafficSource); ok {
		out.RecvOct, out.SendOct, _ = ts.Traffic(out.Name)
	}
	return out
}

func apiConnection(c *broker.Connection) api.Connection {
	info := c.Info()
	host, port := peer(info.RemoteAddr)
	props := jsonTable(info.ClientProperties)
	if props == nil {
		props = map[string]any{}
	}
	return api.Connection{Name: info.Name, VHost: info.VHost, User: info.User, Protocol: "AMQP 0-9-1",
		PeerHost: host, PeerPort: port, Channels: len(c.ChannelInfos()), State: "running", ClientProperties: props}
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, u *user) {
	out := []api.Connection{}
	for _, c := range s.connections(u) {
		out = append(out, s.apiConnection(c))
	}
	writeListing(w, r, out)
}

func (s *Server) findConnection(u *user, name string) *broker.Connection {
	for _, c := range s.connections(u) {
		if c.Info().Name == name {
			return c
		}
	}
	return nil
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "name")
	c := s.findConnection(u, name)
	if c == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no connection '%s'", name))
		return
	}
	writeJSON(w, http.StatusOK, s.apiConnection(c))
}

func (s *Server) closeConnection(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "name")
	c := s.findConnection(u, name)
	if c == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no connection '%s'", name))
		return
	}
	if !u.admin() && c.Info().User != u.name {
		writeError(w, http.StatusForbidden, "not_authorised", "only an administrator may close another user's connection")
		return
	}
	reason := r.Header.Get("X-Reason")
	if reason == "" {
		reason = "Closed via management plugin"
	}
	if !s.conns.CloseConnection(name, reason) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no connection '%s'", name))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, u *user) {
	out := []api.Channel{}
	for _, c := range s.connections(u) {
		info := c.Info()
		host, port := peer(info.RemoteAddr)
		for _, ch := range c.ChannelInfos() {
			out = append(out, api.Channel{Name: fmt.Sprintf("%s (%d)", info.Name, ch.Number), Number: int(ch.Number),
				VHost: info.VHost, User: info.User,
				ConnectionDetails: api.ConnectionDetails{Name: info.Name, PeerHost: host, PeerPort: port},
				Consumers:         ch.Consumers, MessagesUnacknowledged: ch.Unacked, PrefetchCount: ch.Prefetch,
				GlobalPrefetchCount: ch.GlobalPrefetch, Confirm: ch.Confirm, Transactional: ch.Transactional, State: "running",
				MessageStats: s.rates.channelStats(info.Name, ch)})
		}
	}
	writeListing(w, r, out)
}

func (s *Server) listConsumers(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	cs, err := s.b.Consumers(vh)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.Consumer{}
	for _, c := range cs {
		if !u.seesVHost(c.VHost) {
			continue
		}
		out = append(out, api.Consumer{ConsumerTag: c.Tag, Queue: api.QueueRef{Name: c.Queue, VHost: c.VHost},
			ChannelDetails: api.ChannelDetails{Name: fmt.Sprintf("%s (%d)", c.Connection, c.Channel), Number: int(c.Channel),
				ConnectionName: c.Connection, User: c.User},
			AckRequired: !c.NoAck, Exclusive: c.Exclusive, PrefetchCount: c.Prefetch, Arguments: map[string]any{},
			Priority: c.Priority})
	}
	writeListing(w, r, out)
}

// answerDeclare writes the outcome of a PUT that declares a resource: the
// broker's error, 204 when it existed already, else 201 Created.
func answerDeclare(w http.ResponseWriter, err error, existed bool) {
	switch {
	case err != nil:
		writeBrokerError(w, err)
	case existed:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusCreated)
	}
}
