//go:build integration

package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A vhost deleted on one node closes the connections to it on the other
// nodes with 320, as on the node that deleted it; a user deleted on one
// node is refused on the others' open connections and at login.
func TestMetadataDeletionsReachOpenConnections(t *testing.T) {
	c := newCluster(t, 3)
	n1, n2 := c.nodes[0], c.nodes[1]
	n1.mustAPI(t, "PUT", "/api/vhosts/gone", nil)
	n1.mustAPI(t, "PUT", "/api/users/carol", map[string]any{"password": "pw", "tags": ""})
	n1.mustAPI(t, "PUT", "/api/permissions/gone/carol", map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
	n1.mustAPI(t, "PUT", "/api/permissions/%2F/carol", map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
	var inGone, carol *amqp.Connection
	eventually(t, "connections on n2", func() error {
		var err error
		if inGone == nil {
			if inGone, err = dialAs(n2, "carol", "pw", "gone"); err != nil {
				return err
			}
		}
		carol, err = dialAs(n2, "carol", "pw", "/")
		return err
	})
	defer carol.Close()
	closed := inGone.NotifyClose(make(chan *amqp.Error, 1))
	n1.mustAPI(t, "DELETE", "/api/vhosts/gone", nil)
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced || !strings.Contains(e.Reason, "vhost 'gone' is deleted") {
			t.Fatalf("n2's connection to the deleted vhost closed with %v", e)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("n2's connection to the vhost deleted on n1 stays open")
	}

	n1.mustAPI(t, "DELETE", "/api/users/carol", nil)
	eventually(t, "carol refused on n2's open connection", func() error {
		ch, err := carol.Channel()
		if err != nil {
			return nil // the connection is closed: refused too
		}
		defer ch.Close()
		if _, err := ch.QueueDeclare("", false, true, true, false, nil); err == nil {
			return errors.New("declared")
		}
		return nil
	})
	if conn, err := dialAs(n2, "carol", "pw", "/"); err == nil {
		conn.Close()
		t.Fatal("the user deleted on n1 logs in on n2")
	}
}

// User and vhost limits set on one node hold on the others: max-queues
// counts the vhost's queues of the cluster, max-connections this node's
// connections; a limit deleted on one node is lifted on the others.
func TestMetadataLimitsShared(t *testing.T) {
	c := newCluster(t, 3)
	n1, n2 := c.nodes[0], c.nodes[1]
	n1.mustAPI(t, "PUT", "/api/vhost-limits/%2F/max-queues", map[string]any{"value": 2})
	n1.mustAPI(t, "PUT", "/api/user-limits/guest/max-connections", map[string]any{"value": 1})
	conn1, err := amqp.Dial(n1.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	ch1 := channel(t, conn1)
	if _, err := ch1.QueueDeclare("lim-a", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// guest already holds a connection on n1; n2 counts its own.
	var conn2 *amqp.Connection
	eventually(t, "n2 knows the limits", func() error {
		if conn2 == nil {
			if conn2, err = amqp.Dial(n2.url()); err != nil {
				return err
			}
		}
		extra, err := amqp.Dial(n2.url())
		if err == nil {
			extra.Close()
			return errors.New("a second connection of guest on n2 was admitted")
		}
		return nil
	})
	defer conn2.Close()
	ch2 := channel(t, conn2)
	if _, err := ch2.QueueDeclare("lim-b", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, err = ch2.QueueDeclare("lim-c", true, false, false, false, nil)
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed || !strings.Contains(aerr.Reason, "queue limit") {
		t.Fatalf("a third queue in the vhost, declared on n2: %v", err)
	}
	n1.mustAPI(t, "DELETE", "/api/user-limits/guest/max-connections", nil)
	eventually(t, "n2 lifts the connection limit", func() error {
		extra, err := amqp.Dial(n2.url())
		if err != nil {
			return err
		}
		return extra.Close()
	})
}
