package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

// openOn opens a broker on st with clock, closed by t.Cleanup.
func openOn(t *testing.T, st store.Store, clock *fakeClock) *Broker {
	t.Helper()
	cfg := testConfig()
	cfg.Now = clock.Now
	b, err := Open(cfg, st)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func delayedMsg(exchange, key, body string, delay int64) *message.Message {
	m := newMsg(exchange, key, body, true)
	m.Properties.Headers = message.Table{"x-delay": delay}
	m.Properties.Flags |= message.FlagHeaders
	return m
}

// getBody gets one message with ack and returns its body ("" for none).
func (c *testClient) getBody(queue string) string {
	c.t.Helper()
	d := c.get(queue, true)
	if d == nil {
		return ""
	}
	return string(d.Body)
}

// The scheduler holds a bounded window of the earliest delays in memory
// and reads the rest back from the store, releasing in due order.
func TestDelayWindowReleasesInDueOrder(t *testing.T) {
	clock := newFakeClock()
	b := openOn(t, memstore.New(), clock)
	b.env.delays.mu.Lock()
	b.env.delays.window = 4
	b.env.delays.mu.Unlock()
	c := newClient(t, b)
	c.declareQueue("q", true, nil)
	delays := rand.Perm(40)
	for _, d := range delays {
		c.publishMsg(delayedMsg("", "q", fmt.Sprint(d), int64(1000+d*10)))
	}
	if n := b.env.delays.pendingLen(); n > 4 {
		t.Fatalf("window holds %d entries, want at most 4", n)
	}
	if got := c.getBody("q"); got != "" {
		t.Fatalf("got %q before any delay passed", got)
	}
	clock.advance(time.Second + 195*time.Millisecond) // due: delays 0..19
	b.env.delays.releaseDue()
	var got []string
	waitFor(t, func() bool {
		for s := c.getBody("q"); s != ""; s = c.getBody("q") {
			got = append(got, s)
		}
		return len(got) == 20
	})
	clock.advance(time.Hour)
	b.env.delays.releaseDue()
	waitFor(t, func() bool {
		for s := c.getBody("q"); s != ""; s = c.getBody("q") {
			got = append(got, s)
		}
		return len(got) == 40
	})
	for i, s := range got {
		if s != fmt.Sprint(i) {
			t.Fatalf("release order %v", got)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Delivery counts, retry waits and delayed publishes survive a restart.
func TestRestartKeepsCountsDelaysAndWaits(t *testing.T) {
	clock := newFakeClock()
	st := memstore.New()
	b1, err := Open(func() Config { c := testConfig(); c.Now = clock.Now; return c }(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b1)
	c.declareQueue("retry", true, message.Table{"x-retry-backoff": []any{int32(10_000)}})
	c.declareQueue("later", true, nil)
	c.declareQueue("counted", true, nil)
	c.publish("", "retry", "r", true)
	c.publish("", "counted", "c", true)
	c.publishMsg(delayedMsg("", "later", "l", 5_000))
	if err := c.ch.Nack(c.get("retry", false).DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	c.get("counted", false)
	c.ch.Close() // returns "counted" (count 1)
	c = c.channel(2)
	c.get("counted", false) // delivered twice, unacked at the restart
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b2 := openOn(t, st, clock)
	c2 := newClient(t, b2)
	q, _ := b2.lookupQueue("/", "retry")
	if n := q.delayedCount(); n != 1 {
		t.Fatalf("retry wait after restart: %d delayed", n)
	}
	if s := c2.getBody("retry"); s != "" {
		t.Fatalf("waiting message delivered early: %q", s)
	}
	d := c2.get("counted", true)
	if d == nil || !d.Redelivered || d.Properties.Headers["x-delivery-count"] != int64(2) {
		t.Fatalf("counted after restart: %+v", d)
	}
	clock.advance(6 * time.Second)
	b2.env.delays.releaseDue()
	waitFor(t, func() bool { return c2.getBody("later") == "l" })
	if s := c2.getBody("retry"); s != "" {
		t.Fatalf("retry released at 6s: %q", s)
	}
	clock.advance(5 * time.Second)
	b2.env.delays.releaseDue()
	var r *Delivery
	waitFor(t, func() bool { r = c2.get("retry", true); return r != nil })
	if r.Properties.Headers["x-delivery-count"] != int64(1) {
		t.Fatalf("retried message headers %v", r.Properties.Headers)
	}
}

// x-death building: a new (queue, reason) goes first; a repeated one
// grows its count and moves to the front, keeping its first time.
func TestDeadLetterMessageXDeath(t *testing.T) {
	q := &queue{name: "work"}
	q.setOpts(QueueOptions{HasDeadLetter: true, DeadLetterExchange: "dlx"})
	t0 := time.Unix(1000, 500)
	m := &message.Message{Exchange: "in", RoutingKey: "rk", Properties: message.Properties{
		Flags: message.FlagExpiration | message.FlagHeaders, Expiration: "5000",
		Headers: message.Table{"CC": []any{"c1"}, "BCC": []any{"b1"}}}}
	d1 := deadLetterMessage(m, q, reasonExpired, t0)
	want1 := message.Table{"count": int64(1), "reason": "expired", "queue": "work", "time": time.Unix(1000, 0).UTC(),
		"exchange": "in", "routing-keys": []any{"rk", "c1"}, "original-expiration": "5000"}
	if got := d1.Properties.Headers["x-death"]; !reflect.DeepEqual(got, []any{want1}) {
		t.Fatalf("x-death %#v", got)
	}
	if d1.Properties.Flags&message.FlagExpiration != 0 || d1.Properties.Headers["CC"] == nil || d1.Properties.Headers["BCC"] != nil {
		t.Fatalf("expiration or BCC kept, or CC dropped without a routing key: %+v", d1.Properties)
	}
	if d1.Exchange != "dlx" || d1.RoutingKey != "rk" {
		t.Fatalf("dead letter goes to %q/%q", d1.Exchange, d1.RoutingKey)
	}
	other := &queue{name: "other"}
	other.setOpts(QueueOptions{HasDeadLetter: true, DeadLetterExchange: "dlx",
		HasDeadLetterRoutingKey: true, DeadLetterRoutingKey: "dead"})
	d2 := deadLetterMessage(d1, other, reasonRejected, t0.Add(time.Minute))
	if d2.Properties.Headers["CC"] != nil {
		t.Fatalf("CC kept under a dead-letter routing key")
	}
	d3 := deadLetterMessage(d2, q, reasonExpired, t0.Add(time.Hour))
	deaths := d3.Properties.Headers["x-death"].([]any)
	if len(deaths) != 2 {
		t.Fatalf("x-death %#v", deaths)
	}
	first := deaths[0].(message.Table)
	if first["queue"] != "work" || first["count"] != int64(2) || first["time"] != want1["time"] {
		t.Fatalf("grown entry %#v", first)
	}
	if deaths[1].(message.Table)["routing-keys"].([]any)[0] != "rk" || d2.RoutingKey != "dead" {
		t.Fatalf("second entry %#v / routing key %q", deaths[1], d2.RoutingKey)
	}
	h := d3.Properties.Headers
	if h["x-first-death-queue"] != "work" || h["x-first-death-reason"] != "expired" || h["x-last-death-queue"] != "work" {
		t.Fatalf("first/last death headers %v", h)
	}
	if h2 := d2.Properties.Headers; h2["x-last-death-queue"] != "other" || h2["x-last-death-reason"] != "rejected" ||
		h2["x-first-death-queue"] != "work" {
		t.Fatalf("after second death %v", h2)
	}
}

func TestIsDeathCycle(t *testing.T) {
	d := func(q, reason string) any { return message.Table{"queue": q, "reason": reason} }
	tests := []struct {
		name   string
		target string
		deaths []any
		want   bool
	}{
		{"never died there", "a", []any{d("b", "expired")}, false},
		{"expired back into itself", "a", []any{d("a", "expired")}, true},
		{"automatic loop through b", "a", []any{d("b", "expired"), d("a", "maxlen")}, true},
		{"a rejection in the loop", "a", []any{d("b", "rejected"), d("a", "expired")}, false},
		{"rejected in the target itself", "a", []any{d("b", "expired"), d("a", "rejected")}, false},
		{"an older rejection beyond the loop", "a", []any{d("a", "expired"), d("c", "rejected")}, true},
	}
	for _, tt := range tests {
		if got := isDeathCycle(tt.target, tt.deaths); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseBackoff(t *testing.T) {
	tests := []struct {
		in      any
		want    []int64
		wantErr bool
	}{
		{[]any{int32(100), int64(2000)}, []int64{100, 2000}, false},
		{"300ms, 5s,30s,2m", []int64{300, 5000, 30000, 120000}, false},
		{"soon", nil, true},
		{[]any{"x"}, nil, true},
		{[]any{int32(-1)}, nil, true},
		{[]any{}, nil, true},
		{int32(5), nil, true},
	}
	for _, tt := range tests {
		got, err := parseBackoff(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseBackoff(%#v) = %v, %v", tt.in, got, err)
		}
	}
	q := &queue{}
	q.setOpts(QueueOptions{RetryBackoff: []int64{100, 1000}, RetryJitter: 0.5})
	for n := uint16(1); n < 5; n++ {
		base := []int64{100, 1000}[min(int(n), 2)-1]
		if d := q.backoffFor(n); d < base/2 || d > base*3/2 {
			t.Errorf("backoff of return %d = %d, want within ±50%% of %d", n, d, base)
		}
	}
}

// A consumer timeout returns the delivery (counted) and keeps the channel;
// the late ack is ignored, also after the message went out again.
func TestConsumerTimeoutFakeClock(t *testing.T) {
	clock := newFakeClock()
	b := openOn(t, memstore.New(), clock)
	c := newClient(t, b)
	c.declareQueue("slow", true, message.Table{"x-consumer-timeout": int32(1000)})
	c.publish("", "slow", "m", true)
	first := c.get("slow", false)
	clock.advance(999 * time.Millisecond)
	b.housekeep()
	if d := c.get("slow", false); d != nil {
		t.Fatalf("taken back before the timeout")
	}
	clock.advance(2 * time.Millisecond)
	b.housekeep()
	second := c.get("slow", false)
	if second == nil || second.Properties.Headers["x-delivery-count"] != int64(1) {
		t.Fatalf("after the timeout: %+v", second)
	}
	if err := c.ch.Ack(first.DeliveryTag, false); err != nil {
		t.Fatalf("late ack: %v", err)
	}
	q, _ := b.lookupQueue("/", "slow")
	if qi := q.info(); qi.Unacked != 1 {
		t.Fatalf("late ack settled the redelivery: %+v", qi)
	}
	if err := c.ch.Ack(second.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
}
