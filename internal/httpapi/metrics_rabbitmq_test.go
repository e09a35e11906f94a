package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/httpapi"
)

// dashboardMetrics are the metric names that RabbitMQ's published
// "RabbitMQ-Overview" Grafana dashboard queries, each joined on
// rabbitmq_identity_info.
var dashboardMetrics = []string{
	"rabbitmq_identity_info", "rabbitmq_build_info",
	"rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queues",
	"rabbitmq_connections", "rabbitmq_channels", "rabbitmq_channel_consumers",
	"rabbitmq_channel_messages_published_total", "rabbitmq_channel_messages_confirmed_total",
	"rabbitmq_channel_messages_unconfirmed", "rabbitmq_queue_messages_published_total",
	"rabbitmq_channel_messages_unroutable_dropped_total", "rabbitmq_channel_messages_unroutable_returned_total",
	"rabbitmq_channel_messages_delivered_total", "rabbitmq_channel_messages_delivered_ack_total",
	"rabbitmq_channel_messages_redelivered_total", "rabbitmq_channel_messages_acked_total",
	"rabbitmq_channel_get_total", "rabbitmq_channel_get_ack_total", "rabbitmq_channel_get_empty_total",
	"rabbitmq_resident_memory_limit_bytes", "rabbitmq_process_resident_memory_bytes",
	"rabbitmq_disk_space_available_bytes", "rabbitmq_process_max_fds", "rabbitmq_process_open_fds",
	"rabbitmq_process_max_tcp_sockets", "rabbitmq_process_open_tcp_sockets",
	"rabbitmq_queues_declared_total", "rabbitmq_queues_created_total", "rabbitmq_queues_deleted_total",
	"rabbitmq_channels_opened_total", "rabbitmq_channels_closed_total",
	"rabbitmq_connections_opened_total", "rabbitmq_connections_closed_total",
}

// scrapeFamilies reads and parses a metrics page.
func scrapeFamilies(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value is the one sample of an aggregated metric (with labels, the sample
// whose labels include them).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("%s missing", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("%s%v: no sample", name, labels)
	return 0
}

func TestMetricsInRabbitMQNames(t *testing.T) {
	e := startWith(t, func(c *httpapi.Config) {
		c.NodeName = "sluice@test"
		c.Node = func() httpapi.NodeStatus {
			return httpapi.NodeStatus{MemoryUsed: 100 << 20, MemoryLimit: 200 << 20, DiskFree: 5 << 30,
				DiskFreeLimit: 1 << 30, DiskAlarm: true}
		}
	})
	_, ch := e.amqpChannel(t)
	if _, err := ch.QueueDeclare("orders", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	msgs := make([]amqp.Publishing, 5)
	for i := range msgs {
		msgs[i] = amqp.Publishing{Body: []byte("x")}
	}
	publishConfirmed(t, ch, "", "orders", msgs...)
	if err := ch.Publish("", "nowhere", false, false, amqp.Publishing{Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	d, ok, err := ch.Get("orders", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ch.Get("orders", true); err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	// Three ready left; drain nothing more and ask an empty queue.
	if _, err := ch.QueueDeclare("empty", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ch.Get("empty", true); err != nil || ok {
		t.Fatalf("get of an empty queue: %v %v", ok, err)
	}
	waitFor(t, func() bool {
		return value(t, scrapeFamilies(t, e.url+"/metrics"), "rabbitmq_channel_messages_acked_total") == 1
	})

	fams := scrapeFamilies(t, e.url+"/metrics")
	for _, name := range dashboardMetrics {
		if fams[name] == nil || len(fams[name].Metric) == 0 {
			t.Errorf("%s: no samples", name)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rabbitmq_identity_info", []string{"rabbitmq_node", "sluice@test", "rabbitmq_cluster", "sluice"}, 1},
		{"rabbitmq_queue_messages_ready", nil, 3},
		{"rabbitmq_queue_messages_unacked", nil, 0},
		{"rabbitmq_queues", nil, 2},
		{"rabbitmq_queues_created_total", nil, 2},
		{"rabbitmq_connections", nil, 1},
		{"rabbitmq_connections_opened_total", nil, 1},
		{"rabbitmq_channels", nil, 1},
		{"rabbitmq_channel_messages_published_total", nil, 6},
		{"rabbitmq_channel_messages_confirmed_total", nil, 6},
		{"rabbitmq_channel_messages_unconfirmed", nil, 0},
		{"rabbitmq_channel_messages_unroutable_dropped_total", nil, 1},
		{"rabbitmq_queue_messages_published_total", nil, 5},
		{"rabbitmq_channel_get_ack_total", nil, 1},
		{"rabbitmq_channel_get_total", nil, 1},
		{"rabbitmq_channel_get_empty_total", nil, 1},
		{"rabbitmq_global_messages_received_total", []string{"protocol", "amqp091"}, 6},
		{"rabbitmq_resident_memory_limit_bytes", nil, 200 << 20},
		{"rabbitmq_process_resident_memory_bytes", nil, 100 << 20},
		{"rabbitmq_alarms_free_disk_space_watermark", nil, 1},
		{"rabbitmq_alarms_memory_used_watermark", nil, 0},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(t, fams, "rabbitmq_process_open_fds"); got < 1 {
		t.Errorf("rabbitmq_process_open_fds = %v", got)
	}
	// Sluice's own names stay beside them.
	if fams["sluice_queue_messages"] == nil {
		t.Error("sluice_queue_messages missing")
	}

	per := scrapeFamilies(t, e.url+"/metrics/per-object")
	if got := value(t, per, "rabbitmq_queue_messages_ready", "vhost", "/", "queue", "orders"); got != 3 {
		t.Errorf("per-object ready of orders = %v, want 3", got)
	}
	if got := value(t, per, "rabbitmq_queue_messages_ready", "queue", "empty"); got != 0 {
		t.Errorf("per-object ready of empty = %v, want 0", got)
	}
	if got := value(t, per, "rabbitmq_connections"); got != 1 {
		t.Errorf("per-object rabbitmq_connections = %v", got)
	}
}

// TestMetricsCountChurn: connections, channels and queues opened and
// closed are counted, as RabbitMQ's churn metrics.
func TestMetricsCountChurn(t *testing.T) {
	e := start(t)
	for range 3 {
		conn, ch := e.amqpChannel(t)
		if _, err := ch.QueueDeclare("", false, false, true, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		return value(t, scrapeFamilies(t, e.url+"/metrics"), "rabbitmq_queues_deleted_total") == 3
	})
	fams := scrapeFamilies(t, e.url+"/metrics")
	for name, want := range map[string]float64{
		"rabbitmq_connections_opened_total": 3, "rabbitmq_connections_closed_total": 3,
		"rabbitmq_channels_opened_total": 3, "rabbitmq_channels_closed_total": 3,
		"rabbitmq_queues_declared_total": 3, "rabbitmq_queues_created_total": 3, "rabbitmq_queues": 0,
	} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// waitFor polls cond for up to 5 s: metrics of a connection's close are
// counted when the broker has handled it, after the client returned.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
