package httpapi

// Health checks and nodes, as RabbitMQ 3.10's management API has them, for
// load balancers, Kubernetes probes and monitoring: each check answers 200
// {"status":"ok"} or 503 {"status":"failed","reason":…} with what failed.

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/message"
)

func (s *Server) routeHealth() {
	s.route("GET /api/health/checks/alarms", needMonitoringOrManagement, s.checkAlarms)
	s.route("GET /api/health/checks/local-alarms", needMonitoringOrManagement, s.checkAlarms)
	s.route("GET /api/health/checks/port-listener/{port}", needMonitoringOrManagement, s.checkPortListener)
	s.route("GET /api/health/checks/protocol-listener/{protocol}", needMonitoringOrManagement, s.checkProtocolListener)
	s.route("GET /api/health/checks/virtual-hosts", needMonitoringOrManagement, s.checkVHosts)
	s.route("GET /api/health/checks/node-is-quorum-critical", needMonitoringOrManagement, s.checkOK)
	s.route("GET /api/health/checks/node-is-mirror-sync-critical", needMonitoringOrManagement, s.checkOK)
	s.route("GET /api/aliveness-test/{vhost}", needManagement, s.alivenessTest)
	s.route("GET /api/nodes", needMonitoringOrManagement, s.listNodes)
	s.route("GET /api/nodes/{name}", needMonitoringOrManagement, s.getNode)
}

// writeHealth answers a check: 200 when h is ok, else 503.
func writeHealth(w http.ResponseWriter, h api.Health) {
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

// alarms lists the alarms in effect on this node.
func (s *Server) alarms() []api.Alarm {
	st := s.nodeStatus()
	out := []api.Alarm{}
	if st.MemoryAlarm {
		out = append(out, api.Alarm{Node: s.cfg.NodeName, Resource: "memory"})
	}
	if st.DiskAlarm {
		out = append(out, api.Alarm{Node: s.cfg.NodeName, Resource: "disk"})
	}
	if err := s.b.Fenced(); err != nil {
		out = append(out, api.Alarm{Node: s.cfg.NodeName, Resource: "store", Reason: err.Error()})
	}
	return out
}

// checkAlarms serves alarms and local-alarms: a single node's alarms are
// the cluster's.
func (s *Server) checkAlarms(w http.ResponseWriter, r *http.Request, u *user) {
	if a := s.alarms(); len(a) > 0 {
		reason := "There are alarms in effect in the cluster"
		if strings.HasSuffix(r.URL.Path, "local-alarms") {
			reason = "There are alarms in effect on the node"
		}
		writeHealth(w, api.Health{Status: "failed", Reason: reason, Alarms: a})
		return
	}
	writeHealth(w, api.Health{Status: "ok"})
}

// listeners are the broker's protocol listeners.
func (s *Server) listeners() []api.Listener {
	if s.cfg.Listeners != nil {
		return s.cfg.Listeners()
	}
	host, port, err := net.SplitHostPort(s.cfg.Addr)
	if err != nil {
		return nil
	}
	p, _ := strconv.Atoi(port)
	return []api.Listener{{Protocol: "http", IPAddress: host, Port: p}}
}

func (s *Server) checkPortListener(w http.ResponseWriter, r *http.Request, u *user) {
	port, err := strconv.Atoi(pathValue(r, "port"))
	if err != nil || port < 1 || port > 65535 {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("port %q: want a number from 1 to 65535", pathValue(r, "port")))
		return
	}
	var ports []int
	for _, l := range s.listeners() {
		if !slices.Contains(ports, l.Port) {
			ports = append(ports, l.Port)
		}
	}
	if !slices.Contains(ports, port) {
		writeHealth(w, api.Health{Status: "failed", Reason: "No active listener", Missing: port, Ports: ports})
		return
	}
	writeHealth(w, api.Health{Status: "ok", Port: port})
}

// protocolNames maps the names a check may use to the listener's.
var protocolNames = map[string]string{
	"amqp": "amqp", "amqp091": "amqp", "amqp0-9-1": "amqp", "amqp0.9.1": "amqp",
	"amqps": "amqp/ssl", "amqp/ssl": "amqp/ssl", "http": "http", "https": "https",
}

func (s *Server) checkProtocolListener(w http.ResponseWriter, r *http.Request, u *user) {
	asked := strings.ToLower(pathValue(r, "protocol"))
	want, known := protocolNames[asked]
	if !known {
		want = asked
	}
	var protocols []string
	for _, l := range s.listeners() {
		if !slices.Contains(protocols, l.Protocol) {
			protocols = append(protocols, l.Protocol)
		}
	}
	if !slices.Contains(protocols, want) {
		writeHealth(w, api.Health{Status: "failed", Reason: "No active listener", Missing: asked, Protocols: protocols})
		return
	}
	writeHealth(w, api.Health{Status: "ok", Protocol: asked})
}

// checkVHosts: every vhost of a running single node is up.
func (s *Server) checkVHosts(w http.ResponseWriter, r *http.Request, u *user) {
	writeHealth(w, api.Health{Status: "ok"})
}

// checkOK answers the checks about replicas: a single node holds no
// replicated queue whose quorum or sync its shutdown could cost.
func (s *Server) checkOK(w http.ResponseWriter, r *http.Request, u *user) {
	writeHealth(w, api.Health{Status: "ok"})
}

// alivenessQueue is the queue /api/aliveness-test uses, as RabbitMQ's.
const alivenessQueue = "aliveness-test"

// alivenessTest declares the aliveness-test queue in the vhost, publishes a
// message to it and gets it back, as the user.
func (s *Server) alivenessTest(w http.ResponseWriter, r *http.Request, u *user) {
	vh, ok := s.vhostParam(w, r, u)
	if !ok {
		return
	}
	err := s.session(vh, u, func(ch *broker.Channel) error {
		if _, err := ch.DeclareQueue(broker.QueueDecl{Name: alivenessQueue}); err != nil {
			return err
		}
		done := make(chan error, 1)
		msg := &message.Message{RoutingKey: alivenessQueue, Body: []byte("test_message")}
		if _, err := ch.Publish(msg, false, func(err error) { done <- err }); err != nil {
			return err
		}
		if err := <-done; err != nil {
			return err
		}
		d, err := ch.Get(alivenessQueue, true)
		if err != nil {
			return err
		}
		if d == nil {
			return fmt.Errorf("the message published to %s did not come back", alivenessQueue)
		}
		return nil
	})
	if err != nil {
		if broker.CodeOf(err) == broker.AccessRefused {
			writeBrokerError(w, err)
			return
		}
		writeHealth(w, api.Health{Status: "failed", Reason: err.Error()})
		return
	}
	writeHealth(w, api.Health{Status: "ok"})
}

// node describes this broker as RabbitMQ's /api/nodes does.
func (s *Server) node() api.Node {
	st := s.nodeStatus()
	fdTotal := maxFDs()
	fenced := ""
	if err := s.b.Fenced(); err != nil {
		fenced = err.Error()
	}
	sockets := 0
	if s.conns != nil {
		sockets = len(s.conns.Connections())
	}
	return api.Node{
		Name: s.cfg.NodeName, Type: "disc", Running: true,
		MemUsed: st.MemoryUsed, MemLimit: st.MemoryLimit, MemAlarm: st.MemoryAlarm,
		DiskFree: st.DiskFree, DiskFreeLimit: st.DiskFreeLimit, DiskFreeAlarm: st.DiskAlarm,
		StoreAlarm: fenced != "", StoreAlarmReason: fenced,
		FDUsed: openFDs(), FDTotal: fdTotal, SocketsUsed: sockets, SocketsTotal: fdTotal,
		Processors: runtime.NumCPU(), Uptime: s.cfg.Now().Sub(s.started).Milliseconds(),
		Listeners: s.listeners(),
	}
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, u *user) {
	self := s.node()
	nodes := s.b.ClusterNodes()
	if nodes == nil {
		writeJSON(w, http.StatusOK, []api.Node{self})
		return
	}
	// In a cluster every node answers for all: this one in full, the
	// others by name and whether this node reaches them.
	out := make([]api.Node, 0, len(nodes))
	for _, n := range nodes {
		if n.Name == s.cfg.NodeName {
			self.MetadataLeader = n.MetadataLeader
			out = append(out, self)
			continue
		}
		out = append(out, api.Node{Name: n.Name, Type: "disc", Running: n.Running, MetadataLeader: n.MetadataLeader})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, u *user) {
	if pathValue(r, "name") != s.cfg.NodeName {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no node named '%s'", pathValue(r, "name")))
		return
	}
	writeJSON(w, http.StatusOK, s.node())
}
