package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/message"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
)

// fakeOutlet records what the broker hands a channel.
type fakeOutlet struct {
	mu        sync.Mutex
	delivered []*Delivery
	cancelled []string
}

func (o *fakeOutlet) Deliver(d *Delivery) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delivered = append(o.delivered, decoded(d))
}

// decoded returns a copy of d with its properties decoded into
// Properties, for the tests to read (the broker sends stored properties
// encoded, RawProperties). Properties that do not decode are a broken
// record, which fails the test run.
func decoded(d *Delivery) *Delivery {
	if d == nil || d.RawProperties == nil {
		return d
	}
	c := *d
	p, err := d.Props()
	if err != nil {
		panic(fmt.Sprintf("delivery %d: properties do not decode: %v", d.DeliveryTag, err))
	}
	c.Properties = p
	return &c
}

func (o *fakeOutlet) ConsumerCancelled(tag string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cancelled = append(o.cancelled, tag)
}

func (o *fakeOutlet) deliveries() []*Delivery {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*Delivery(nil), o.delivered...)
}

func (o *fakeOutlet) cancels() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.cancelled...)
}

// waitDeliveries polls until the outlet has n deliveries (deliveries are
// asynchronous: the commit loop makes them).
func (o *fakeOutlet) waitDeliveries(t *testing.T, n int) []*Delivery {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds := o.deliveries()
		if len(ds) >= n {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d deliveries, want %d", len(ds), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.PasswordCost = access.MinCost // bcrypt still, at the cost tests can afford
	return cfg
}

func nil2store() store.Store { return memstore.New() }

func openBroker(t testing.TB, st store.Store) *Broker {
	t.Helper()
	if st == nil {
		st = memstore.New()
	}
	b, err := Open(testConfig(), st)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

type testClient struct {
	t    testing.TB
	b    *Broker
	conn *Connection
	ch   *Channel
	out  *fakeOutlet
}

func newClient(t testing.TB, b *Broker) *testClient {
	t.Helper()
	conn, err := b.Connect(ConnInfo{Name: t.Name(), User: "guest", VHost: "/"})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(conn.Close)
	c := &testClient{t: t, b: b, conn: conn, out: &fakeOutlet{}}
	c.ch = conn.Channel(1, c.out)
	return c
}

// channel opens another channel on the same connection.
func (c *testClient) channel(id uint16) *testClient {
	n := &testClient{t: c.t, b: c.b, conn: c.conn, out: &fakeOutlet{}}
	n.ch = c.conn.Channel(id, n.out)
	return n
}

func (c *testClient) declareQueue(name string, durable bool, args message.Table) string {
	c.t.Helper()
	st, err := c.ch.DeclareQueue(QueueDecl{Name: name, Durable: durable, Args: args})
	if err != nil {
		c.t.Fatalf("DeclareQueue %q: %v", name, err)
	}
	return st.Name
}

func (c *testClient) declareExchange(name, kind string, args message.Table) {
	c.t.Helper()
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: name, Type: kind, Args: args}); err != nil {
		c.t.Fatalf("DeclareExchange %q: %v", name, err)
	}
}

func (c *testClient) bind(exchange, queue, key string, args message.Table) {
	c.t.Helper()
	if err := c.ch.BindQueue(Binding{Source: exchange, Destination: queue, Key: key, Args: args}); err != nil {
		c.t.Fatalf("BindQueue %s->%s: %v", exchange, queue, err)
	}
}

// publish publishes and waits for done; it returns routed.
func (c *testClient) publish(exchange, key, body string, persistent bool) bool {
	c.t.Helper()
	return c.publishMsg(newMsg(exchange, key, body, persistent))
}

func (c *testClient) publishMsg(m *message.Message) bool {
	c.t.Helper()
	done := make(chan error, 1)
	routed, err := c.ch.Publish(m, false, func(err error) { done <- err })
	if err != nil {
		c.t.Fatalf("Publish: %v", err)
	}
	if err := <-done; err != nil {
		c.t.Fatalf("Publish done: %v", err)
	}
	return routed
}

func newMsg(exchange, key, body string, persistent bool) *message.Message {
	m := &message.Message{Exchange: exchange, RoutingKey: key, Body: []byte(body)}
	if persistent {
		m.Properties.Flags |= message.FlagDeliveryMode
		m.Properties.DeliveryMode = message.Persistent
	}
	return m
}

func (c *testClient) get(queue string, noAck bool) *Delivery {
	c.t.Helper()
	d, err := c.ch.Get(queue, noAck)
	if err != nil {
		c.t.Fatalf("Get %q: %v", queue, err)
	}
	return decoded(d)
}

func (c *testClient) consume(queue string, noAck bool) string {
	c.t.Helper()
	tag, err := c.ch.Consume(ConsumeRequest{Queue: queue, NoAck: noAck})
	if err != nil {
		c.t.Fatalf("Consume %q: %v", queue, err)
	}
	return tag
}

func bodies(ds []*Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// wantCode checks that err is a broker error with the code and reason.
func wantCode(t *testing.T, err error, code Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v %q", code, reason)
	}
	if got := CodeOf(err); got != code {
		t.Fatalf("got code %v (%v), want %v", got, err, code)
	}
	if reason != "" && err.Error() != reason {
		t.Fatalf("got reason\n  %q\nwant\n  %q", err.Error(), reason)
	}
}
