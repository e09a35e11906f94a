//go:build integration

package cluster

// The metadata group: definitions made on one node are used from the
// others, a creation race has one winner, and the metadata survives the
// loss of its leader and of a node's whole data directory.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// api sends one HTTP API request as guest and returns the status and body.
func (nd *node) api(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+nd.httpAddr+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	cl := http.Client{Timeout: 15 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// mustAPI fails the test unless the request answers a 2xx status.
func (nd *node) mustAPI(t *testing.T, method, path string, body any) []byte {
	t.Helper()
	status, out, err := nd.api(method, path, body)
	if err != nil || status/100 != 2 {
		t.Fatalf("%s %s on %s: %d %s %v", method, path, nd.name, status, out, err)
	}
	return out
}

// eventually retries fn until it returns nil or 15 s pass: a follower
// applies a committed entry a moment after the majority that confirmed it.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dialAs(nd *node, user, pass, vhost string) (*amqp.Connection, error) {
	return amqp.Dial(fmt.Sprintf("amqp://%s:%s@%s/%s", user, pass, nd.amqpAddr, strings.ReplaceAll(vhost, "/", "%2F")))
}

func channel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// A vhost, a user with permissions, a policy, an exchange, a quorum queue
// and a classic queue with their bindings, all made on n1, are used from
// n2 and n3: the user logs in on n2, a publish on n2 through the exchange
// reaches both queues (the classic one on n1, through forwarding), n2
// lists the classic queue with its node and policy, n3 refuses an
// inequivalent redeclaration with 406.
func TestMetadataSharedAcrossNodes(t *testing.T) {
	c := newCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	n1.mustAPI(t, "PUT", "/api/vhosts/shop", nil)
	n1.mustAPI(t, "PUT", "/api/users/alice", map[string]any{"password": "s3cret", "tags": ""})
	n1.mustAPI(t, "PUT", "/api/permissions/shop/alice", map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
	n1.mustAPI(t, "PUT", "/api/policies/shop/audit-ttl",
		map[string]any{"pattern": "^audit", "apply-to": "queues", "definition": map[string]any{"message-ttl": 600000}})

	conn1, err := dialAs(n1, "alice", "s3cret", "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	ch1 := channel(t, conn1)
	if err := ch1.ExchangeDeclare("orders", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch1.QueueDeclare("orders.q", true, false, false, false, quorum); err != nil {
		t.Fatal(err)
	}
	if _, err := ch1.QueueDeclare("audit", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch1.QueueBind("orders.q", "eu.#", "orders", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch1.QueueBind("audit", "#", "orders", false, nil); err != nil {
		t.Fatal(err)
	}

	// The new user logs in on n2, in the new vhost.
	var conn2 *amqp.Connection
	eventually(t, "alice logs in on n2", func() error {
		conn2, err = dialAs(n2, "alice", "s3cret", "shop")
		return err
	})
	defer conn2.Close()
	ch2 := channel(t, conn2)
	if err := ch2.ExchangeDeclarePassive("orders", "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("passive declare of n1's exchange on n2: %v", err)
	}
	ch2 = channel(t, conn2)
	eventually(t, "n1's classic queue known on n2", func() error {
		ch := channel(t, conn2)
		defer ch.Close()
		_, err := ch.QueueDeclarePassive("audit", true, false, false, false, nil)
		return err
	})

	// n2's API lists the classic queue with its node and policy.
	eventually(t, "n2 lists audit on n1", func() error {
		var qs []struct {
			Name   string  `json:"name"`
			Node   string  `json:"node"`
			Policy *string `json:"policy"`
		}
		status, out, err := n2.api("GET", "/api/queues/shop", nil)
		if err != nil || status != 200 {
			return fmt.Errorf("%d %s %v", status, out, err)
		}
		if err := json.Unmarshal(out, &qs); err != nil {
			return err
		}
		for _, q := range qs {
			if q.Name == "audit" {
				if q.Node != "n1" || q.Policy == nil || *q.Policy != "audit-ttl" {
					return fmt.Errorf("audit listed as %+v", q)
				}
				return nil
			}
		}
		return fmt.Errorf("no audit in %s", out)
	})
	eventually(t, "the policy on n3", func() error {
		status, out, err := n3.api("GET", "/api/policies/shop/audit-ttl", nil)
		if err != nil || status != 200 {
			return fmt.Errorf("%d %s %v", status, out, err)
		}
		return nil
	})

	// A confirmed publish on n2 through n1's exchange reaches both queues.
	if err := ch2.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch2.NotifyPublish(make(chan amqp.Confirmation, 1))
	if err := ch2.Publish("orders", "eu.1", false, false, amqp.Publishing{Body: []byte("order 1"), DeliveryMode: 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case cf := <-confirms:
		if !cf.Ack {
			t.Fatal("publish on n2 nacked")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no confirm for the publish on n2")
	}
	getOn := func(nd *node, queue string) {
		t.Helper()
		conn, err := dialAs(nd, "alice", "s3cret", "shop")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch := channel(t, conn)
		eventually(t, "get "+queue+" on "+nd.name, func() error {
			m, ok, err := ch.Get(queue, true)
			switch {
			case err != nil:
				return err
			case !ok:
				return errors.New("empty")
			case string(m.Body) != "order 1":
				return fmt.Errorf("got %q", m.Body)
			}
			return nil
		})
	}
	getOn(n1, "audit")
	var q queueJSON
	status, out, err := n1.api("GET", "/api/queues/shop/orders.q", nil)
	if err != nil || status != 200 || json.Unmarshal(out, &q) != nil {
		t.Fatalf("quorum queue on n1: %d %s %v", status, out, err)
	}
	getOn(c.byName(q.Leader), "orders.q")

	// A get on n2 of n1's queue goes to n1, which the get above emptied
	// (until gets were forwarded, n2 refused it with 405 naming n1).
	if _, ok, err := channel(t, conn2).Get("audit", true); err != nil || ok {
		t.Fatalf("get on n2 of n1's emptied queue: ok %v, %v; want get-empty", ok, err)
	}

	// n3 refuses an inequivalent redeclaration of n1's exchange.
	var conn3 *amqp.Connection
	eventually(t, "alice logs in on n3", func() error {
		conn3, err = dialAs(n3, "alice", "s3cret", "shop")
		return err
	})
	defer conn3.Close()
	err = channel(t, conn3).ExchangeDeclare("orders", "direct", true, false, false, false, nil)
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed {
		t.Fatalf("inequivalent redeclaration on n3: %v, want 406", err)
	}

	// A deletion on n3 of n1's queue deletes it on n1.
	if _, err := channel(t, conn3).QueueDelete("audit", false, false, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "audit gone from n1", func() error {
		status, out, err := n1.api("GET", "/api/queues/shop/audit", nil)
		if err != nil || status != 404 {
			return fmt.Errorf("%d %s %v", status, out, err)
		}
		return nil
	})
}

// Two nodes declaring one exchange with different types at the same
// moment: one succeeds, the other gets 406, and every node ends with the
// winner's type.
func TestMetadataConcurrentExchangeDeclare(t *testing.T) {
	c := newCluster(t, 3)
	for round := range 3 {
		name := fmt.Sprintf("race%d", round)
		kinds := []string{"fanout", "direct"}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, nd := range c.nodes[:2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := amqp.Dial(nd.url())
				if err != nil {
					errs[i] = err
					return
				}
				defer conn.Close()
				ch, err := conn.Channel()
				if err != nil {
					errs[i] = err
					return
				}
				errs[i] = ch.ExchangeDeclare(name, kinds[i], true, false, false, false, nil)
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			var aerr *amqp.Error
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("%s: both declarations succeeded", name)
				}
				winner = i
			case errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed:
			default:
				t.Fatalf("%s on %s: %v", name, c.nodes[i].name, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: both declarations failed: %v", name, errs)
		}
		for _, nd := range c.nodes {
			eventually(t, name+" on "+nd.name, func() error {
				var x struct {
					Type string `json:"type"`
				}
				status, out, err := nd.api("GET", "/api/exchanges/%2F/"+name, nil)
				if err != nil || status != 200 || json.Unmarshal(out, &x) != nil {
					return fmt.Errorf("%d %s %v", status, out, err)
				}
				if x.Type != kinds[winner] {
					return fmt.Errorf("type %q, want the winner's %q", x.Type, kinds[winner])
				}
				return nil
			})
		}
	}
}

// Two nodes declaring one classic queue at once: with the same arguments
// both succeed and the queue is the first one's everywhere; with others,
// the second is refused with 406.
func TestMetadataConcurrentQueueDeclare(t *testing.T) {
	c := newCluster(t, 3)
	for round, args := range []amqp.Table{nil, {"x-max-length": int32(5)}} {
		name := fmt.Sprintf("jobs%d", round)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, nd := range c.nodes[:2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := amqp.Table(nil)
				if i == 1 {
					a = args
				}
				errs[i] = declare(t, nd, name, a, false)
			}()
		}
		wg.Wait()
		failed := 0
		for i, err := range errs {
			var aerr *amqp.Error
			switch {
			case err == nil:
			case args != nil && errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed:
				failed++
			default:
				t.Fatalf("%s on %s: %v", name, c.nodes[i].name, err)
			}
		}
		if args != nil && failed != 1 || args == nil && failed != 0 {
			t.Fatalf("%s: errors %v", name, errs)
		}
		var home string
		for _, nd := range c.nodes {
			eventually(t, name+" on "+nd.name, func() error {
				var q struct {
					Node string `json:"node"`
				}
				status, out, err := nd.api("GET", "/api/queues/%2F/"+name, nil)
				if err != nil || status != 200 || json.Unmarshal(out, &q) != nil {
					return fmt.Errorf("%d %s %v", status, out, err)
				}
				if home == "" {
					home = q.Node
				}
				if q.Node != home || home == "" {
					return fmt.Errorf("node %q, others say %q", q.Node, home)
				}
				return nil
			})
		}
	}
}

// metaLeader is the node the live nodes name as the metadata group's
// leader.
func (c *cluster) metaLeader() *node {
	c.t.Helper()
	var l *node
	eventually(c.t, "a metadata leader", func() error {
		for _, nd := range c.nodes {
			if !nd.alive.Load() {
				continue
			}
			var ns []struct {
				Name   string `json:"name"`
				Leader bool   `json:"metadata_leader"`
			}
			status, out, err := nd.api("GET", "/api/nodes", nil)
			if err != nil || status != 200 || json.Unmarshal(out, &ns) != nil {
				continue
			}
			for _, n := range ns {
				if cand := c.byName(n.Name); n.Leader && cand != nil && cand.alive.Load() {
					l = cand
					return nil
				}
			}
		}
		return errors.New("none named")
	})
	return l
}

func exchangeOn(nd *node, name string) error {
	status, out, err := nd.api("GET", "/api/exchanges/%2F/"+name, nil)
	if err != nil || status != 200 {
		return fmt.Errorf("exchange %s on %s: %d %s %v", name, nd.name, status, out, err)
	}
	return nil
}

// kill -9 of the metadata leader: the survivors declare again and see each
// other's declarations; the killed node, restarted with its data
// directory lost, gets every definition back from the group's log.
func TestMetadataLeaderKill(t *testing.T) {
	c := newCluster(t, 3)
	c.nodes[0].mustAPI(t, "PUT", "/api/exchanges/%2F/before", map[string]any{"type": "fanout", "durable": true})
	l := c.metaLeader()
	c.kill(l)
	var alive []*node
	for _, nd := range c.nodes {
		if nd != l {
			alive = append(alive, nd)
		}
	}
	// The first declaration may wait out the election.
	eventually(t, "declare on a survivor", func() error {
		status, out, err := alive[0].api("PUT", "/api/exchanges/%2F/after", map[string]any{"type": "direct", "durable": true})
		if err != nil || status/100 != 2 {
			return fmt.Errorf("%d %s %v", status, out, err)
		}
		return nil
	})
	alive[1].mustAPI(t, "PUT", "/api/users/bob", map[string]any{"password": "pw", "tags": ""})
	eventually(t, "the other survivor has it", func() error { return exchangeOn(alive[1], "after") })
	eventually(t, "bob on the first survivor", func() error {
		status, out, err := alive[0].api("GET", "/api/users/bob", nil)
		if err != nil || status != 200 {
			return fmt.Errorf("%d %s %v", status, out, err)
		}
		return nil
	})

	// Its disk is lost: it comes back empty and replays the log.
	if err := os.RemoveAll(l.data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.data, 0o755); err != nil {
		t.Fatal(err)
	}
	c.start(l)
	c.waitUp(l)
	for _, name := range []string{"before", "after"} {
		eventually(t, name+" on the restarted node", func() error { return exchangeOn(l, name) })
	}
	eventually(t, "bob on the restarted node", func() error {
		status, out, err := l.api("GET", "/api/users/bob", nil)
		if err != nil || status != 200 {
			return fmt.Errorf("%d %s %v", status, out, err)
		}
		return nil
	})
}
