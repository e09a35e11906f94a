package httpapi

// Metrics under RabbitMQ's names, as the rabbitmq_prometheus plugin of
// RabbitMQ 3.10 exports them, so that RabbitMQ's Grafana dashboards and
// alert rules work against Sluice unchanged. /metrics carries the
// aggregated form (one sample per metric for the whole node, RabbitMQ's
// default); /metrics/per-object adds the per-queue samples with vhost and
// queue labels. Every sample joins on rabbitmq_identity_info by instance,
// as the dashboards' queries do. What RabbitMQ has no name for (delayed
// messages, dead letters by reason, validation) stays under sluice_*.
//
// The channel counters (rabbitmq_channel_messages_*_total) are counted
// broker-wide since the start, not summed over the channels open now as
// RabbitMQ does, so rate() over them never goes backwards when a channel
// closes.

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicemq/sluice/internal/broker"
)

// rabbitDescs are the descriptions of the RabbitMQ-named metrics.
type rabbitDescs struct {
	identity, build *prometheus.Desc

	// Aggregated gauges of what is open or queued now.
	gauges map[string]*prometheus.Desc
	// Counters, each read from the broker's counters.
	counters []rabbitCounter
	// Per-queue gauges (per-object only), which replace the aggregated
	// gauges of the same names there.
	queueGauges map[string]*prometheus.Desc
}

type rabbitCounter struct {
	desc  *prometheus.Desc
	value func(m broker.MessageStats, o broker.ObjectStats) uint64
}

// perQueueGauges are the gauges /metrics/per-object reports per queue.
var perQueueGauges = []string{"rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked",
	"rabbitmq_queue_messages", "rabbitmq_queue_messages_ready_bytes", "rabbitmq_queue_consumers"}

// globalLabels are the labels of the rabbitmq_global_* counters.
var globalLabels = prometheus.Labels{"protocol": "amqp091"}

func newRabbitDescs() *rabbitDescs {
	d := &rabbitDescs{
		identity: prometheus.NewDesc("rabbitmq_identity_info", "Node and cluster the samples come from.",
			[]string{"rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"}, nil),
		build: prometheus.NewDesc("rabbitmq_build_info", "Version of the broker.",
			[]string{"rabbitmq_version", "product", "prometheus_plugin_version", "prometheus_client_version", "erlang_version"}, nil),
		gauges:      map[string]*prometheus.Desc{},
		queueGauges: map[string]*prometheus.Desc{},
	}
	help := map[string]string{
		"rabbitmq_queue_messages_ready":             "Messages ready to be delivered to consumers.",
		"rabbitmq_queue_messages_unacked":           "Messages delivered to consumers but not yet acknowledged.",
		"rabbitmq_queue_messages":                   "Ready and unacknowledged messages.",
		"rabbitmq_queue_messages_ready_bytes":       "Body bytes of ready messages.",
		"rabbitmq_queue_consumers":                  "Consumers of queues.",
		"rabbitmq_queues":                           "Queues.",
		"rabbitmq_connections":                      "Open connections.",
		"rabbitmq_channels":                         "Open channels.",
		"rabbitmq_consumers":                        "Consumers.",
		"rabbitmq_channel_consumers":                "Consumers on channels.",
		"rabbitmq_channel_messages_unconfirmed":     "Published messages not yet confirmed to their publisher.",
		"rabbitmq_channel_messages_unacked":         "Delivered messages not yet acknowledged, by channel.",
		"rabbitmq_process_resident_memory_bytes":    "Memory the broker uses, as its memory alarm measures it.",
		"rabbitmq_resident_memory_limit_bytes":      "Memory watermark: publishers are blocked above it.",
		"rabbitmq_disk_space_available_bytes":       "Free disk space where the data directory is.",
		"rabbitmq_disk_space_available_limit_bytes": "Free disk watermark: publishers are blocked below it.",
		"rabbitmq_process_open_fds":                 "Open file descriptors.",
		"rabbitmq_process_max_fds":                  "Limit on open file descriptors.",
		"rabbitmq_process_open_tcp_sockets":         "Open client connections.",
		"rabbitmq_process_max_tcp_sockets":          "Limit on client connections (the file descriptor limit).",
		"rabbitmq_alarms_memory_used_watermark":     "1 while the memory alarm is raised.",
		"rabbitmq_alarms_free_disk_space_watermark": "1 while the disk alarm is raised.",
		"rabbitmq_alarms_file_descriptor_limit":     "1 while the file descriptor limit is reached.",
		"rabbitmq_global_publishers":                "Channels that published since they opened.",
		"rabbitmq_global_consumers":                 "Consumers.",
	}
	for name, h := range help {
		d.gauges[name] = prometheus.NewDesc(name, h, nil, nil)
	}
	for _, name := range perQueueGauges {
		d.queueGauges[name] = prometheus.NewDesc(name, help[name], []string{"vhost", "queue"}, nil)
	}
	counter := func(name, help string, labels prometheus.Labels, value func(broker.MessageStats, broker.ObjectStats) uint64) {
		d.counters = append(d.counters, rabbitCounter{prometheus.NewDesc(name, help, nil, labels), value})
	}
	msg := func(f func(broker.MessageStats) uint64) func(broker.MessageStats, broker.ObjectStats) uint64 {
		return func(m broker.MessageStats, _ broker.ObjectStats) uint64 { return f(m) }
	}
	obj := func(f func(broker.ObjectStats) uint64) func(broker.MessageStats, broker.ObjectStats) uint64 {
		return func(_ broker.MessageStats, o broker.ObjectStats) uint64 { return f(o) }
	}
	published := msg(func(m broker.MessageStats) uint64 { return m.Publish })
	routed := msg(func(m broker.MessageStats) uint64 { return m.Publish - m.ReturnUnroutable - m.DropUnroutable })
	confirmed := msg(func(m broker.MessageStats) uint64 { return m.Confirm })
	dropped := msg(func(m broker.MessageStats) uint64 { return m.DropUnroutable })
	returned := msg(func(m broker.MessageStats) uint64 { return m.ReturnUnroutable })
	deliverNoAck := msg(func(m broker.MessageStats) uint64 { return m.DeliverNoAck })
	deliverAck := msg(func(m broker.MessageStats) uint64 { return m.Deliver })
	getNoAck := msg(func(m broker.MessageStats) uint64 { return m.GetNoAck })
	getAck := msg(func(m broker.MessageStats) uint64 { return m.Get })
	getEmpty := msg(func(m broker.MessageStats) uint64 { return m.GetEmpty })
	redelivered := msg(func(m broker.MessageStats) uint64 { return m.Redeliver })
	acked := msg(func(m broker.MessageStats) uint64 { return m.Ack })
	// The rabbitmq_global_* names carry the same counters with a protocol
	// label, as RabbitMQ 3.9+ exports them.
	for _, c := range []struct {
		name, help string
		value      func(broker.MessageStats, broker.ObjectStats) uint64
	}{
		{"rabbitmq_channel_messages_published_total", "Messages published by clients.", published},
		{"rabbitmq_channel_messages_confirmed_total", "Messages confirmed to their publishers.", confirmed},
		{"rabbitmq_channel_messages_unroutable_dropped_total", "Unroutable messages dropped.", dropped},
		{"rabbitmq_channel_messages_unroutable_returned_total", "Unroutable messages returned to their publishers.", returned},
		{"rabbitmq_channel_messages_delivered_total", "Messages delivered to consumers in automatic acknowledgement mode.", deliverNoAck},
		{"rabbitmq_channel_messages_delivered_ack_total", "Messages delivered to consumers in manual acknowledgement mode.", deliverAck},
		{"rabbitmq_channel_messages_redelivered_total", "Messages redelivered to consumers or basic.get.", redelivered},
		{"rabbitmq_channel_messages_acked_total", "Deliveries acknowledged by consumers.", acked},
		{"rabbitmq_channel_get_total", "Messages fetched with basic.get in automatic acknowledgement mode.", getNoAck},
		{"rabbitmq_channel_get_ack_total", "Messages fetched with basic.get in manual acknowledgement mode.", getAck},
		{"rabbitmq_channel_get_empty_total", "basic.get operations that found nothing.", getEmpty},
		{"rabbitmq_queue_messages_published_total", "Messages routed to queues by publishers.", routed},
		{"rabbitmq_connections_opened_total", "Connections opened.", obj(func(o broker.ObjectStats) uint64 { return o.ConnectionsOpened })},
		{"rabbitmq_connections_closed_total", "Connections closed.", obj(func(o broker.ObjectStats) uint64 { return o.ConnectionsClosed })},
		{"rabbitmq_channels_opened_total", "Channels opened.", obj(func(o broker.ObjectStats) uint64 { return o.ChannelsOpened })},
		{"rabbitmq_channels_closed_total", "Channels closed.", obj(func(o broker.ObjectStats) uint64 { return o.ChannelsClosed })},
		{"rabbitmq_queues_declared_total", "Queues declared (not passively).", obj(func(o broker.ObjectStats) uint64 { return o.QueuesDeclared })},
		{"rabbitmq_queues_created_total", "Queues created.", obj(func(o broker.ObjectStats) uint64 { return o.QueuesCreated })},
		{"rabbitmq_queues_deleted_total", "Queues deleted.", obj(func(o broker.ObjectStats) uint64 { return o.QueuesDeleted })},
		{"rabbitmq_global_messages_received_total", "Messages received from publishers.", published},
		{"rabbitmq_global_messages_routed_total", "Messages routed to queues.", routed},
		{"rabbitmq_global_messages_confirmed_total", "Messages confirmed to publishers.", confirmed},
		{"rabbitmq_global_messages_unroutable_dropped_total", "Unroutable messages dropped.", dropped},
		{"rabbitmq_global_messages_unroutable_returned_total", "Unroutable messages returned.", returned},
		{"rabbitmq_global_messages_delivered_total", "Messages delivered to consumers and basic.get.",
			msg(func(m broker.MessageStats) uint64 { return m.DeliverGet() })},
		{"rabbitmq_global_messages_delivered_consume_auto_ack_total", "Consumer deliveries in automatic acknowledgement mode.", deliverNoAck},
		{"rabbitmq_global_messages_delivered_consume_manual_ack_total", "Consumer deliveries in manual acknowledgement mode.", deliverAck},
		{"rabbitmq_global_messages_delivered_get_auto_ack_total", "basic.get in automatic acknowledgement mode.", getNoAck},
		{"rabbitmq_global_messages_delivered_get_manual_ack_total", "basic.get in manual acknowledgement mode.", getAck},
		{"rabbitmq_global_messages_get_empty_total", "basic.get that found nothing.", getEmpty},
		{"rabbitmq_global_messages_redelivered_total", "Messages redelivered.", redelivered},
		{"rabbitmq_global_messages_acknowledged_total", "Deliveries acknowledged.", acked},
	} {
		var labels prometheus.Labels
		if strings.HasPrefix(c.name, "rabbitmq_global_") {
			labels = globalLabels
		}
		counter(c.name, c.help, labels, c.value)
	}
	return d
}

func (d *rabbitDescs) describe(ch chan<- *prometheus.Desc, perObject bool) {
	ch <- d.identity
	ch <- d.build
	for name, g := range d.gauges {
		if perObject && d.queueGauges[name] != nil {
			g = d.queueGauges[name]
		}
		ch <- g
	}
	for _, c := range d.counters {
		ch <- c.desc
	}
}

// collectRabbit sends the RabbitMQ-named samples; qs are the broker's
// queues, conns the connections open now.
func (c *brokerCollector) collectRabbit(ch chan<- prometheus.Metric, qs []broker.QueueInfo, conns []*broker.Connection) {
	d, s := c.rabbit, c.s
	send := func(desc *prometheus.Desc, vt prometheus.ValueType, v float64, labels ...string) {
		sendMetric(ch, s, desc, vt, v, labels...)
	}
	send(d.identity, prometheus.GaugeValue, 1, s.cfg.NodeName, s.cfg.ClusterName, s.cfg.ClusterName)
	send(d.build, prometheus.GaugeValue, 1, s.cfg.Version, "Sluice", "", "", "")

	var ready, unacked, readyBytes, consumers int64
	for _, q := range qs {
		ready += int64(q.Ready)
		unacked += int64(q.Unacked)
		readyBytes += int64(q.ReadyBytes)
		consumers += int64(q.Consumers)
		if c.perObject {
			for name, v := range map[string]int64{
				"rabbitmq_queue_messages_ready": int64(q.Ready), "rabbitmq_queue_messages_unacked": int64(q.Unacked),
				"rabbitmq_queue_messages": int64(q.Ready + q.Unacked), "rabbitmq_queue_messages_ready_bytes": int64(q.ReadyBytes),
				"rabbitmq_queue_consumers": int64(q.Consumers),
			} {
				send(d.queueGauges[name], prometheus.GaugeValue, float64(v), q.VHost, q.Name)
			}
		}
	}
	var chans, chanConsumers, chanUnacked, unconfirmed, publishers int64
	for _, conn := range conns {
		for _, info := range conn.ChannelInfos() {
			chans++
			chanConsumers += int64(info.Consumers)
			chanUnacked += int64(info.Unacked)
			unconfirmed += int64(info.Unconfirmed)
			if info.Stats.Publish > 0 {
				publishers++
			}
		}
	}
	node := s.nodeStatus()
	fdLimit := maxFDs()
	gauges := map[string]int64{
		"rabbitmq_queue_messages_ready": ready, "rabbitmq_queue_messages_unacked": unacked,
		"rabbitmq_queue_messages": ready + unacked, "rabbitmq_queue_messages_ready_bytes": readyBytes,
		"rabbitmq_queue_consumers": consumers, "rabbitmq_queues": int64(len(qs)),
		"rabbitmq_connections": int64(len(conns)), "rabbitmq_channels": chans,
		"rabbitmq_consumers": consumers, "rabbitmq_channel_consumers": chanConsumers,
		"rabbitmq_channel_messages_unconfirmed": unconfirmed, "rabbitmq_channel_messages_unacked": chanUnacked,
		"rabbitmq_process_resident_memory_bytes":    int64(node.MemoryUsed),
		"rabbitmq_resident_memory_limit_bytes":      int64(node.MemoryLimit),
		"rabbitmq_disk_space_available_bytes":       int64(node.DiskFree),
		"rabbitmq_disk_space_available_limit_bytes": int64(node.DiskFreeLimit),
		"rabbitmq_process_open_fds":                 int64(openFDs()),
		"rabbitmq_process_max_fds":                  fdLimit,
		"rabbitmq_process_open_tcp_sockets":         int64(len(conns)),
		"rabbitmq_process_max_tcp_sockets":          fdLimit,
		"rabbitmq_alarms_memory_used_watermark":     b2i(node.MemoryAlarm),
		"rabbitmq_alarms_free_disk_space_watermark": b2i(node.DiskAlarm),
		"rabbitmq_alarms_file_descriptor_limit":     b2i(fdLimit > 0 && int64(openFDs()) >= fdLimit),
		"rabbitmq_global_publishers":                publishers,
		"rabbitmq_global_consumers":                 consumers,
	}
	for name, v := range gauges {
		if c.perObject && d.queueGauges[name] != nil {
			continue
		}
		send(d.gauges[name], prometheus.GaugeValue, float64(v))
	}
	ms, os := s.b.MessageStats(), s.b.ObjectStats()
	for _, rc := range d.counters {
		send(rc.desc, prometheus.CounterValue, float64(rc.value(ms, os)))
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
