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
