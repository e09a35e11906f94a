package httpapi

// /metrics: Prometheus text, gathered at scrape time from the broker's
// listings and message counters (a collector, not counters copied from
// elsewhere), plus the Go runtime's and the process's collectors (memory:
// process_resident_memory_bytes). Each Server has its own registry: no
// global state. Message counters come broker-wide
// (sluice_messages_*_total) and per queue (sluice_queue_messages_*_total
// with vhost and queue labels; they restart from 0 when a queue is
// declared again or the broker restarts).

import (
	"net/http"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicemq/sluice/internal/broker"
)

type brokerCollector struct {
	s *Server
	// perObject adds per-queue samples under RabbitMQ's names
	// (/metrics/per-object); rabbit describes those names.
	perObject bool
	rabbit    *rabbitDescs

	queueMessages  *prometheus.Desc
	queueBytes     *prometheus.Desc
	queueConsumers *prometheus.Desc
	queueOldest    *prometheus.Desc
	connections    *prometheus.Desc
	channels       *prometheus.Desc
	consumers      *prometheus.Desc
	diskFree       *prometheus.Desc
	storeFenced    *prometheus.Desc
	queues         *prometheus.Desc

	counters      []counterDesc
	deadLettered  *prometheus.Desc
	qDeadLettered *prometheus.Desc
	unroutable    *prometheus.Desc

	loginFailed, loginThrottled *prometheus.Desc
}

// loginDoors are the doors the login counters are reported for, always
// both, so that rate() has a series before the first failure.
var loginDoors = []string{"amqp", "http"}

// counterDesc is one message counter, broker-wide and per queue.
type counterDesc struct {
	all, perQueue *prometheus.Desc
	value         func(broker.MessageStats) uint64
}

func newCounterDesc(name, help string, value func(broker.MessageStats) uint64) counterDesc {
	return counterDesc{
		all:      prometheus.NewDesc("sluice_messages_"+name+"_total", help, nil, nil),
		perQueue: prometheus.NewDesc("sluice_queue_messages_"+name+"_total", help+" (per queue)", []string{"vhost", "queue"}, nil),
		value:    value,
	}
}

func newBrokerCollector(s *Server, perObject bool) *brokerCollector {
	return &brokerCollector{
		s: s, perObject: perObject, rabbit: newRabbitDescs(),
		queueMessages: prometheus.NewDesc("sluice_queue_messages", "Messages in a queue by state (ready, unacked, delayed).",
			[]string{"vhost", "queue", "state"}, nil),
		queueBytes: prometheus.NewDesc("sluice_queue_ready_bytes", "Body bytes of a queue's ready messages.",
			[]string{"vhost", "queue"}, nil),
		queueConsumers: prometheus.NewDesc("sluice_queue_consumers", "Consumers of a queue.",
			[]string{"vhost", "queue"}, nil),
		queueOldest: prometheus.NewDesc("sluice_queue_oldest_message_age_seconds",
			"Age of the oldest message a queue holds (absent when empty).", []string{"vhost", "queue"}, nil),
		connections: prometheus.NewDesc("sluice_connections", "Open AMQP connections.", nil, nil),
		channels:    prometheus.NewDesc("sluice_channels", "Open AMQP channels.", nil, nil),
		consumers:   prometheus.NewDesc("sluice_consumers", "Consumers of all queues.", nil, nil),
		queues:      prometheus.NewDesc("sluice_queues", "Queues.", nil, nil),
		diskFree: prometheus.NewDesc("sluice_disk_free_bytes", "Free bytes on the data directory's file system.",
			nil, nil),
		storeFenced: prometheus.NewDesc("sluice_store_fenced",
			"1 while the message store is fenced after a failure: publishes are refused until a restart.", nil, nil),
		counters: []counterDesc{
			newCounterDesc("published", "Messages published (broker-wide: by clients; per queue: entering the queue).",
				func(s broker.MessageStats) uint64 { return s.Publish }),
			newCounterDesc("delivered", "Messages delivered to consumers or taken by basic.get.",
				func(s broker.MessageStats) uint64 { return s.DeliverGet() }),
			newCounterDesc("redelivered", "Deliveries and gets of messages delivered before.",
				func(s broker.MessageStats) uint64 { return s.Redeliver }),
			newCounterDesc("acked", "Deliveries acknowledged.",
				func(s broker.MessageStats) uint64 { return s.Ack }),
			newCounterDesc("nacked", "Deliveries nacked or rejected, requeued or not.",
				func(s broker.MessageStats) uint64 { return s.Nack }),
			newCounterDesc("expired", "Messages whose TTL ran out in a queue.",
				func(s broker.MessageStats) uint64 { return s.Expired }),
		},
		deadLettered: prometheus.NewDesc("sluice_messages_dead_lettered_total", "Messages dead-lettered, by reason.",
			[]string{"reason"}, nil),
		qDeadLettered: prometheus.NewDesc("sluice_queue_messages_dead_lettered_total",
			"Messages dead-lettered from a queue, by reason.", []string{"vhost", "queue", "reason"}, nil),
		unroutable: prometheus.NewDesc("sluice_messages_unroutable_total",
			"Publishes no queue took, returned to the publisher (mandatory) or dropped.", []string{"outcome"}, nil),
		loginFailed: prometheus.NewDesc("sluice_login_failures_total",
			"Logins refused for a wrong password, an unknown user or a user not allowed from its address, by door.", []string{"door"}, nil),
		loginThrottled: prometheus.NewDesc("sluice_login_throttled_total",
			"Logins refused unchecked because their source failed too often, by door.", []string{"door"}, nil),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueMessages, c.queueBytes, c.queueConsumers, c.queueOldest, c.connections,
		c.channels, c.consumers, c.queues, c.diskFree, c.storeFenced, c.deadLettered, c.qDeadLettered, c.unroutable,
		c.loginFailed, c.loginThrottled} {
		ch <- d
	}
	for _, cd := range c.counters {
		ch <- cd.all
		ch <- cd.perQueue
	}
	c.rabbit.describe(ch, c.perObject)
}

// collectCounters sends the message counters of s (per queue with the
// queue's labels, broker-wide without).
func (c *brokerCollector) collectCounters(ch chan<- prometheus.Metric, s broker.MessageStats, q *broker.QueueInfo) {
	for _, cd := range c.counters {
		if q == nil {
			c.send(ch, cd.all, prometheus.CounterValue, float64(cd.value(s)))
		} else {
			c.send(ch, cd.perQueue, prometheus.CounterValue, float64(cd.value(s)), q.VHost, q.Name)
		}
	}
	for i, reason := range broker.DeadLetterReasons() {
		n := float64(s.DeadLettered[i])
		if q == nil {
			c.send(ch, c.deadLettered, prometheus.CounterValue, n, reason)
		} else {
			c.send(ch, c.qDeadLettered, prometheus.CounterValue, n, q.VHost, q.Name, reason)
		}
	}
}

// send sends one sample; a sample that cannot be made is left out and
// logged, never a panic.
func (c *brokerCollector) send(ch chan<- prometheus.Metric, desc *prometheus.Desc, vt prometheus.ValueType, v float64, labels ...string) {
	sendMetric(ch, c.s, desc, vt, v, labels...)
}

// labelValue makes a name a label value: names are valid UTF-8 at every
// door now (broker.CheckName), but a store written before may hold one
// that is not, and its queue should still be seen.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func sendMetric(ch chan<- prometheus.Metric, s *Server, desc *prometheus.Desc, vt prometheus.ValueType, v float64, labels ...string) {
	for i, l := range labels {
		labels[i] = labelValue(l)
	}
	m, err := prometheus.NewConstMetric(desc, vt, v, labels...)
	if err != nil {
		s.log.Warn("metrics: sample left out", "metric", desc.String(), "err", err)
		return
	}
	ch <- m
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	qs, _ := c.s.b.Queues("")
	consumers := 0
	for _, q := range qs {
		for _, st := range []struct {
			name string
			n    int
		}{{"ready", q.Ready}, {"unacked", q.Unacked}, {"delayed", q.Delayed}} {
			c.send(ch, c.queueMessages, prometheus.GaugeValue, float64(st.n), q.VHost, q.Name, st.name)
		}
		c.send(ch, c.queueBytes, prometheus.GaugeValue, float64(q.ReadyBytes), q.VHost, q.Name)
		c.send(ch, c.queueConsumers, prometheus.GaugeValue, float64(q.Consumers), q.VHost, q.Name)
		consumers += q.Consumers
		c.collectCounters(ch, q.Stats, &q)
		if t, ok := c.s.b.OldestPublished(q); ok {
			age := c.s.cfg.Now().Sub(t).Seconds()
			c.send(ch, c.queueOldest, prometheus.GaugeValue, max(age, 0), q.VHost, q.Name)
		}
	}
	c.send(ch, c.queues, prometheus.GaugeValue, float64(len(qs)))
	all := c.s.b.MessageStats()
	c.collectCounters(ch, all, nil)
	c.send(ch, c.unroutable, prometheus.CounterValue, float64(all.ReturnUnroutable), "returned")
	c.send(ch, c.unroutable, prometheus.CounterValue, float64(all.DropUnroutable), "dropped")
	c.send(ch, c.consumers, prometheus.GaugeValue, float64(consumers))
	logins := c.s.b.LoginFailures()
	for _, door := range loginDoors {
		c.send(ch, c.loginFailed, prometheus.CounterValue, float64(logins.Failed[door]), door)
		c.send(ch, c.loginThrottled, prometheus.CounterValue, float64(logins.Throttled[door]), door)
	}
	var open []*broker.Connection
	if c.s.conns != nil {
		open = c.s.conns.Connections()
	}
	chans := 0
	for _, conn := range open {
		chans += len(conn.ChannelInfos())
	}
	c.send(ch, c.connections, prometheus.GaugeValue, float64(len(open)))
	c.send(ch, c.channels, prometheus.GaugeValue, float64(chans))
	if dir := c.s.cfg.DataDir; dir != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			c.send(ch, c.diskFree, prometheus.GaugeValue, float64(st.Bavail)*float64(st.Bsize))
		}
	}
	c.send(ch, c.storeFenced, prometheus.GaugeValue, float64(b2i(c.s.b.Fenced() != nil)))
	c.collectRabbit(ch, qs, open)
}

// metricsHandler serves /metrics, or with perObject /metrics/per-object.
func (s *Server) metricsHandler(perObject bool) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newBrokerCollector(s, perObject), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// ContinueOnError: a sample that fails (two names that label the
	// same once made valid UTF-8) costs that sample, not the scrape.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog2promLogger{s}, ErrorHandling: promhttp.ContinueOnError})
}

// slog2promLogger adapts the server's logger to promhttp's.
type slog2promLogger struct{ s *Server }

func (l slog2promLogger) Println(v ...any) { l.s.log.Error("metrics", "err", v) }
