package amqpserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// start starts a broker and returns a channel of a connection to it.
func start(t *testing.T) (*sluicetest.Broker, *amqp091.Connection, *amqp091.Channel) {
	t.Helper()
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	return b, conn, sluicetest.Channel(t, conn)
}

// wantAMQPError checks that err is an *amqp091.Error with code.
func wantAMQPError(t *testing.T, err error, code int) *amqp091.Error {
	t.Helper()
	var ae *amqp091.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v (%T), want AMQP error %d", err, err, code)
	}
	if ae.Code != code {
		t.Fatalf("got AMQP error %d %q, want code %d", ae.Code, ae.Reason, code)
	}
	return ae
}

// closedWith waits for the close notification of a channel or connection.
func closedWith(t *testing.T, c chan *amqp091.Error, code int) *amqp091.Error {
	t.Helper()
	select {
	case e := <-c:
		if e == nil {
			t.Fatalf("closed without error, want code %d", code)
		}
		if e.Code != code {
			t.Fatalf("closed with %d %q, want code %d", e.Code, e.Reason, code)
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("not closed, want code %d", code)
	}
	return nil
}

func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v, ok := <-c:
		if !ok {
			t.Fatal("channel closed")
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
	var zero T
	return zero
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
