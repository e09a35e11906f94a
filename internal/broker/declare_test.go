package broker

import (
	"regexp"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/internal/message"
)

func TestExchangeDeclareRules(t *testing.T) {
	tests := []struct {
		name   string
		decl   ExchangeDecl
		code   Code
		reason string
	}{
		{"default exchange", ExchangeDecl{Name: "", Type: "direct"}, AccessRefused, "operation not permitted on the default exchange"},
		{"reserved prefix", ExchangeDecl{Name: "amq.x", Type: "direct"}, AccessRefused, "exchange name 'amq.x' contains reserved prefix 'amq.*'"},
		{"predeclared differs", ExchangeDecl{Name: "amq.direct", Type: "direct"}, PreconditionFailed,
			"inequivalent arg 'durable' for exchange 'amq.direct' in vhost '/': received 'false' but current is 'true'"},
		{"type checked before name", ExchangeDecl{Name: "", Type: "nope"}, CommandInvalid, "invalid exchange type 'nope'"},
		{"invalid type", ExchangeDecl{Name: "e", Type: "nope"}, CommandInvalid, "invalid exchange type 'nope'"},
		{"passive missing", ExchangeDecl{Name: "missing", Passive: true}, NotFound, "no exchange 'missing' in vhost '/'"},
		{"type differs", ExchangeDecl{Name: "ex", Type: "fanout"}, PreconditionFailed,
			"inequivalent arg 'type' for exchange 'ex' in vhost '/': received 'fanout' but current is 'direct'"},
		{"durable differs", ExchangeDecl{Name: "ex", Type: "direct", Durable: true}, PreconditionFailed,
			"inequivalent arg 'durable' for exchange 'ex' in vhost '/': received 'true' but current is 'false'"},
		{"auto-delete differs", ExchangeDecl{Name: "ex", Type: "direct", AutoDelete: true}, PreconditionFailed, ""},
		{"internal differs", ExchangeDecl{Name: "ex", Type: "direct", Internal: true}, PreconditionFailed, ""},
		{"alternate differs", ExchangeDecl{Name: "ex", Type: "direct", Args: message.Table{"alternate-exchange": "a"}}, PreconditionFailed,
			"inequivalent arg 'alternate-exchange' for exchange 'ex' in vhost '/': received the value 'a' of type 'longstr' but current is none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, openBroker(t, nil))
			c.declareExchange("ex", "direct", nil)
			wantCode(t, c.ch.DeclareExchange(tt.decl), tt.code, tt.reason)
		})
	}
	t.Run("equivalent redeclare and passive", func(t *testing.T) {
		c := newClient(t, openBroker(t, nil))
		c.declareExchange("ex", "direct", message.Table{"other": "ignored"})
		c.declareExchange("ex", "direct", nil)
		// An existing amq.* exchange may be redeclared equivalently.
		if err := c.ch.DeclareExchange(ExchangeDecl{Name: "amq.fanout", Type: "fanout", Durable: true}); err != nil {
			t.Errorf("equivalent redeclare of amq.fanout: %v", err)
		}
		for _, name := range []string{"ex", "amq.topic", "amq.match"} {
			if err := c.ch.DeclareExchange(ExchangeDecl{Name: name, Passive: true}); err != nil {
				t.Errorf("passive %q: %v", name, err)
			}
		}
	})
}

func TestExchangeDeleteRules(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	wantCode(t, c.ch.DeleteExchange("", false), AccessRefused, "operation not permitted on the default exchange")
	if err := c.ch.DeleteExchange("missing", false); err != nil {
		t.Fatalf("delete missing exchange: %v", err)
	}
	c.declareExchange("e", kindFanout, nil)
	c.declareQueue("q", false, nil)
	c.bind("e", "q", "", nil)
	wantCode(t, c.ch.DeleteExchange("e", true), PreconditionFailed, "exchange 'e' in vhost '/' in use")
	if err := c.ch.DeleteExchange("e", false); err != nil {
		t.Fatal(err)
	}
	if got := c.ch.vh.queues["q"].bindings; len(got) != 0 {
		t.Fatalf("queue keeps %d bindings after its exchange was deleted", len(got))
	}
	wantCode(t, c.ch.BindQueue(Binding{Source: "", Destination: "q"}), AccessRefused, "operation not permitted on the default exchange")
	wantCode(t, c.ch.BindQueue(Binding{Source: "e", Destination: "q"}), NotFound, "no exchange 'e' in vhost '/'")
	wantCode(t, c.ch.BindQueue(Binding{Source: "amq.direct", Destination: "nq"}), NotFound, "no queue 'nq' in vhost '/'")
}

func TestExchangeAutoDeleteOnLastUnbind(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "ad", Type: kindFanout, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	c.declareQueue("q1", false, nil)
	c.declareQueue("q2", false, nil)
	c.bind("ad", "q1", "", nil)
	c.bind("ad", "q2", "", nil)
	if err := c.ch.UnbindQueue(Binding{Source: "ad", Destination: "q1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.ch.DeclareExchange(ExchangeDecl{Name: "ad", Passive: true}); err != nil {
		t.Fatalf("auto-delete exchange gone with a binding left: %v", err)
	}
	if _, err := c.ch.DeleteQueue("q2", false, false); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.ch.DeclareExchange(ExchangeDecl{Name: "ad", Passive: true}), NotFound, "")
}

func TestQueueDeclareRules(t *testing.T) {
	tests := []struct {
		name   string
		decl   QueueDecl
		code   Code
		reason string
	}{
		{"reserved prefix", QueueDecl{Name: "amq.q"}, AccessRefused, "queue name 'amq.q' contains reserved prefix 'amq.*'"},
		{"passive missing", QueueDecl{Name: "nq", Passive: true}, NotFound, "no queue 'nq' in vhost '/'"},
		{"durable differs", QueueDecl{Name: "q", Durable: true}, PreconditionFailed,
			"inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'"},
		{"auto-delete differs", QueueDecl{Name: "q", AutoDelete: true}, PreconditionFailed,
			"inequivalent arg 'auto_delete' for queue 'q' in vhost '/': received 'true' but current is 'false'"},
		{"x-arg added", QueueDecl{Name: "q", Args: message.Table{"x-max-length": int32(10)}}, PreconditionFailed,
			"inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received the value '10' of type 'signedint' but current is none"},
		{"exclusive differs", QueueDecl{Name: "q", Exclusive: true}, ResourceLocked, ""},
		{"negative max-length", QueueDecl{Name: "n", Args: message.Table{"x-max-length": int32(-1)}}, PreconditionFailed,
			"invalid arg 'x-max-length' for queue 'n' in vhost '/': {value_negative,-1}"},
		{"string ttl", QueueDecl{Name: "n", Args: message.Table{"x-message-ttl": "5"}}, PreconditionFailed,
			"invalid arg 'x-message-ttl' for queue 'n' in vhost '/': {unacceptable_type,longstr}"},
		{"zero expires", QueueDecl{Name: "n", Args: message.Table{"x-expires": int32(0)}}, PreconditionFailed, ""},
		{"bad overflow", QueueDecl{Name: "n", Args: message.Table{"x-overflow": "drop-tail"}}, PreconditionFailed, ""},
		{"bad queue type", QueueDecl{Name: "n", Args: message.Table{"x-queue-type": "stream"}}, PreconditionFailed, ""},
		{"priority too big", QueueDecl{Name: "n", Args: message.Table{"x-max-priority": int32(256)}}, PreconditionFailed, ""},
		{"sac not bool", QueueDecl{Name: "n", Args: message.Table{"x-single-active-consumer": int32(1)}}, PreconditionFailed, ""},
		{"dlrk without dlx", QueueDecl{Name: "n", Args: message.Table{"x-dead-letter-routing-key": "k"}}, PreconditionFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, openBroker(t, nil))
			c.declareQueue("q", false, nil)
			_, err := c.ch.DeclareQueue(tt.decl)
			wantCode(t, err, tt.code, tt.reason)
		})
	}
}

func TestQueueDeclareAccepts(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	args := message.Table{"x-max-length": int32(10), "x-message-ttl": int64(1000), "x-overflow": "reject-publish",
		"x-dead-letter-exchange": "dlx", "x-queue-type": "quorum", "x-custom": "ignored"}
	c.declareQueue("q", true, args)
	// Redeclare with an equal value of another integer width, without the
	// unknown argument: equivalent.
	args2 := message.Table{"x-max-length": int64(10), "x-message-ttl": int32(1000), "x-overflow": "reject-publish",
		"x-dead-letter-exchange": "dlx", "x-queue-type": "quorum"}
	c.declareQueue("q", true, args2)
	opts := c.ch.vh.queues["q"].opts()
	if opts.MaxLength != 10 || opts.MessageTTL != 1000 || opts.Overflow != "reject-publish" || !opts.HasDeadLetter || opts.QueueType != "quorum" {
		t.Fatalf("options = %+v", opts)
	}
	// Classic is the default queue type.
	c.declareQueue("c", false, nil)
	c.declareQueue("c", false, message.Table{"x-queue-type": "classic"})
}

func TestServerNamedQueue(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	name := c.declareQueue("", false, nil)
	if !regexp.MustCompile(`^amq\.gen-[A-Za-z0-9_-]{22}$`).MatchString(name) {
		t.Fatalf("server-named queue %q", name)
	}
	st, err := c.ch.DeclareQueue(QueueDecl{Name: name, Passive: true})
	if err != nil || st.Name != name {
		t.Fatalf("passive declare of %q: %+v %v", name, st, err)
	}
}

func TestExclusiveQueue(t *testing.T) {
	b := openBroker(t, nil)
	owner := newClient(t, b)
	other := newClient(t, b)
	if _, err := owner.ch.DeclareQueue(QueueDecl{Name: "ex", Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	locked := "cannot obtain exclusive access to locked queue 'ex' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
	_, err := other.ch.DeclareQueue(QueueDecl{Name: "ex", Exclusive: true})
	wantCode(t, err, ResourceLocked, locked)
	_, err = other.ch.DeclareQueue(QueueDecl{Name: "ex", Passive: true})
	wantCode(t, err, ResourceLocked, locked)
	_, err = other.ch.Consume(ConsumeRequest{Queue: "ex"})
	wantCode(t, err, ResourceLocked, locked)
	_, err = other.ch.Get("ex", true)
	wantCode(t, err, ResourceLocked, locked)
	_, err = other.ch.PurgeQueue("ex")
	wantCode(t, err, ResourceLocked, locked)
	_, err = other.ch.DeleteQueue("ex", false, false)
	wantCode(t, err, ResourceLocked, locked)
	wantCode(t, other.ch.BindQueue(Binding{Source: "amq.fanout", Destination: "ex"}), ResourceLocked, locked)
	// Publishing to it from elsewhere is fine.
	if !other.publish("", "ex", "hi", false) {
		t.Fatal("publish to exclusive queue from another connection not routed")
	}
	owner.conn.Close()
	_, err = other.ch.DeclareQueue(QueueDecl{Name: "ex", Passive: true})
	wantCode(t, err, NotFound, "no queue 'ex' in vhost '/'")
}

func TestAutoDeleteQueue(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	if _, err := c.ch.DeclareQueue(QueueDecl{Name: "ad", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	_, err := c.ch.DeclareQueue(QueueDecl{Name: "ad", AutoDelete: true, Passive: true})
	if err != nil {
		t.Fatalf("auto-delete queue gone before any consumer: %v", err)
	}
	t1 := c.consume("ad", false)
	t2 := c.consume("ad", false)
	if err := c.ch.Cancel(t1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ch.DeclareQueue(QueueDecl{Name: "ad", Passive: true}); err != nil {
		t.Fatalf("queue gone with a consumer left: %v", err)
	}
	if err := c.ch.Cancel(t2); err != nil {
		t.Fatal(err)
	}
	_, err = c.ch.DeclareQueue(QueueDecl{Name: "ad", Passive: true})
	wantCode(t, err, NotFound, "")
}

func TestQueueDeleteRules(t *testing.T) {
	b := openBroker(t, nil)
	c := newClient(t, b)
	if n, err := c.ch.DeleteQueue("missing", false, false); err != nil || n != 0 {
		t.Fatalf("delete missing queue = %d, %v", n, err)
	}
	c.declareQueue("q", false, nil)
	c.publish("", "q", "1", false)
	c.publish("", "q", "2", false)
	_, err := c.ch.DeleteQueue("q", false, true)
	wantCode(t, err, PreconditionFailed, "queue 'q' in vhost '/' is not empty")
	other := c.channel(2)
	tag, err := other.ch.Consume(ConsumeRequest{Queue: "q", Tag: "ctag"})
	if err != nil {
		t.Fatal(err)
	}
	other.out.waitDeliveries(t, 2)
	c.publish("", "q", "3", false) // no credit? default prefetch 0: delivered too
	_, err = c.ch.DeleteQueue("q", true, false)
	wantCode(t, err, PreconditionFailed, "queue 'q' in vhost '/' in use")
	if _, err := c.ch.DeleteQueue("q", false, false); err != nil {
		t.Fatal(err)
	}
	if got := other.out.cancels(); !slices.Equal(got, []string{tag}) {
		t.Fatalf("cancel notifications %v, want [%s]", got, tag)
	}
	// The tag is free again, and acks of the gone queue's messages are harmless.
	if err := other.ch.Ack(0, true); err != nil {
		t.Fatal(err)
	}
	c.declareQueue("q", false, nil)
	if _, err := other.ch.Consume(ConsumeRequest{Queue: "q", Tag: "ctag"}); err != nil {
		t.Fatalf("reuse tag of a broker-cancelled consumer: %v", err)
	}
}

func TestPurgeKeepsUnacked(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", true, nil)
	for i := range 5 {
		c.publish("", "q", string(rune('0'+i)), true)
	}
	d := c.get("q", false)
	n, err := c.ch.PurgeQueue("q")
	if err != nil || n != 4 {
		t.Fatalf("purge = %d, %v; want 4", n, err)
	}
	if err := c.ch.Nack(d.DeliveryTag, false, true); err != nil {
		t.Fatal(err)
	}
	d = c.get("q", false)
	if d == nil || string(d.Body) != "0" || !d.Redelivered {
		t.Fatalf("after purge and requeue got %+v", d)
	}
}

func TestQueueStatusCounts(t *testing.T) {
	c := newClient(t, openBroker(t, nil))
	c.declareQueue("q", false, nil)
	c.publish("", "q", "a", false)
	c.publish("", "q", "b", false)
	st, err := c.ch.DeclareQueue(QueueDecl{Name: "q", Passive: true})
	if err != nil || st.Messages != 2 || st.Consumers != 0 {
		t.Fatalf("status %+v, %v", st, err)
	}
}
