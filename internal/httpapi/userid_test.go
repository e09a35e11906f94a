package httpapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/api"
)

// TestHTTPPublishValidatesUserID: the HTTP publish applies AMQP's
// validated user-id rule (RabbitMQ's management publish goes through a
// channel and gets the same check): a user_id other than the caller's
// name is refused unless the caller has the impersonator tag.
func TestHTTPPublishValidatesUserID(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	_, ch := e.amqpChannel(t)
	if _, err := ch.QueueDeclare("q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	pub := func(c *api.Client, userID string) error {
		_, err := c.Publish(ctx, "/", "", api.Publish{RoutingKey: "q", Payload: "m", Properties: api.Properties{UserID: userID}})
		return err
	}
	if err := pub(e.c, "guest"); err != nil {
		t.Fatalf("publish with one's own user_id: %v", err)
	}
	err := pub(e.c, "admin")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 409 ||
		!strings.Contains(ae.Reason, "user_id property set to 'admin' but authenticated user was 'guest'") {
		t.Fatalf("publish with another user_id: %v, want 409 naming both users", err)
	}
	if _, err := e.sb.Broker.PutUser("relay", "pw", "", []string{"impersonator", "management"}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Do(ctx, "PUT", api.Path("permissions", "/", "relay"), nil, map[string]string{"configure": ".*", "write": ".*", "read": ".*"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := pub(e.as("relay", "pw"), "someone-else"); err != nil {
		t.Fatalf("impersonator publish: %v", err)
	}
}
