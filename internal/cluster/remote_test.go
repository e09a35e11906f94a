package cluster

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

type dropReceiver struct{}

func (dropReceiver) Deliver(uint64, *pb.Message) {}
func (dropReceiver) DeliverChunk(uint64, []byte) {}

// msgRecorder is a MessageHandler that records what it hears.
type msgRecorder struct {
	mu   sync.Mutex
	msgs []string
	down []string
}

func (r *msgRecorder) AcceptMessage(from string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, from+":"+string(body))
}

func (r *msgRecorder) PeerDown(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = append(r.down, node)
}

func (r *msgRecorder) counts() (msgs, down int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs), len(r.down)
}

// Two transports: a forwarded request's reply carries a body or the
// handler's error; messages arrive in order; a connection's end is heard
// by both sides, and a request waiting on it fails.
func TestTransportMessagesAndReplies(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes = map[string]string{"n1": freeAddr(t), "n2": freeAddr(t)}
	c1, c2 := cfg, cfg
	c1.Node, c2.Node = "n1", "n2"
	t1, err := NewTCPTransport(c1, dropReceiver{})
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Close()
	t2, err := NewTCPTransport(c2, dropReceiver{})
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := &msgRecorder{}, &msgRecorder{}
	t1.SetMessageHandler(r1)
	t2.SetMessageHandler(r2)
	hold := make(chan func([]byte, error), 1)
	t2.SetForwardHandler(func(from string, body []byte, reply func([]byte, error)) {
		switch string(body) {
		case "echo":
			reply([]byte(from+" asked"), nil)
		case "fail":
			reply(nil, errors.New("no such thing"))
		case "empty":
			reply(nil, nil)
		default:
			hold <- reply // never answered
		}
	})
	waitFor(t, "connection", func() bool { return t1.Connected("n2") && t2.Connected("n1") })
	call := func(body string) ([]byte, error) {
		done := make(chan struct{})
		var resp []byte
		var err error
		t1.Forward("n2", []byte(body), 5*time.Second, func(r []byte, e error) { resp, err = r, e; close(done) })
		<-done
		return resp, err
	}
	if resp, err := call("echo"); err != nil || string(resp) != "n1 asked" {
		t.Fatalf("echo: %q, %v", resp, err)
	}
	if resp, err := call("empty"); err != nil || resp != nil {
		t.Fatalf("empty reply: %q, %v", resp, err)
	}
	if _, err := call("fail"); !errors.Is(err, ErrForward) {
		t.Fatalf("failed request: %v, want ErrForward", err)
	}
	for i := range 100 {
		if !t1.SendMessage("n2", []byte(fmt.Sprint(i))) {
			t.Fatalf("message %d not sent", i)
		}
	}
	waitFor(t, "messages", func() bool { n, _ := r2.counts(); return n == 100 })
	for i, m := range r2.msgs {
		if m != fmt.Sprintf("n1:%d", i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
	// A request whose node goes away fails; both sides hear PeerDown.
	pending := make(chan error, 1)
	t1.Forward("n2", []byte("hold"), time.Minute, func(_ []byte, e error) { pending <- e })
	<-hold
	t2.Close()
	select {
	case err := <-pending:
		if err == nil {
			t.Fatal("a request to a node that went away succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request to a node that went away did not fail")
	}
	waitFor(t, "peer down", func() bool { _, d1 := r1.counts(); _, d2 := r2.counts(); return d1 > 0 && d2 > 0 })
	if t1.SendMessage("n2", []byte("late")) {
		t.Fatal("a message to a node that is not connected was sent")
	}
}
