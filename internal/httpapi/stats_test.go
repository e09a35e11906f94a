package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/httpapi"
)

// traffic drives real AMQP traffic: 5 messages into "work" (dead letters
// to "dlq"); a consumer acks 3, nacks one with requeue (then acks its
// redelivery) and rejects one into "dlq"; one publish goes nowhere.
func traffic(t *testing.T, e *testEnv) {
	t.Helper()
	_, ch := e.amqpChannel(t)
	for _, q := range []struct {
		name string
		args amqp.Table
	}{{"dlq", nil}, {"work", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}}} {
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, q.args); err != nil {
			t.Fatalf("declare %s: %v", q.name, err)
		}
	}
	msgs := make([]amqp.Publishing, 5)
	for i := range msgs {
		msgs[i] = amqp.Publishing{Body: []byte(strconv.Itoa(i))}
	}
	publishConfirmed(t, ch, "", "work", msgs...)
	publishConfirmed(t, ch, "", "nowhere", amqp.Publishing{Body: []byte("lost")})

	deliveries, err := ch.Consume("work", "c", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	timeout := time.After(10 * time.Second)
	for settled := 0; settled < 6; settled++ {
		var d amqp.Delivery
		select {
		case d = <-deliveries:
		case <-timeout:
			t.Fatalf("only %d deliveries settled", settled)
		}
		switch {
		case d.Redelivered || string(d.Body) < "3":
			err = d.Ack(false)
		case string(d.Body) == "3":
			err = d.Nack(false, true)
		default:
			err = d.Reject(false)
		}
		if err != nil {
			t.Fatalf("settle %s: %v", d.Body, err)
		}
	}
	if err := ch.Cancel("c", false); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	waitQueue(t, e.c, "dlq", func(q api.Queue) bool { return q.MessagesReady == 1 })
	waitQueue(t, e.c, "work", func(q api.Queue) bool { return q.MessageStats.Ack == 4 })
}

// waitQueue polls the queue until cond holds (with a deadline).
func waitQueue(t *testing.T, c *api.Client, name string, cond func(api.Queue) bool) api.Queue {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := c.Queue(context.Background(), "/", name)
		if err != nil {
			t.Fatalf("queue %s: %v", name, err)
		}
		if cond(q) {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s never met the condition: %+v", name, q)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scrape reads /metrics into series → value ("name{labels}" as printed).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsCountAMQPTraffic(t *testing.T) {
	e := start(t)
	traffic(t, e)
	got := scrape(t, e.url)
	want := map[string]float64{
		`sluice_messages_published_total`:                                                     6,
		`sluice_messages_delivered_total`:                                                     6,
		`sluice_messages_redelivered_total`:                                                   1,
		`sluice_messages_acked_total`:                                                         4,
		`sluice_messages_nacked_total`:                                                        2,
		`sluice_messages_expired_total`:                                                       0,
		`sluice_messages_dead_lettered_total{reason="rejected"}`:                              1,
		`sluice_messages_dead_lettered_total{reason="expired"}`:                               0,
		`sluice_messages_unroutable_total{outcome="dropped"}`:                                 1,
		`sluice_queue_messages_published_total{queue="work",vhost="/"}`:                       5,
		`sluice_queue_messages_delivered_total{queue="work",vhost="/"}`:                       6,
		`sluice_queue_messages_acked_total{queue="work",vhost="/"}`:                           4,
		`sluice_queue_messages_nacked_total{queue="work",vhost="/"}`:                          2,
		`sluice_queue_messages_redelivered_total{queue="work",vhost="/"}`:                     1,
		`sluice_queue_messages_dead_lettered_total{queue="work",reason="rejected",vhost="/"}`: 1,
		`sluice_queue_messages_published_total{queue="dlq",vhost="/"}`:                        1,
		`sluice_queue_messages_delivered_total{queue="dlq",vhost="/"}`:                        0,
		`sluice_queue_messages{queue="dlq",state="ready",vhost="/"}`:                          1,
		`sluice_connections`:                                                                  1,
		`sluice_channels`:                                                                     1,
	}
	for series, w := range want {
		g, ok := got[series]
		if !ok {
			t.Errorf("%s missing", series)
			continue
		}
		if g != w {
			t.Errorf("%s = %v, want %v", series, g, w)
		}
	}
	if got["process_resident_memory_bytes"] <= 0 {
		t.Errorf("process_resident_memory_bytes = %v, want > 0", got["process_resident_memory_bytes"])
	}
}

func TestMessageStatsOverHTTP(t *testing.T) {
	e := start(t)
	traffic(t, e)
	ctx := context.Background()
	q, err := e.c.Queue(ctx, "/", "work")
	if err != nil {
		t.Fatal(err)
	}
	ms := q.MessageStats
	if ms.Publish != 5 || ms.Deliver != 6 || ms.DeliverGet != 6 || ms.Redeliver != 1 || ms.Ack != 4 || ms.Nack != 2 ||
		ms.DeadLetter != 1 || ms.DeadLetterByReason["rejected"] != 1 {
		t.Errorf("queue work message_stats = %+v", ms)
	}
	o, err := e.c.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.MessageStats.Publish != 6 || o.MessageStats.DropUnroutable != 1 || o.MessageStats.Ack != 4 {
		t.Errorf("overview message_stats = %+v", o.MessageStats)
	}
	xs, err := e.c.Exchanges(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.Name == "" && (x.MessageStats.PublishIn != 6 || x.MessageStats.PublishOut != 5) {
			// 5 to work, 1 dropped; the dead letter went through the
			// default exchange inside the broker, not as a publish.
			t.Errorf("default exchange message_stats = %+v, want publish_in 6, publish_out 5", x.MessageStats)
		}
	}
	var chans []api.Channel
	if err := e.c.Do(ctx, http.MethodGet, "/api/channels", nil, nil, &chans); err != nil {
		t.Fatal(err)
	}
	if len(chans) != 1 {
		t.Fatalf("channels = %+v, want the traffic's one", chans)
	}
	if cs := chans[0].MessageStats; cs.Publish != 6 || cs.Deliver != 5+1 || cs.Redeliver != 1 || cs.Ack != 4 || cs.Nack != 2 ||
		cs.DropUnroutable != 1 {
		t.Errorf("channel message_stats = %+v", cs)
	}
	cs, err := e.c.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// At least the protocol header and the five bodies came in; the
	// handshake and six deliveries went out.
	if len(cs) != 1 || cs[0].RecvOct < 8+5 || cs[0].SendOct < 6*8 {
		t.Errorf("connections = %+v, want one with recv_oct and send_oct counted", cs)
	}
	before := cs[0].RecvOct
	_, ch2 := e.amqpChannel(t)
	publishConfirmed(t, ch2, "", "dlq", amqp.Publishing{Body: make([]byte, 1000)})
	cs, err = e.c.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var grew bool
	for _, c := range cs {
		grew = grew || c.RecvOct >= 1000
	}
	if !grew || before == 0 {
		t.Errorf("no connection counted a 1000-byte publish: %+v", cs)
	}
	// RabbitMQ's JSON names, as tools read them.
	_, body := e.raw(t, http.MethodGet, "/api/queues/%2F/work", "")
	for _, field := range []string{`"publish":5`, `"publish_details":{"rate":`, `"deliver_get":6`, `"redeliver":1`,
		`"ack":4`, `"ack_details":{"rate":`} {
		if !bytes.Contains(body, []byte(field)) {
			t.Errorf("queue JSON lacks %s: %s", field, body)
		}
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Rates are the counters' differences between the last two samples over
// the time between them.
func TestMessageStatsRates(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	e := startWith(t, func(c *httpapi.Config) {
		c.Now = clock.Now
		c.SampleInterval = 0 // the test samples
	})
	ctx := context.Background()
	declare(t, e.c, "r", nil)
	e.srv.SampleRates()
	_, ch := e.amqpChannel(t)
	msgs := make([]amqp.Publishing, 10)
	publishConfirmed(t, ch, "", "r", msgs...)
	for range 4 {
		if _, ok, err := ch.Get("r", true); err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
	}
	clock.advance(5 * time.Second)
	e.srv.SampleRates()

	q, err := e.c.Queue(ctx, "/", "r")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  api.Rate
		want float64
	}{
		{"queue publish", q.MessageStats.PublishDetails, 2},
		{"queue get_no_ack", q.MessageStats.GetNoAckDetails, 0.8},
		{"queue deliver_get", q.MessageStats.DeliverGetDetails, 0.8},
		{"queue ack", q.MessageStats.AckDetails, 0},
	}
	o, err := e.c.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests = append(tests, struct {
		name string
		got  api.Rate
		want float64
	}{"overview publish", o.MessageStats.PublishDetails, 2})
	for _, tt := range tests {
		if tt.got.Rate != tt.want {
			t.Errorf("%s rate = %v, want %v", tt.name, tt.got.Rate, tt.want)
		}
	}

	// Nothing happens in the next interval: the rates fall to 0.
	clock.advance(5 * time.Second)
	e.srv.SampleRates()
	if q, err = e.c.Queue(ctx, "/", "r"); err != nil {
		t.Fatal(err)
	}
	if r := q.MessageStats.PublishDetails.Rate; r != 0 || q.MessageStats.Publish != 10 {
		t.Errorf("idle interval: publish %d at rate %v, want 10 at 0", q.MessageStats.Publish, r)
	}
}
