package main

// Clustering: --node and --cluster turn on the Raft host that replicates
// quorum queues (internal/cluster), wired between the store and the broker.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/cluster"
	"github.com/sluicemq/sluice/internal/store"
)

// replicateTimeout bounds a replicated write's wait for its commit; past
// it the publish is nacked (it may still be committed: at-least-once).
const replicateTimeout = 10 * time.Second

// parseCluster reads "n1=host:port,n2=host:port".
func parseCluster(spec string) (map[string]string, error) {
	nodes := make(map[string]string)
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, addr, ok := strings.Cut(part, "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("cluster member %q: want name=host:port", part)
		}
		if _, dup := nodes[name]; dup {
			return nil, fmt.Errorf("cluster member %q given twice", name)
		}
		nodes[name] = addr
	}
	return nodes, nil
}

// clusterNode is this node's Raft host and transport; it is the broker's
// broker.Cluster.
type clusterNode struct {
	cfg  cluster.Config
	host *cluster.Host
	tr   *cluster.TCPTransport
}

// maxMessage is --max-message-size: the transport carries any message the
// broker takes.
func openCluster(node, spec string, join bool, maxMessage int64, st store.Store, log *slog.Logger) (*clusterNode, error) {
	nodes, err := parseCluster(spec)
	if err != nil {
		return nil, err
	}
	cfg := cluster.DefaultConfig()
	cfg.Node, cfg.Nodes, cfg.Join, cfg.Logger, cfg.MaxMessageSize = node, nodes, join, log, maxMessage
	if v := os.Getenv("SLUICE_CLUSTER_LOG_KEEP"); v != "" {
		// How many applied entries each group's log keeps (a tuning
		// knob, docs/clustering.md; the tests make snapshots happen
		// soon with a small one).
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("SLUICE_CLUSTER_LOG_KEEP=%q: want a positive number of entries", v)
		}
		cfg.CompactEntries = n
	}
	h, err := cluster.New(cfg, st)
	if err != nil {
		return nil, err
	}
	// The node list this node stored (a node added or removed since the
	// start) wins over --cluster.
	tcfg := cfg
	tcfg.Nodes = h.Nodes()
	tr, err := cluster.NewTCPTransport(tcfg, h)
	if err != nil {
		return nil, err
	}
	h.OnNodes(tr.SetNodes)
	return &clusterNode{cfg: cfg, host: h, tr: tr}, nil
}

// store returns the store the broker writes through.
func (c *clusterNode) store(local store.Store) store.Store {
	s := cluster.NewStore(local, c.host, replicateTimeout)
	s.ShareMeta(metaRoute(local)) // metaroute.go
	return s
}

func (c *clusterNode) start(b *broker.Broker) {
	c.tr.SetForwardHandler(b.AcceptForward)
	c.tr.SetMessageHandler(b)
	c.host.Start(c.tr, b)
}

func (c *clusterNode) close(context.Context) error {
	c.host.Stop()
	return c.tr.Close()
}

func (c *clusterNode) QueueID(vhost, name string) store.QueueID { return cluster.QueueID(vhost, name) }
func (c *clusterNode) Replicated(id store.QueueID) bool         { return cluster.Replicated(id) }

func (c *clusterNode) Leader(id store.QueueID) string { return c.host.Leader(id) }

func (c *clusterNode) DeleteQueue(ctx context.Context, id store.QueueID) error {
	return c.host.DeleteQueue(ctx, id)
}

func (c *clusterNode) Forward(node string, body []byte, done func([]byte, error)) {
	c.tr.Forward(node, body, replicateTimeout, done)
}

func (c *clusterNode) SendMessage(node string, body []byte) bool { return c.tr.SendMessage(node, body) }

// defaultGroupSize is a quorum queue's members when its declaration does
// not say (x-quorum-initial-group-size), as RabbitMQ's default; a smaller
// cluster makes every node a member.
const defaultGroupSize = 3

func (c *clusterNode) CreateQueue(ctx context.Context, id store.QueueID, def []byte, groupSize int) error {
	if groupSize <= 0 {
		groupSize = defaultGroupSize
	}
	return c.host.CreateQueue(ctx, id, def, c.host.PickMembers(id, groupSize))
}

func (c *clusterNode) AddNode(ctx context.Context, name, addr string) error {
	return memberError(c.host.AddNode(ctx, name, addr))
}

func (c *clusterNode) RemoveNode(ctx context.Context, name string) error {
	return memberError(c.host.RemoveNode(ctx, name))
}

func (c *clusterNode) AddMember(ctx context.Context, id store.QueueID, node string) error {
	return memberError(c.host.AddMember(ctx, id, node))
}

func (c *clusterNode) RemoveMember(ctx context.Context, id store.QueueID, node string) error {
	return memberError(c.host.RemoveMember(ctx, id, node))
}

// memberError gives a membership change's failure its broker code (the
// HTTP status the API answers with).
func memberError(err error) error {
	var code broker.Code
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrUnknownNode):
		code = broker.NotFound
	case errors.Is(err, cluster.ErrBadNode):
		code = broker.InvalidArgument
	case errors.Is(err, cluster.ErrLastMember), errors.Is(err, cluster.ErrSelf):
		code = broker.PreconditionFailed
	case errors.Is(err, cluster.ErrTimeout), errors.Is(err, cluster.ErrNoGroup), errors.Is(err, context.DeadlineExceeded):
		code = broker.ResourceError
	default:
		return err
	}
	return &broker.Error{Code: code, Reason: err.Error(), Err: err}
}

func (c *clusterNode) QueueStatus(id store.QueueID) (broker.ReplicaStatus, bool) {
	gs, ok := c.host.QueueStatus(id)
	if !ok {
		return broker.ReplicaStatus{}, false
	}
	rs := broker.ReplicaStatus{Leader: gs.Leader, Members: gs.Members}
	for _, m := range gs.Members {
		if c.tr.Connected(m) {
			rs.Online = append(rs.Online, m)
		}
	}
	return rs, true
}

func (c *clusterNode) Nodes() []broker.NodeStatus {
	var out []broker.NodeStatus
	meta := c.host.MetaLeader()
	for name := range c.host.Nodes() {
		out = append(out, broker.NodeStatus{Name: name, Running: c.tr.Connected(name), MetadataLeader: name == meta})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
