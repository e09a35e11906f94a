package broker

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

// routeNames routes msg in vhost "/" and returns the queue names reached.
func routeNames(t *testing.T, b *Broker, msg *message.Message) []string {
	t.Helper()
	qs, _, err := b.vhosts["/"].route(msg)
	if err != nil {
		t.Fatalf("route: %v", err)
	}
	var names []string
	for _, q := range qs {
		names = append(names, q.name)
	}
	slices.Sort(names)
	return names
}

func TestTopicMatching(t *testing.T) {
	tests := []struct {
		binding, key string
		want         bool
	}{
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"*", "", false},
		{"#", "", true},
		{"#", "a.b.c", true},
		{"", "", true},
		{"", "a", false},
		{"a.#", "a", true},
		{"a.#", "a.b.c", true},
		{"#.a", "a", true},
		{"#.a", "x.y.a", true},
		{"#.a", "a.x", false},
		{"#.a.#", "x.a.y", true},
		{"#.a.#", "a", true},
		{"a.#.b", "a.b", true},
		{"a.#.b", "a.x.y.b", true},
		{"a.#.b", "a.x.y.c", false},
		{"a..b", "a..b", true},
		{"a.*.b", "a..b", true},
		{"*.*", "a.", true},
		{"*.*", ".", true},
		{"#.#", "a.b", true},
		{"*.#", "", false},
		{"*.#", "a", true},
		{"a.*.#", "a.b", true},
		{"a.*.#", "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.binding+"~"+tt.key, func(t *testing.T) {
			b := openBroker(t, nil)
			c := newClient(t, b)
			c.declareExchange("t", kindTopic, nil)
			c.declareQueue("q", false, nil)
			c.bind("t", "q", tt.binding, nil)
			got := len(routeNames(t, b, &message.Message{Exchange: "t", RoutingKey: tt.key})) == 1
			if got != tt.want {
				t.Errorf("binding %q key %q: routed %v, want %v", tt.binding, tt.key, got, tt.want)
			}
		})
	}
}

func TestTopicUnbindPrunes(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareExchange("t", kindTopic, nil)
	c.declareQueue("q", false, nil)
	c.bind("t", "q", "a.*.c", nil)
	if err := c.ch.UnbindQueue(Binding{Source: "t", Destination: "q", Key: "a.*.c"}); err != nil {
		t.Fatal(err)
	}
	if got := routeNames(t, b, &message.Message{Exchange: "t", RoutingKey: "a.b.c"}); len(got) != 0 {
		t.Fatalf("routed to %v after unbind", got)
	}
	if n := len(b.vhosts["/"].exchanges["t"].topic.children); n != 0 {
		t.Fatalf("trie keeps %d children after unbind", n)
	}
}

func TestHeadersMatching(t *testing.T) {
	headers := message.Table{"a": "1", "b": int32(2), "x-h": "x"}
	tests := []struct {
		name string
		args message.Table
		want bool
	}{
		{"all match", message.Table{"a": "1", "b": int64(2)}, true},
		{"all default mode", message.Table{"a": "1", "c": "3"}, false},
		{"all explicit missing", message.Table{"x-match": "all", "a": "1", "c": "3"}, false},
		{"any one matches", message.Table{"x-match": "any", "a": "1", "c": "3"}, true},
		{"any none matches", message.Table{"x-match": "any", "a": "2", "c": "3"}, false},
		{"void matches presence", message.Table{"a": nil}, true},
		{"void needs presence", message.Table{"z": nil}, false},
		{"x- args ignored in all", message.Table{"x-match": "all", "a": "1", "x-h": "other"}, true},
		{"x- args ignored in any", message.Table{"x-match": "any", "x-h": "x"}, false},
		{"all-with-x compares x-", message.Table{"x-match": "all-with-x", "a": "1", "x-h": "x"}, true},
		{"all-with-x mismatch", message.Table{"x-match": "all-with-x", "a": "1", "x-h": "y"}, false},
		{"any-with-x", message.Table{"x-match": "any-with-x", "x-h": "x", "q": "no"}, true},
		{"type class differs", message.Table{"b": "2"}, false},
		{"no args all", message.Table{}, true},
		{"no args any", message.Table{"x-match": "any"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBroker(t, nil)
			c := newClient(t, b)
			c.declareQueue("q", false, nil)
			c.bind("amq.headers", "q", "", tt.args)
			m := &message.Message{Exchange: "amq.headers"}
			m.Properties.Flags = message.FlagHeaders
			m.Properties.Headers = headers
			if got := len(routeNames(t, b, m)) == 1; got != tt.want {
				t.Errorf("args %v: routed %v, want %v", tt.args, got, tt.want)
			}
		})
	}
}

func TestHeadersInvalidXMatch(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", false, nil)
	err := c.ch.BindQueue(Binding{Source: "amq.match", Destination: "q", Args: message.Table{"x-match": "some"}})
	wantCode(t, err, PreconditionFailed, "")
}

func TestDirectFanoutAndDefault(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	for _, q := range []string{"q1", "q2", "q3"} {
		c.declareQueue(q, false, nil)
	}
	c.bind("amq.direct", "q1", "k", nil)
	c.bind("amq.direct", "q2", "k", nil)
	c.bind("amq.direct", "q3", "other", nil)
	c.bind("amq.fanout", "q1", "ignored", nil)
	c.bind("amq.fanout", "q3", "", nil)
	tests := []struct {
		exchange, key string
		want          []string
	}{
		{"amq.direct", "k", []string{"q1", "q2"}},
		{"amq.direct", "none", nil},
		{"amq.fanout", "anything", []string{"q1", "q3"}},
		{"", "q2", []string{"q2"}},
		{"", "missing", nil},
	}
	for _, tt := range tests {
		got := routeNames(t, b, &message.Message{Exchange: tt.exchange, RoutingKey: tt.key})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q/%q routed to %v, want %v", tt.exchange, tt.key, got, tt.want)
		}
	}
}

func TestExchangeToExchangeBindingsAndLoops(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareExchange("e1", kindFanout, nil)
	c.declareExchange("e2", kindFanout, nil)
	c.declareExchange("e3", kindDirect, nil)
	c.declareQueue("q", false, nil)
	c.declareQueue("r", false, nil)
	for _, bd := range []Binding{
		{Source: "e1", Destination: "e2"},
		{Source: "e2", Destination: "e1"}, // loop
		{Source: "e2", Destination: "e3"},
		{Source: "e1", Destination: "e3"}, // diamond
	} {
		if err := c.ch.BindExchange(bd); err != nil {
			t.Fatal(err)
		}
	}
	c.bind("e3", "q", "k", nil)
	c.bind("e1", "q", "", nil)
	c.bind("e2", "r", "", nil)
	got := routeNames(t, b, &message.Message{Exchange: "e1", RoutingKey: "k"})
	if want := []string{"q", "r"}; !slices.Equal(got, want) {
		t.Fatalf("routed to %v, want %v", got, want)
	}
	// Each queue receives the message once.
	c.consume("q", true)
	c.publish("e2", "k", "m", false)
	c.publish("", "q", "end", false)
	ds := c.out.waitDeliveries(t, 2)
	if got, want := bodies(ds), []string{"m", "end"}; !slices.Equal(got, want) {
		t.Fatalf("q got %v, want %v", got, want)
	}
}

func TestAlternateExchange(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareExchange("ae", kindFanout, nil)
	c.declareExchange("main", kindDirect, message.Table{"alternate-exchange": "ae"})
	c.declareQueue("bound", false, nil)
	c.declareQueue("unrouted", false, nil)
	c.bind("main", "bound", "k", nil)
	c.bind("ae", "unrouted", "", nil)
	if got := routeNames(t, b, &message.Message{Exchange: "main", RoutingKey: "k"}); !slices.Equal(got, []string{"bound"}) {
		t.Errorf("routable message went to %v", got)
	}
	if got := routeNames(t, b, &message.Message{Exchange: "main", RoutingKey: "x"}); !slices.Equal(got, []string{"unrouted"}) {
		t.Errorf("unroutable message went to %v", got)
	}
}

func TestPublishErrors(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	_, err := c.ch.Publish(newMsg("nope", "", "x", false), false, nil)
	wantCode(t, err, NotFound, "no exchange 'nope' in vhost '/'")
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "int", Type: kindFanout, Internal: true}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ch.Publish(newMsg("int", "", "x", false), false, nil)
	wantCode(t, err, AccessRefused, "")
	if c.publish("amq.direct", "nobody", "x", false) {
		t.Fatal("unroutable message reported routed")
	}
}

func TestFanoutToManyQueuesOnce(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	c.declareExchange("f1", kindFanout, nil)
	c.declareExchange("f2", kindFanout, nil)
	if err := c.ch.BindExchange(Binding{Source: "f1", Destination: "f2"}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 40 {
		name := fmt.Sprintf("q%02d", i)
		want = append(want, name)
		c.declareQueue(name, false, nil)
		c.bind("f1", name, "", nil)
		c.bind("f2", name, "", nil)
	}
	if got := routeNames(t, b, &message.Message{Exchange: "f1"}); !slices.Equal(got, want) {
		t.Fatalf("routed to %d queues, want %d once each: %v", len(got), len(want), got)
	}
}
