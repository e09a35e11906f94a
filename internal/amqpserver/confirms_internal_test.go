package amqpserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
)

// TestConfirmsCoalesce checks which basic.ack/nack frames a sequence of
// broker verdicts (stored) and reader releases produces when the writer
// runs after all of them.
func TestConfirmsCoalesce(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		steps string // "s1" stored 1, "n1" nacked 1, "r1" released 1, "R1" released after a basic.return
		want  string
	}{
		{"contiguous run coalesces", 3, "s1 r1 r2 s2 s3 r3", "ack 3 multiple"},
		{"single", 1, "r1 s1", "ack 1"},
		{"gap", 3, "s1 r1 s3 r3", "ack 1, ack 3"},
		{"nack in the middle", 3, "s1 r1 n2 r2 s3 r3", "ack 1, nack 2, ack 3"},
		{"run of nacks", 4, "s1 r1 n2 r2 n3 r3 s4 r4", "ack 1, nack 3 multiple, ack 4"},
		{"unreleased holds back", 3, "s1 s2 s3 r1 r3", "ack 1, ack 3"},
		{"return before its ack", 2, "s1 r1 s2 R2", "ack 1, return, ack 2"},
		{"return holds back only its own ack", 3, "s1 r1 s2 R2 s3 r3", "ack 1, ack 3, return, ack 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runConfirms(t, tt.n, func(c *confirms) {
				for _, s := range strings.Fields(tt.steps) {
					var seq uint64
					fmt.Sscan(s[1:], &seq)
					switch s[0] {
					case 's':
						c.stored(seq, nil)
					case 'n':
						c.stored(seq, errors.New("store failed"))
					case 'r':
						c.release(seq, false)
					case 'R':
						c.wr.enqueue(outItem{channel: 1, method: &amqp.BasicReturn{ReplyCode: amqp.NoRoute}})
						c.release(seq, true)
					}
				}
			})
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// runConfirms numbers n publishes, runs steps, then starts the writer and
// returns the confirms (and returns) it sent: "ack 3 multiple, nack 4".
func runConfirms(t *testing.T, n int, steps func(*confirms)) string {
	t.Helper()
	server, client := net.Pipe()
	defer client.Close()
	wr := newWriter(server, server, slog.New(slog.DiscardHandler), 1<<20, time.Minute)
	c := newConfirms(wr, 1)
	for range n {
		c.next()
	}
	steps(c)
	wr.enqueue(outItem{channel: 1, method: &amqp.ChannelCloseOk{}}) // end marker
	go wr.run()

	r := amqp.NewReader(client)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []string
	for {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		m, err := amqp.ReadMethod(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *amqp.BasicAck:
			out = append(out, confirmString("ack", m.DeliveryTag, m.Multiple))
		case *amqp.BasicNack:
			out = append(out, confirmString("nack", m.DeliveryTag, m.Multiple))
		case *amqp.BasicReturn:
			out = append(out, "return")
		case *amqp.ChannelCloseOk:
			wr.close()
			server.Close()
			return strings.Join(out, ", ")
		}
	}
}

func confirmString(kind string, tag uint64, multiple bool) string {
	if multiple {
		return fmt.Sprintf("%s %d multiple", kind, tag)
	}
	return fmt.Sprintf("%s %d", kind, tag)
}
