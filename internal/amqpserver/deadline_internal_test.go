package amqpserver

import (
	"net"
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
