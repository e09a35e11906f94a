package broker

// The operator's view of the broker, for the HTTP API and /metrics:
// listings of vhosts, exchanges, queues, bindings and consumers with their
// counts, and admin sessions through which the API declares, deletes,
// binds, publishes and gets as a client would. Listings take each lock
// briefly in the documented order (vhost.mu, then queue.mu, then
// Channel.mu) and copy what they report.

import (
	"slices"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/records"
)

// ExchangeInfo describes an exchange.
type ExchangeInfo struct {
	VHost      string
	Name       string
	Type       string
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       message.Table
	// PublishIn counts messages published into the exchange, PublishOut
	// the copies it routed to queues.
	PublishIn, PublishOut uint64
	// Policy names the policy that applies ("" when none).
	Policy string
}

// QueueInfo describes a queue and its counts.
type QueueInfo struct {
	VHost      string
	Name       string
	Durable    bool
	AutoDelete bool
	Exclusive  bool
	Args       message.Table
	Owner      string // the owning connection's name, for an exclusive queue
	// Node is the node holding the queue in a cluster (a quorum queue's
	// leader as last known); "" for a single node.
	Node       string
	Ready      int
	Unacked    int
	Delayed    int
	ReadyBytes uint64
	Consumers  int
	// Oldest is the seq of the oldest message (0 when empty).
	Oldest uint64
	// Stats are the queue's message counters (stats.go).
	Stats MessageStats
	// Policy and OperatorPolicy name the policies that apply, Effective
	// their merged definition (policy.go).
	Policy, OperatorPolicy string
	EffectivePolicy        map[string]any
}

// Messages is ready + unacked + delayed.
func (q QueueInfo) Messages() int { return q.Ready + q.Unacked + q.Delayed }

// BindingInfo describes a binding. DestinationType is "queue" or
// "exchange".
type BindingInfo struct {
	VHost           string
	Source          string
	Destination     string
	DestinationType string
	RoutingKey      string
	Args            message.Table
}

// ConsumerInfo describes a consumer.
type ConsumerInfo struct {
	VHost      string
	Queue      string
	Tag        string
	Connection string
	User       string
	Channel    uint16
	NoAck      bool
	Exclusive  bool
	Prefetch   int
	Priority   int64
}

// VHosts returns the vhost names, sorted.
func (b *Broker) VHosts() []string {
	vhs := b.vhostList()
	names := make([]string, len(vhs))
	for i, vh := range vhs {
		names[i] = vh.name
	}
	return names
}

// HasVHost reports whether the vhost exists.
func (b *Broker) HasVHost(name string) bool { return b.vhost(name) != nil }

// vhostsFor returns the named vhost, or all when name is empty.
func (b *Broker) vhostsFor(name string) ([]*vhost, error) {
	if name == "" {
		return b.vhostList(), nil
	}
	vh := b.vhost(name)
	if vh == nil {
		return nil, errorf(NotFound, "no vhost '%s'", name)
	}
	return []*vhost{vh}, nil
}

// Exchanges lists the exchanges of a vhost ("" for all), sorted by name.
func (b *Broker) Exchanges(vhostName string) ([]ExchangeInfo, error) {
	vhs, err := b.vhostsFor(vhostName)
	if err != nil {
		return nil, err
	}
	var out []ExchangeInfo
	for _, vh := range vhs {
		vh.mu.RLock()
		for _, x := range vh.exchanges {
			out = append(out, exchangeInfo(vh, x))
		}
		vh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b ExchangeInfo) int {
		return strings.Compare(a.VHost+"\x00"+a.Name, b.VHost+"\x00"+b.Name)
	})
	return out, nil
}

func exchangeInfo(vh *vhost, x *exchange) ExchangeInfo {
	return ExchangeInfo{VHost: vh.name, Name: x.name, Type: x.kind, Durable: x.durable,
		AutoDelete: x.autoDelete, Internal: x.internal, Args: x.args,
		PublishIn: x.stats.in.Load(), PublishOut: x.stats.out.Load(), Policy: x.policy}
}

// Exchange describes one exchange.
func (b *Broker) Exchange(vhostName, name string) (ExchangeInfo, error) {
	vh := b.vhost(vhostName)
	if vh == nil {
		return ExchangeInfo{}, errorf(NotFound, "no vhost '%s'", vhostName)
	}
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	x := vh.exchanges[name]
	if x == nil {
		return ExchangeInfo{}, vh.noExchange(name)
	}
	return exchangeInfo(vh, x), nil
}

// Queues lists the queues of a vhost ("" for all), sorted by name.
func (b *Broker) Queues(vhostName string) ([]QueueInfo, error) {
	vhs, err := b.vhostsFor(vhostName)
	if err != nil {
		return nil, err
	}
	var out []QueueInfo
	for _, vh := range vhs {
		vh.mu.RLock()
		for _, q := range vh.queues {
			out = append(out, q.info())
		}
		vh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b QueueInfo) int {
		return strings.Compare(a.VHost+"\x00"+a.Name, b.VHost+"\x00"+b.Name)
	})
	return out, nil
}

// Queue describes one queue.
func (b *Broker) Queue(vhostName, name string) (QueueInfo, error) {
	q, err := b.lookupQueue(vhostName, name)
	if err != nil {
		return QueueInfo{}, err
	}
	return q.info(), nil
}

// lookupQueue finds a queue for the operator (exclusivity does not apply).
func (b *Broker) lookupQueue(vhostName, name string) (*queue, error) {
	vh := b.vhost(vhostName)
	if vh == nil {
		return nil, errorf(NotFound, "no vhost '%s'", vhostName)
	}
	vh.mu.RLock()
	defer vh.mu.RUnlock()
	q := vh.queues[name]
	if q == nil {
		return nil, vh.noQueue(name)
	}
	return q, nil
}

// info copies the queue's definition and counts. The definition fields
// are fixed at creation; the counts are read under q.mu.
func (q *queue) info() QueueInfo {
	qi := QueueInfo{VHost: q.vh.name, Name: q.name, Durable: q.declaredDurable, AutoDelete: q.autoDelete,
		Exclusive: q.exclusive, Args: q.args, Stats: q.stats.snapshot()}
	if o := q.opts(); o.Policy != "" || o.OperatorPolicy != "" {
		qi.Policy, qi.OperatorPolicy, qi.EffectivePolicy = o.Policy, o.OperatorPolicy, o.PolicyDefinition
	}
	if q.owner != nil {
		qi.Owner = q.owner.info.Name
	}
	switch {
	case q.env.cluster == nil:
	case q.home != "": // metasync.go
		qi.Node = q.home
	case q.quorum:
		qi.Node = q.env.cluster.Leader(q.id)
	default:
		qi.Node = q.env.node
	}
	held := -1
	if q.quorum && !q.servesHere() {
		held = q.replicated.get(q) // quorum.go
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	qi.Ready = q.readyLenLocked()
	if held >= 0 {
		qi.Ready = held
	}
	qi.ReadyBytes = q.ready.bytes
	qi.Unacked = len(q.unacked)
	qi.Delayed = len(q.delayed)
	qi.Consumers = len(q.consumers)
	if low := q.lowestLocked(); low < q.high {
		qi.Oldest = low
	}
	return qi
}

// Bindings lists the bindings of a vhost ("" for all), including the
// implicit binding of every queue to the default exchange, as RabbitMQ
// lists them.
func (b *Broker) Bindings(vhostName string) ([]BindingInfo, error) {
	vhs, err := b.vhostsFor(vhostName)
	if err != nil {
		return nil, err
	}
	var out []BindingInfo
	for _, vh := range vhs {
		vh.mu.RLock()
		qnames := make([]string, 0, len(vh.queues))
		for n := range vh.queues {
			qnames = append(qnames, n)
		}
		slices.Sort(qnames)
		for _, n := range qnames {
			out = append(out, BindingInfo{VHost: vh.name, Destination: n, DestinationType: "queue", RoutingKey: n})
		}
		xnames := make([]string, 0, len(vh.exchanges))
		for n := range vh.exchanges {
			xnames = append(xnames, n)
		}
		slices.Sort(xnames)
		for _, n := range xnames {
			for _, bd := range vh.exchanges[n].bindings {
				out = append(out, bindingInfo(vh, bd))
			}
		}
		vh.mu.RUnlock()
	}
	return out, nil
}

func bindingInfo(vh *vhost, bd *binding) BindingInfo {
	bi := BindingInfo{VHost: vh.name, Source: bd.src.name, Destination: bd.destName(),
		DestinationType: "queue", RoutingKey: bd.key, Args: bd.args}
	if bd.x != nil {
		bi.DestinationType = "exchange"
	}
	return bi
}

// Consumers lists the consumers of a vhost ("" for all).
func (b *Broker) Consumers(vhostName string) ([]ConsumerInfo, error) {
	vhs, err := b.vhostsFor(vhostName)
	if err != nil {
		return nil, err
	}
	var out []ConsumerInfo
	for _, vh := range vhs {
		vh.mu.RLock()
		qs := make([]*queue, 0, len(vh.queues))
		for _, q := range vh.queues {
			qs = append(qs, q)
		}
		vh.mu.RUnlock()
		for _, q := range qs {
			q.mu.Lock()
			for _, c := range q.consumers {
				out = append(out, ConsumerInfo{VHost: vh.name, Queue: q.name, Tag: c.tag,
					Connection: c.ch.conn.info.Name, User: c.ch.conn.info.User, Channel: c.ch.id,
					NoAck: c.noAck, Exclusive: c.exclusive, Prefetch: c.prefetch, Priority: c.priority})
			}
			q.mu.Unlock()
		}
	}
	slices.SortFunc(out, func(a, b ConsumerInfo) int {
		return strings.Compare(a.Queue+"\x00"+a.Tag, b.Queue+"\x00"+b.Tag)
	})
	return out, nil
}

// discardOutlet is the outlet of admin sessions, which never consume.
type discardOutlet struct{}

func (discardOutlet) Deliver(*Delivery)        {}
func (discardOutlet) ConsumerCancelled(string) {}

// AdminSession opens a connection and one channel for the operator's
// requests (declare, delete, bind, publish, get) on behalf of user. The
// caller closes the connection when done; unacked gets return to their
// queue then.
func (b *Broker) AdminSession(vhostName, user string) (*Connection, *Channel, error) {
	return b.UserSession(vhostName, user, nil)
}

// UserSession is AdminSession with every operation checked by chk, as an
// AMQP connection of the user is (nil: unchecked).
func (b *Broker) UserSession(vhostName, user string, chk *access.Checker) (*Connection, *Channel, error) {
	vh := b.vhost(vhostName)
	if vh == nil {
		return nil, nil, errorf(NotFound, "no vhost '%s'", vhostName)
	}
	conn := newConnection(vh, ConnInfo{Name: "http-api", User: user, VHost: vhostName})
	conn.access = chk
	conn.impersonator = b.users.hasTag(user, tagImpersonator)
	return conn, conn.Channel(1, discardOutlet{}), nil
}

// ChannelInfo describes one channel of a connection.
type ChannelInfo struct {
	Number         uint16
	Consumers      int
	Unacked        int
	Prefetch       int
	GlobalPrefetch int
	Confirm        bool
	Transactional  bool
	// Unconfirmed counts publishes since confirm.select not yet confirmed.
	Unconfirmed int
	Stats       MessageStats // stats.go
}

// ChannelInfos describes the connection's open channels, by number.
func (c *Connection) ChannelInfos() []ChannelInfo {
	c.mu.Lock()
	chans := make([]*Channel, 0, len(c.channels))
	for _, ch := range c.channels {
		chans = append(chans, ch)
	}
	c.mu.Unlock()
	out := make([]ChannelInfo, 0, len(chans))
	for _, ch := range chans {
		ch.mu.Lock()
		if !ch.closed {
			out = append(out, ChannelInfo{Number: ch.id, Consumers: len(ch.consumers), Unacked: len(ch.unacked),
				Prefetch: ch.prefetch, GlobalPrefetch: ch.globalPrefetch,
				Confirm: ch.mode == modeConfirm, Transactional: ch.mode == modeTx, Stats: ch.stats.snapshot()})
			if ch.mode == modeConfirm {
				out[len(out)-1].Unconfirmed = ch.unconfirmed(ch.confirmFrom)
			}
		}
		ch.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int { return int(a.Number) - int(b.Number) })
	return out
}

// OldestPublished returns when the queue's oldest message was published
// (false when the queue is empty or the message just left).
func (b *Broker) OldestPublished(qi QueueInfo) (time.Time, bool) {
	if qi.Oldest == 0 {
		return time.Time{}, false
	}
	q, err := b.lookupQueue(qi.VHost, qi.Name)
	if err != nil {
		return time.Time{}, false
	}
	rec, err := b.env.st.Get(q.id, qi.Oldest)
	if err != nil {
		return time.Time{}, false
	}
	if _, err := records.RecordFlags(rec); err != nil {
		return time.Time{}, false
	}
	ms := records.RecordPublished(rec)
	if ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
