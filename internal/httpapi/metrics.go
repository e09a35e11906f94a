package httpapi

// /metrics: Prometheus text, gathered at scrape time from the broker's
// listings (a collector, not counters copied from elsewhere), plus the Go
// runtime's and the process's collectors. Each Server has its own
// registry: no global state.

import (
	"net/http"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type brokerCollector struct {
	s *Server

	queueMessages  *prometheus.Desc
	queueBytes     *prometheus.Desc
	queueConsumers *prometheus.Desc
	queueOldest    *prometheus.Desc
	connections    *prometheus.Desc
	channels       *prometheus.Desc
	consumers      *prometheus.Desc
	diskFree       *prometheus.Desc
	queues         *prometheus.Desc
}

func newBrokerCollector(s *Server) *brokerCollector {
	return &brokerCollector{
		s: s,
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
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueMessages, c.queueBytes, c.queueConsumers, c.queueOldest, c.connections,
		c.channels, c.consumers, c.queues, c.diskFree} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	qs, _ := c.s.b.Queues("")
	consumers := 0
	for _, q := range qs {
		for _, st := range []struct {
			name string
			n    int
		}{{"ready", q.Ready}, {"unacked", q.Unacked}, {"delayed", q.Delayed}} {
			ch <- prometheus.MustNewConstMetric(c.queueMessages, prometheus.GaugeValue, float64(st.n), q.VHost, q.Name, st.name)
		}
		ch <- prometheus.MustNewConstMetric(c.queueBytes, prometheus.GaugeValue, float64(q.ReadyBytes), q.VHost, q.Name)
		ch <- prometheus.MustNewConstMetric(c.queueConsumers, prometheus.GaugeValue, float64(q.Consumers), q.VHost, q.Name)
		consumers += q.Consumers
		if t, ok := c.s.b.OldestPublished(q); ok {
			age := c.s.cfg.Now().Sub(t).Seconds()
			ch <- prometheus.MustNewConstMetric(c.queueOldest, prometheus.GaugeValue, max(age, 0), q.VHost, q.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.queues, prometheus.GaugeValue, float64(len(qs)))
	ch <- prometheus.MustNewConstMetric(c.consumers, prometheus.GaugeValue, float64(consumers))
	conns, chans := 0, 0
	if c.s.conns != nil {
		for _, conn := range c.s.conns.Connections() {
			conns++
			chans += len(conn.ChannelInfos())
		}
	}
	ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(conns))
	ch <- prometheus.MustNewConstMetric(c.channels, prometheus.GaugeValue, float64(chans))
	if dir := c.s.cfg.DataDir; dir != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			ch <- prometheus.MustNewConstMetric(c.diskFree, prometheus.GaugeValue, float64(st.Bavail)*float64(st.Bsize))
		}
	}
}

func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newBrokerCollector(s), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog2promLogger{s}})
}

// slog2promLogger adapts the server's logger to promhttp's.
type slog2promLogger struct{ s *Server }

func (l slog2promLogger) Println(v ...any) { l.s.log.Error("metrics", "err", v) }
