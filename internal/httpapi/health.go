package httpapi

// Health checks and nodes as RabbitMQ's management API has them, for load
// balancers, Kubernetes probes and monitoring: /api/health/checks/…,
// /api/aliveness-test/{vhost}, /api/nodes. A failed check answers 503
// with {"status": "failed", "reason": …}, as RabbitMQ does.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/resource"
)

// nodeName is the node's name in the API (a single node).
const nodeName = "sluice@localhost"

// Resources is what the API reads of the resource monitor
// (resource.Monitor): the alarms and the readings behind them.
type Resources interface {
	Status() resource.Status
}

func (s *Server) routeHealth() {
	s.route("GET /api/health/checks/alarms", needMonitoringOrManagement, s.checkAlarms)
	s.route("GET /api/health/checks/local-alarms", needMonitoringOrManagement, s.checkAlarms)
	s.route("GET /api/health/checks/port-listener/{port}", needMonitoringOrManagement, s.checkPortListener)
	s.route("GET /api/health/checks/virtual-hosts", needMonitoringOrManagement, s.checkVHosts)
	s.route("GET /api/health/checks/node-is-quorum-critical", needMonitoringOrManagement, s.checkQuorumCritical)
	s.route("GET /api/aliveness-test/{vhost}", needManagement, s.alivenessTest)
	s.route("GET /api/nodes", needMonitoringOrManagement, s.listNodes)
	s.route("GET /api/nodes/{name}", needMonitoringOrManagement, s.getNode)
}

// resourceStatus returns the monitor's status (zero without a monitor).
func (s *Server) resourceStatus() resource.Status {
	if s.cfg.Resources == nil {
		return resource.Status{}
	}
	return s.cfg.Resources.Status()
}

// alarms lists the raised alarms as RabbitMQ names them.
func (s *Server) alarms() []api.Alarm {
	st := s.resourceStatus()
	out := []api.Alarm{}
	if st.Disk {
		out = append(out, api.Alarm{Node: nodeName, Resource: "disk"})
	}
	if st.Memory {
		out = append(out, api.Alarm{Node: nodeName, Resource: "memory"})
	}
	return out
}

func healthOK(w http.ResponseWriter, extra map[string]any) {
	body := map[string]any{"status": "ok"}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, http.StatusOK, body)
}

func healthFailed(w http.ResponseWriter, reason string, extra map[string]any) {
	body := map[string]any{"status": "failed", "reason": reason}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, http.StatusServiceUnavailable, body)
}

func (s *Server) checkAlarms(w http.ResponseWriter, r *http.Request, u *user) {
	as := s.alarms()
	if len(as) == 0 {
		healthOK(w, nil)
		return
	}
	reason := "There are alarms in effect in the cluster"
	if r.Pattern == "GET /api/health/checks/local-alarms" {
		reason = "There are alarms in effect on the node"
	}
	healthFailed(w, reason, map[string]any{"alarms": as})
}

// listenerPorts are the ports the node listens on: AMQP (from the front
// door, when it says) and HTTP.
func (s *Server) listenerPorts() []api.Listener {
	var out []api.Listener
	add := func(proto string, a net.Addr) {
		if a == nil {
			return
		}
		if host, port, err := net.SplitHostPort(a.String()); err == nil {
			p, _ := strconv.Atoi(port)
			out = append(out, api.Listener{Protocol: proto, IPAddress: host, Port: p})
		}
	}
	switch c := s.conns.(type) {
	case interface{ Addrs() []net.Addr }:
		for _, a := range c.Addrs() {
			add("amqp", a)
		}
	case interface{ Addr() net.Addr }:
		add("amqp", c.Addr())
	}
	if host, port, err := net.SplitHostPort(s.cfg.Addr); err == nil {
		p, _ := strconv.Atoi(port)
		out = append(out, api.Listener{Protocol: "http", IPAddress: host, Port: p})
	}
	return out
}

func (s *Server) checkPortListener(w http.ResponseWriter, r *http.Request, u *user) {
	raw := pathValue(r, "port")
	port, err := strconv.Atoi(raw)
	if err != nil || port < 1 || port > 65535 {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("port: %q is not a port number", raw))
		return
	}
	ports := []int{}
	for _, l := range s.listenerPorts() {
		if l.Port == port {
			healthOK(w, map[string]any{"port": port})
			return
		}
		ports = append(ports, l.Port)
	}
	healthFailed(w, "No active listener", map[string]any{"missing": port, "ports": ports})
}

func (s *Server) checkVHosts(w http.ResponseWriter, r *http.Request, u *user) {
	healthOK(w, nil) // every vhost runs while the broker does
}

func (s *Server) checkQuorumCritical(w http.ResponseWriter, r *http.Request, u *user) {
	// A single node: no quorum queue depends on another node to keep its
	// majority, so stopping this one endangers none beyond itself.
	healthOK(w, nil)
}

// alivenessTest declares the queue aliveness-test in the vhost, publishes
// a message to it and gets it back, as RabbitMQ's did.
func (s *Server) alivenessTest(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	const q = "aliveness-test"
	err := s.session(vh, u, func(ch *broker.Channel) error {
		if _, err := ch.DeclareQueue(broker.QueueDecl{Name: q}); err != nil {
			return err
		}
		done := make(chan error, 1)
		msg := &message.Message{RoutingKey: q, Body: []byte("test_message")}
		if _, err := ch.Publish(msg, false, func(err error) { done <- err }); err != nil {
			return err
		}
		if err := <-done; err != nil {
			return err
		}
		d, err := ch.Get(q, true)
		if err != nil {
			return err
		}
		if d == nil {
			return &broker.Error{Code: broker.Internal, Reason: "the test message did not come back"}
		}
		return nil
	})
	if err != nil {
		healthFailed(w, err.Error(), nil)
		return
	}
	healthOK(w, nil)
}

// apiNode describes this node.
func (s *Server) apiNode() api.Node {
	st := s.resourceStatus()
	n := api.Node{Name: nodeName, Type: "disc", Running: true, MemUsed: st.MemUsed, MemLimit: st.MemLimit, MemAlarm: st.Memory,
		DiskFree: st.DiskFree, DiskFreeLimit: st.DiskFreeLimit, DiskFreeAlarm: st.Disk,
		FDUsed: fdUsed(), Uptime: s.cfg.Now().Sub(s.started).Milliseconds(), Partitions: []string{}}
	if s.conns != nil {
		n.SocketsUsed = len(s.conns.Connections())
	}
	return n
}

// fdUsed counts the process's open file descriptors (Linux; 0 elsewhere).
func fdUsed() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(es)
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, u *user) {
	writeListing(w, r, []api.Node{s.apiNode()})
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, u *user) {
	if name := pathValue(r, "name"); name != nodeName {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no node '%s'", name))
		return
	}
	writeJSON(w, http.StatusOK, s.apiNode())
}
