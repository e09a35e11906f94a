package amqpserver_test

import (
	"errors"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// Issue 10, finding 8, at the AMQP door: after its free failures a source
// is refused unchecked for a while — the right password too — and the
// failures and refusals are counted.
func TestFailedAMQPLoginsAreThrottled(t *testing.T) {
	b := sluicetest.Start(t, sluicetest.WithBrokerConfig(func(c *broker.Config) {
		c.LoginThrottle.Free, c.LoginThrottle.Delay, c.LoginThrottle.MaxDelay = 3, time.Hour, time.Hour
	}))
	start := time.Now()
	for i := range 4 {
		if _, err := amqp091.Dial(b.URLFor("guest", "wrong", "/")); !errors.Is(err, amqp091.ErrCredentials) {
			t.Fatalf("wrong password %d: %v", i+1, err)
		}
	}
	for range 10 {
		if conn, err := amqp091.Dial(b.URL()); err == nil {
			conn.Close()
			t.Fatal("the right password from a throttled source logged in")
		}
	}
	c := b.Broker.LoginFailures()
	if c.Failed["amqp"] != 4 || c.Throttled["amqp"] != 10 {
		t.Fatalf("counts %+v, want 4 failed and 10 throttled", c)
	}
	t.Logf("14 logins refused in %v, 4 of them checked", time.Since(start))
}
