package httpapi_test

// Issue 10's HTTP and access findings, each reproduced against a real
// broker over HTTP (and AMQP where the two doors must agree).

import (
	"context"
	"testing"

	"github.com/sluicemq/sluice/internal/api"
)

// withUser creates a management user with perm on vhost "/" and returns
// its client.
func (e *testEnv) withUser(t *testing.T, name, password string, perm api.Permission) *api.Client {
	t.Helper()
	ctx := context.Background()
	if err := e.c.PutUser(ctx, name, api.UserPut{Password: password, Tags: "management"}); err != nil {
		t.Fatalf("put user %s: %v", name, err)
	}
	if err := e.c.SetPermission(ctx, "/", name, perm); err != nil {
		t.Fatalf("set permission of %s: %v", name, err)
	}
	return e.as(name, password)
}

// Finding 4: publishing to the default exchange over HTTP needs write on
// "amq.default", as over AMQP; write on "" is not write on everything.
func TestHTTPPublishDefaultExchangeNeedsWriteOnAmqDefault(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	declare(t, e.c, "victim", nil)
	narrow := e.withUser(t, "narrow", "pw", api.Permission{Configure: ".*", Write: "", Read: ".*"})
	_, err := narrow.Publish(ctx, "/", "", api.Publish{RoutingKey: "victim", Payload: "forged", PayloadEncoding: "string"})
	wantStatus(t, "publish with write on \"\"", err, 403)
	if q, err := e.c.Queue(ctx, "/", "victim"); err != nil || q.Messages != 0 {
		t.Fatalf("victim after the refused publish: %+v %v", q, err)
	}

	wide := e.withUser(t, "wide", "pw", api.Permission{Configure: "", Write: `^amq\.default$`, Read: ""})
	if _, err := wide.Publish(ctx, "/", "", api.Publish{RoutingKey: "victim", Payload: "ok", PayloadEncoding: "string"}); err != nil {
		t.Fatalf("publish with write on amq.default: %v", err)
	}
}
