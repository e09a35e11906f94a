package amqpserver

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// TestPushDeadline checks that frames arriving at any pace keep the read
// deadline at least two heartbeat intervals after the latest frame (the
// spec's timeout) and at most 2.5 after it, while moving it only every
// half interval.
func TestPushDeadline(t *testing.T) {
	const hb = 10 * time.Second
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		gaps  []time.Duration // between frames
		moves int             // deadline moves, the first frame's included
	}{
		{"burst", []time.Duration{0, time.Millisecond, time.Millisecond, time.Millisecond}, 1},
		{"steady", []time.Duration{0, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second}, 2},
		{"slow", []time.Duration{0, 6 * time.Second, 6 * time.Second, 6 * time.Second}, 4},
		{"edge", []time.Duration{0, hb/2 - 1, 1, hb/2 - 1, 1}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc := &deadlineConn{}
			c := &conn{nc: dc, heartbeat: hb}
			now := t0
			for i, gap := range tt.gaps {
				now = now.Add(gap)
				c.pushDeadline(now)
				if len(dc.set) == 0 {
					t.Fatalf("frame %d: no deadline set", i)
				}
				last := dc.set[len(dc.set)-1]
				if left := last.Sub(now); left < 2*hb || left > 2*hb+hb/2 {
					t.Fatalf("frame %d: deadline %v after it, want between %v and %v", i, left, 2*hb, 2*hb+hb/2)
				}
			}
			if len(dc.set) != tt.moves {
				t.Errorf("deadline moved %d times, want %d", len(dc.set), tt.moves)
			}
		})
	}
}

// TestWriteTimeoutFromLastProgress checks that a write to a client that
// reads for a while and then stops fails the write timeout after its
// socket last took bytes: not before, and not a second timeout later
// because the stalled write had made progress first (a 30 s timeout closed
// such clients after 50-55 s).
func TestWriteTimeoutFromLastProgress(t *testing.T) {
	const timeout = 3 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	var sent atomic.Uint64
	dw := deadlineWriter{nc: server, w: countingWriter{server, &sent}, timeout: timeout}
	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		// One write larger than the socket buffers of both ends.
		_, err := dw.Write(make([]byte, 64<<20))
		done <- result{time.Now(), err}
	}()

	// The client reads 2 MiB, inside that one write, and then stops.
	var lastRead time.Time
	buf := make([]byte, 64<<10)
	time.Sleep(100 * time.Millisecond)
	for read := 0; read < 2<<20; {
		n, err := client.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		read += n
		lastRead = time.Now()
	}

	var counted uint64
	lastCount := lastRead
	for {
		select {
		case r := <-done:
			var ne net.Error
			if !errors.As(r.err, &ne) || !ne.Timeout() {
				t.Fatalf("write ended with %v, want a timeout", r.err)
			}
			t.Logf("timed out %v after the client's last read, %v after the last bytes counted",
				r.at.Sub(lastRead).Round(time.Millisecond), r.at.Sub(lastCount).Round(time.Millisecond))
			if r.at.Sub(lastCount) < timeout*3/4 { // the sampling above may see bytes late
				t.Fatalf("timed out %v after the socket last took bytes, before the %v timeout", r.at.Sub(lastCount), timeout)
			}
			if r.at.Sub(lastRead) > timeout+timeout/2 {
				t.Fatalf("timed out %v after the client's last read, want about the %v timeout", r.at.Sub(lastRead), timeout)
			}
			return
		case <-time.After(2 * time.Millisecond):
			if n := sent.Load(); n != counted {
				counted, lastCount = n, time.Now()
			}
		}
	}
}
