//go:build integration

package cluster

// The checker every fault test shares. A workload runs publishers with
// confirms (one pinned to each node, so publishes go through every node)
// and consumers with acks (following the queue's leader) while faults are
// injected; once the faults are healed it stops, and the checker demands:
//
//   - every confirmed message is consumed at least once (the deliveries
//     seen during the faults plus a final drain);
//   - nothing is consumed that was never published;
//   - a duplicate is only ever a redelivery: of all deliveries of one
//     message at most one is unmarked, the others carry redelivered or
//     an x-delivery-count;
//   - all members report the same message count for the queue, before and
//     after the drain.
//
// Every publish carries a fresh id, even when it repeats a publish whose
// confirm was lost: a message consumed twice is then a redelivery by the
// broker, never a second publish by the client.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// sent is one publish: through which node, when, and when (if ever) the
// broker confirmed it. Publishes are mandatory: a node that does not know
// the queue yet (a wiped member before its log is back) returns them
// unroutable, and the confirm that follows says nothing about the queue.
type sent struct {
	node        string
	at, confirm time.Time
	returned    bool
}

func (s *sent) confirmed() bool { return !s.confirm.IsZero() && !s.returned }

// delivery is one message as a consumer got it, from which node and when.
type delivery struct {
	id          int
	redelivered bool // redelivered flag or an x-delivery-count
	node        string
	at          time.Time
}

// struck is a node a fault hit (killed, paused, cut off) or that stopped
// serving a consumer, and when; node "" is a change of the queue's leader
// (a consumer attached elsewhere is served through its node, so any of
// its deliveries may be the lost leader's).
type struck struct {
	node string
	at   time.Time
}

// unsyncedDelivery bounds how far from a fault a delivery by the struck
// node may be redelivered unmarked: a delivery's state enters the queue's
// log without the delivery waiting for it (docs/clustering.md), so a
// leader lost right after delivering leaves no trace of it. After the
// fault, a consumer still reads what the node sent before it died, and a
// node cut off delivers until it notices (the election timeout).
const unsyncedDelivery = 3 * time.Second

// workload is the clients running through the cluster during faults.
type workload struct {
	c     *cluster
	queue string

	next atomic.Int64 // the next message id

	mu         sync.Mutex
	published  map[int]*sent
	deliveries []delivery
	struck     []struck
	problems   []string // what a client saw that the checker must fail on

	stop chan struct{}
	wg   sync.WaitGroup
}

const (
	publishWindow  = 8               // publishes in flight per publisher
	confirmTimeout = 5 * time.Second // a publish not confirmed by then is abandoned
)

// startWorkload declares queue as a quorum queue and starts a publisher on
// each node and consumers consumers.
func startWorkload(t *testing.T, c *cluster, queue string, consumers int) *workload {
	t.Helper()
	if err := declare(t, c.nodes[0], queue, quorum, false); err != nil {
		t.Fatal(err)
	}
	w := &workload{c: c, queue: queue, published: make(map[int]*sent), stop: make(chan struct{})}
	for _, nd := range c.nodes {
		w.wg.Add(1)
		go w.publisher(nd)
	}
	for range consumers {
		w.wg.Add(1)
		go w.consumer()
	}
	w.wg.Add(1)
	go w.watchLeader()
	return w
}

// watchLeader records every change of the queue's leader as a strike.
func (w *workload) watchLeader() {
	defer w.wg.Done()
	var last *node
	for !w.stopped() {
		if l := w.c.findLeader(w.queue, time.Second); l != nil {
			if last != nil && l != last {
				w.mu.Lock()
				w.struck = append(w.struck, struck{"", time.Now()})
				w.mu.Unlock()
			}
			last = l
		}
		w.pause(200 * time.Millisecond)
	}
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause waits d or until the workload stops.
func (w *workload) pause(d time.Duration) {
	select {
	case <-w.stop:
	case <-time.After(d):
	}
}

func (w *workload) problem(format string, args ...any) {
	w.mu.Lock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

// dial connects to nd with short timeouts, so that a client of a node cut
// off notices within seconds.
func dial(nd *node) (*amqp.Connection, error) {
	return amqp.DialConfig(nd.url(), amqp.Config{Heartbeat: 2 * time.Second, Locale: "en_US", Dial: amqp.DefaultDial(3 * time.Second)})
}

// publisher publishes through nd until the workload stops, reconnecting
// when nd dies or its connection breaks.
func (w *workload) publisher(nd *node) {
	defer w.wg.Done()
	for !w.stopped() {
		if !nd.alive.Load() {
			w.pause(200 * time.Millisecond)
			continue
		}
		conn, err := dial(nd)
		if err != nil {
			w.pause(200 * time.Millisecond)
			continue
		}
		w.publishOn(nd, conn)
		conn.Close()
		w.pause(50 * time.Millisecond) // a node that nacks at once is not hammered
	}
}

// publishOn publishes windows of messages on conn until an error, a nack,
// a confirm that does not come, or the workload's stop.
func (w *workload) publishOn(nd *node, conn *amqp.Connection) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	if err := ch.Confirm(false); err != nil {
		return
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, publishWindow))
	go func() {
		for r := range returns {
			id, _ := strconv.Atoi(string(r.Body))
			w.mu.Lock()
			if s := w.published[id]; s != nil {
				s.returned = true
			}
			w.mu.Unlock()
		}
	}()
	for !w.stopped() {
		type inflight struct {
			id int
			dc *amqp.DeferredConfirmation
		}
		var window []inflight
		for range publishWindow {
			id := int(w.next.Add(1))
			s := &sent{node: nd.name, at: time.Now()}
			w.mu.Lock()
			w.published[id] = s
			w.mu.Unlock()
			dc, err := ch.PublishWithDeferredConfirm("", w.queue, true, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(id))})
			if err != nil {
				return
			}
			window = append(window, inflight{id, dc})
		}
		ctx, cancel := context.WithTimeout(context.Background(), confirmTimeout)
		ok := true
		for _, p := range window {
			acked, err := p.dc.WaitContext(ctx)
			if err != nil || !acked {
				ok = false
				break
			}
			now := time.Now()
			w.mu.Lock()
			w.published[p.id].confirm = now
			w.mu.Unlock()
		}
		cancel()
		if !ok {
			return // a new connection for the next window
		}
	}
}

// consumer consumes with acks from the queue's leader until the workload
// stops, following the lead when it moves.
func (w *workload) consumer() {
	defer w.wg.Done()
	for !w.stopped() {
		l := w.c.findLeader(w.queue, 2*time.Second)
		if l == nil {
			continue
		}
		conn, err := dial(l)
		if err != nil {
			w.pause(200 * time.Millisecond)
			continue
		}
		w.consumeOn(l, conn, w.stop)
		conn.Close()
	}
}

// consumeOn consumes from conn, recording and acking each delivery, until
// the subscription ends or done closes. It reports whether it got to
// subscribe.
func (w *workload) consumeOn(nd *node, conn *amqp.Connection, done <-chan struct{}) (subscribed bool, idle bool) {
	ch, err := conn.Channel()
	if err != nil {
		return false, false
	}
	if err := ch.Qos(50, 0, false); err != nil {
		return false, false
	}
	msgs, err := ch.Consume(w.queue, "", false, false, false, false, nil)
	if err != nil {
		w.pause(200 * time.Millisecond) // not serving yet: led elsewhere or catching up
		return false, false
	}
	const idleAfter = 3 * time.Second
	timer := time.NewTimer(idleAfter)
	defer timer.Stop()
	for {
		select {
		case <-done:
			return true, false
		case <-timer.C:
			return true, true
		case m, ok := <-msgs:
			if !ok {
				// nd cancelled the subscription or dropped the connection:
				// it stopped serving the queue (a fault, or a lead handed
				// on), which strikes its last deliveries as a fault does.
				w.strike(nd)
				return true, false
			}
			w.record(nd, m)
			m.Ack(false)
			timer.Reset(idleAfter)
		}
	}
}

func (w *workload) record(nd *node, m amqp.Delivery) {
	id, err := strconv.Atoi(string(m.Body))
	if err != nil {
		w.problem("consumed %q, which was never published", m.Body)
		return
	}
	count, _ := m.Headers["x-delivery-count"].(int64)
	if c32, ok := m.Headers["x-delivery-count"].(int32); ok {
		count = int64(c32)
	}
	w.mu.Lock()
	w.deliveries = append(w.deliveries, delivery{id: id, redelivered: m.Redelivered || count > 0, node: nd.name, at: time.Now()})
	w.mu.Unlock()
}

// confirmed counts the confirmed publishes.
func (w *workload) confirmed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.published {
		if s.confirmed() {
			n++
		}
	}
	return n
}

// confirmedBetween counts the publishes sent after from and confirmed
// before to, through any node but except (names).
func (w *workload) confirmedBetween(from, to time.Time, except ...string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.published {
		if s.at.After(from) && s.confirmed() && s.confirm.Before(to) && !slices.Contains(except, s.node) {
			n++
		}
	}
	return n
}

// through counts the publishes through node sent between from and to, and
// those of them confirmed before to.
func (w *workload) through(node string, from, to time.Time) (sent, confirmed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.published {
		if s.node == node && s.at.After(from) && s.at.Before(to) {
			sent++
			if s.confirmed() && s.confirm.Before(to) {
				confirmed++
			}
		}
	}
	return sent, confirmed
}

// awaitConfirmed waits until n more publishes than now are confirmed.
func (w *workload) awaitConfirmed(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	want := w.confirmed() + n
	deadline := time.Now().Add(timeout)
	for w.confirmed() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d publishes confirmed within %v", w.confirmed(), want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// result is what a workload's check counted.
type result struct {
	published, confirmed, consumed, deliveries, redelivered int
	unsynced                                                int // unmarked redeliveries of the known gap (lostWithNode)
	left                                                    int // messages the members held when the clients stopped
	lost, dups                                              int // confirmed never consumed; unmarked duplicates otherwise
}

func (r result) String() string {
	return fmt.Sprintf("%d published, %d confirmed, %d distinct consumed (%d deliveries, %d marked redelivered, %d unmarked after a struck delivery), %d left at the end of the faults; %d confirmed lost, %d unmarked duplicates",
		r.published, r.confirmed, r.consumed, r.deliveries, r.redelivered, r.unsynced, r.left, r.lost, r.dups)
}

func (r *result) add(o result) {
	r.published += o.published
	r.confirmed += o.confirmed
	r.consumed += o.consumed
	r.deliveries += o.deliveries
	r.redelivered += o.redelivered
	r.unsynced += o.unsynced
	r.left += o.left
	r.lost += o.lost
	r.dups += o.dups
}

// finish stops the clients, waits until every member reports the same
// message count, drains the queue through its leader and checks what was
// consumed against what was confirmed.
func (w *workload) finish(t *testing.T) result {
	t.Helper()
	close(w.stop)
	w.wg.Wait()
	before := w.c.converge(t, w.queue, -1)
	w.drain(t)
	w.c.converge(t, w.queue, 0)
	w.c.noAlarms(t)
	return w.check(t, before)
}

// noAlarms checks that no node refuses writes once the faults are healed:
// a node that took a lost lead for a failed disk stays fenced (an alarm)
// until it is restarted.
func (c *cluster) noAlarms(t *testing.T) {
	t.Helper()
	for _, nd := range c.nodes {
		req, _ := http.NewRequest("GET", "http://"+nd.httpAddr+"/api/health/checks/local-alarms", nil)
		req.SetBasicAuth(nd.login())
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Errorf("%s: alarms: %v", nd.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s has an alarm after the faults were healed: %s %s", nd.name, resp.Status, body)
		}
	}
}

// drain consumes from the leader until it has nothing more for a while.
func (w *workload) drain(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		l := w.c.findLeader(w.queue, 20*time.Second)
		if l == nil {
			t.Fatal("no leader to drain from")
		}
		conn, err := dial(l)
		if err != nil {
			continue
		}
		subscribed, idle := w.consumeOn(l, conn, nil)
		conn.Close()
		if subscribed && idle {
			return
		}
	}
	t.Fatal("could not drain the queue within 60 s")
}

// check applies the checker's rules; before is the message count the
// members agreed on before the drain.
func (w *workload) check(t *testing.T, before int) result {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
	plain := make(map[int][]delivery) // deliveries without a redelivery mark
	seen := make(map[int]int)
	redelivered := 0
	for _, d := range w.deliveries {
		if _, ok := w.published[d.id]; !ok {
			t.Errorf("consumed message %d, which was never published", d.id)
		}
		seen[d.id]++
		if d.redelivered {
			redelivered++
		} else {
			plain[d.id] = append(plain[d.id], d)
		}
	}
	var dups []string
	unsynced := 0
	for id, ds := range plain {
		if len(ds) < 2 {
			continue
		}
		if len(ds) == 2 && w.lostWithNode(ds[0]) {
			unsynced++
			continue
		}
		var by []string
		for _, d := range ds {
			by = append(by, d.node+" at "+d.at.Format("15:04:05.000"))
		}
		dups = append(dups, fmt.Sprintf("%d (by %s)", id, strings.Join(by, ", ")))
	}
	if unsynced > 0 {
		t.Logf("%d messages delivered again unmarked after the node that first delivered them was struck within %v (the known gap of docs/clustering.md)", unsynced, unsyncedDelivery)
	}
	if len(dups) > 0 {
		slices.Sort(dups)
		var hits []string
		for _, s := range w.struck {
			hits = append(hits, s.node+" at "+s.at.Format("15:04:05.000"))
		}
		t.Errorf("%d messages delivered more than once without a redelivery mark: %s; faults struck %s",
			len(dups), strings.Join(dups[:min(len(dups), 20)], "; "), strings.Join(hits, ", "))
	}
	confirmed, lost := 0, 0
	var lostIDs []int
	for id, s := range w.published {
		if !s.confirmed() {
			continue
		}
		confirmed++
		if seen[id] == 0 {
			lost++
			lostIDs = append(lostIDs, id)
		}
	}
	if lost > 0 {
		slices.Sort(lostIDs)
		t.Errorf("%d of %d confirmed messages never consumed, among them %v", lost, confirmed, lostIDs[:min(len(lostIDs), 20)])
	}
	return result{published: len(w.published), confirmed: confirmed, consumed: len(seen), deliveries: len(w.deliveries),
		redelivered: redelivered, unsynced: unsynced, left: before, lost: lost, dups: len(dups)}
}

// lostWithNode reports whether a fault struck d's node, or the queue's
// lead moved, within unsyncedDelivery of d.
func (w *workload) lostWithNode(d delivery) bool {
	for _, s := range w.struck {
		if (s.node == d.node || s.node == "") && s.at.Sub(d.at).Abs() <= unsyncedDelivery {
			return true
		}
	}
	return false
}

// strike records that a fault hits nd now.
func (w *workload) strike(nd *node) {
	w.mu.Lock()
	w.struck = append(w.struck, struck{nd.name, time.Now()})
	w.mu.Unlock()
}

// converge waits until every member reports the same message count for
// queue (want, unless it is negative) and returns it.
func (c *cluster) converge(t *testing.T, queue string, want int) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var counts []string
	for {
		counts = counts[:0]
		agreed, n := true, -1
		for _, nd := range c.nodes {
			q, err := nd.queue(queue)
			if err != nil {
				counts = append(counts, fmt.Sprintf("%s: %v", nd.name, err))
				agreed = false
				continue
			}
			counts = append(counts, fmt.Sprintf("%s: %d", nd.name, q.Messages))
			if n >= 0 && q.Messages != n {
				agreed = false
			}
			n = q.Messages
		}
		if agreed && (want < 0 || n == want) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the members do not agree on the queue's message count (want %d): %s", want, strings.Join(counts, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fault is one injected failure: inject breaks the cluster and returns
// how to heal it.
type fault struct {
	name string
	// hold is how long the fault lasts before it is healed.
	hold time.Duration
	// majority is set when a majority stays up and connected during the
	// fault: publishes through it must go on being confirmed.
	majority bool
	inject   func(t *testing.T, c *cluster, w *workload) (heal func())
}

// runFaults runs a workload on a new quorum queue and injects faults one
// after the other, with confirmed traffic before, between and after them,
// then checks everything.
func runFaults(t *testing.T, c *cluster, queue string, faults ...fault) result {
	t.Helper()
	w := startWorkload(t, c, queue, 2)
	w.awaitConfirmed(t, 200, 60*time.Second)
	for _, f := range faults {
		start := time.Now()
		heal := f.inject(t, c, w)
		time.Sleep(f.hold)
		end := time.Now()
		heal()
		t.Logf("%s: held %v, %d confirmed during it", f.name, f.hold, w.confirmedBetween(start, end))
		if f.majority {
			// An election takes a few ticks past the timeout; by the end
			// of the hold the survivors must be confirming again.
			if n := w.confirmedBetween(start, end); n == 0 {
				t.Errorf("%s: nothing was confirmed while a majority was up for %v", f.name, f.hold)
			}
		}
		w.awaitConfirmed(t, 200, 60*time.Second)
	}
	r := w.finish(t)
	t.Log(r)
	return r
}

// The faults of a process: kill -9 and SIGSTOP.

var killLeader = fault{name: "kill -9 of the leader", hold: 5 * time.Second, majority: true,
	inject: func(t *testing.T, c *cluster, w *workload) func() {
		l := c.leader(w.queue)
		w.strike(l)
		c.kill(l)
		return func() { c.start(l); c.waitUp(l) }
	}}

var killFollower = fault{name: "kill -9 of a follower", hold: 3 * time.Second, majority: true,
	inject: func(t *testing.T, c *cluster, w *workload) func() {
		f := c.follower(c.leader(w.queue))
		w.strike(f)
		c.kill(f)
		return func() { c.start(f); c.waitUp(f) }
	}}

// pauseLeader makes no demand on the majority's confirms during the pause:
// a publish through a follower is forwarded to the paused leader, whose
// kernel still accepts it, and waits until the connection to it is dropped
// for its silence (docs/clustering.md, not done yet), which on a loaded
// machine may take most of the hold.
var pauseLeader = fault{name: "SIGSTOP of the leader past the election timeout", hold: 5 * time.Second,
	inject: func(t *testing.T, c *cluster, w *workload) func() {
		l := c.leader(w.queue)
		w.strike(l)
		l.cmd.Process.Signal(syscall.SIGSTOP)
		return func() { l.cmd.Process.Signal(syscall.SIGCONT) }
	}}

var powerLoss = fault{name: "kill -9 of all nodes at once (power loss)", hold: time.Second,
	inject: func(t *testing.T, c *cluster, w *workload) func() {
		for _, nd := range c.nodes {
			w.strike(nd)
			c.kill(nd)
		}
		return func() {
			for _, nd := range c.nodes {
				c.start(nd)
			}
			for _, nd := range c.nodes {
				c.waitUp(nd)
			}
		}
	}}

// randomFaults picks n faults from pool with rng.
func randomFaults(rng *rand.Rand, pool []fault, n int) []fault {
	out := make([]fault, n)
	for i := range out {
		out[i] = pool[rng.IntN(len(pool))]
	}
	return out
}
