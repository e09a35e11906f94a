package httpapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
)

// wantAMQPError checks err is an AMQP error with code and reason ("" for
// no error).
func wantAMQPError(t *testing.T, what string, err error, code int, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Errorf("%s: %v, want no error", what, err)
		}
		return
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		t.Errorf("%s: %v, want AMQP error %d %q", what, err, code, reason)
		return
	}
	if ae.Code != code || ae.Reason != reason {
		t.Errorf("%s: %d %q, want %d %q", what, ae.Code, ae.Reason, code, reason)
	}
}

// A user created through the HTTP API logs in over AMQP only to a vhost it
// has permissions on, and each operation needs configure, write or read
// on its resources, as RabbitMQ checks them.
func TestAMQPPermissions(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.c.PutUser(ctx, "app", api.UserPut{Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	url := e.sb.URLFor("app", "pw", "/")

	_, err := amqp.Dial(url)
	wantAMQPError(t, "connect without permissions", err, amqp.NotAllowed,
		"NOT_ALLOWED - access to vhost '/' refused for user 'app'")

	if err := e.c.SetPermission(ctx, "/", "app", api.Permission{Configure: `^app\.`, Write: `^app\.`, Read: `^app\.`}); err != nil {
		t.Fatal(err)
	}
	_, guest := e.amqpChannel(t)
	if _, err := guest.QueueDeclare("other", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("connect with permissions: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	refused := func(kind, name string) string {
		return "ACCESS_REFUSED - access to " + kind + " '" + name + "' in vhost '/' refused for user 'app'"
	}
	// Each case runs on a fresh channel (an error closes it); the cases
	// run in order, later ones using what earlier ones declared.
	tests := []struct {
		name   string
		do     func(ch *amqp.Channel) error
		reason string
	}{
		{"declare own queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("app.q", false, false, false, false, nil)
			return err
		}, ""},
		{"declare other queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("mine", false, false, false, false, nil)
			return err
		}, refused("queue", "mine")},
		{"server-named queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("", false, true, true, false, nil)
			return err
		}, "ACCESS_REFUSED"}, // amq.gen-… does not match ^app\.
		{"passive declare needs nothing", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive("other", false, false, false, false, nil)
			return err
		}, ""},
		{"dead-letter exchange needs write on it", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("app.dl", false, false, false, false, amqp.Table{"x-dead-letter-exchange": "amq.direct"})
			return err
		}, refused("exchange", "amq.direct")},
		{"delete other queue", func(ch *amqp.Channel) error { _, err := ch.QueueDelete("other", false, false, false); return err },
			refused("queue", "other")},
		{"declare own exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("app.x", "fanout", false, false, false, false, nil)
		}, ""},
		{"declare other exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("their.x", "fanout", false, false, false, false, nil)
		}, refused("exchange", "their.x")},
		{"bind own", func(ch *amqp.Channel) error { return ch.QueueBind("app.q", "", "app.x", false, nil) }, ""},
		{"bind from unreadable exchange", func(ch *amqp.Channel) error { return ch.QueueBind("app.q", "k", "amq.direct", false, nil) },
			refused("exchange", "amq.direct")},
		{"bind to unwritable queue", func(ch *amqp.Channel) error { return ch.QueueBind("other", "", "app.x", false, nil) },
			refused("queue", "other")},
		{"publish to own exchange", func(ch *amqp.Channel) error {
			return publishAndSync(ch, "app.x", "")
		}, ""},
		{"publish to the default exchange", func(ch *amqp.Channel) error {
			return publishAndSync(ch, "", "app.q")
		}, refused("exchange", "amq.default")},
		{"get own", func(ch *amqp.Channel) error {
			if _, ok, err := ch.Get("app.q", true); err != nil || !ok {
				return errors.Join(err, errors.New("get-empty"))
			}
			return nil
		}, ""},
		{"get other", func(ch *amqp.Channel) error { _, _, err := ch.Get("other", true); return err }, refused("queue", "other")},
		{"consume other", func(ch *amqp.Channel) error {
			_, err := ch.Consume("other", "", true, false, false, false, nil)
			return err
		}, refused("queue", "other")},
		{"purge other", func(ch *amqp.Channel) error { _, err := ch.QueuePurge("other", false); return err }, refused("queue", "other")},
		{"consume own", func(ch *amqp.Channel) error {
			_, err := ch.Consume("app.q", "", true, false, false, false, nil)
			return err
		}, ""},
	}
	for _, tc := range tests {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("%s: open channel: %v", tc.name, err)
		}
		err = tc.do(ch)
		if tc.reason == "ACCESS_REFUSED" {
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
				t.Errorf("%s: %v, want 403", tc.name, err)
			}
		} else {
			wantAMQPError(t, tc.name, err, amqp.AccessRefused, tc.reason)
		}
		if tc.reason == "" {
			_ = ch.Close()
		}
	}

	// guest keeps full access; revoking app's permission applies to its
	// open connection's next operation and refuses new connections.
	if _, err := guest.QueueDeclare("guest.q", false, false, false, false, nil); err != nil {
		t.Errorf("guest declare: %v", err)
	}
	if err := e.c.DeletePermission(ctx, "/", "app"); err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDeclare("app.q2", false, false, false, false, nil)
	wantAMQPError(t, "declare after revocation", err, amqp.AccessRefused,
		"ACCESS_REFUSED - access to vhost '/' refused for user 'app'")
	_, err = amqp.Dial(url)
	wantAMQPError(t, "connect after revocation", err, amqp.NotAllowed,
		"NOT_ALLOWED - access to vhost '/' refused for user 'app'")
}

// publishAndSync publishes, then makes a synchronous call so that a
// channel error caused by the publish is seen: the error of the call, or
// of the channel's close notification.
func publishAndSync(ch *amqp.Channel, exchange, key string) error {
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
		return err
	}
	if _, err := ch.QueueDeclarePassive("app.q", false, false, false, false, nil); err != nil {
		select {
		case ce := <-closed:
			if ce != nil {
				return ce
			}
		case <-time.After(5 * time.Second):
		}
		return err
	}
	return nil
}
