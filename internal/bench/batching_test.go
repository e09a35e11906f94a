package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
)

func TestParseAMQPURL(t *testing.T) {
	tests := []struct {
		url  string
		want amqpTarget
		err  string
	}{
		{"amqp://guest:guest@127.0.0.1:5731/", amqpTarget{addr: "127.0.0.1:5731", serverName: "127.0.0.1", user: "guest", password: "guest", vhost: "/"}, ""},
		{"amqp://localhost", amqpTarget{addr: "localhost:5672", serverName: "localhost", user: "guest", password: "guest", vhost: "/"}, ""},
		{"amqps://u:p%40ss@h.example/prod", amqpTarget{addr: "h.example:5671", tls: true, serverName: "h.example", user: "u", password: "p@ss", vhost: "prod"}, ""},
		{"amqp://u@[::1]:6000/%2f", amqpTarget{addr: "[::1]:6000", serverName: "::1", user: "u", password: "guest", vhost: "/"}, ""},
		{"amqp://h/a%2Fb", amqpTarget{addr: "h:5672", serverName: "h", user: "guest", password: "guest", vhost: "a/b"}, ""},
		{"http://h/", amqpTarget{}, "scheme"},
		{"amqp:///", amqpTarget{}, "no host"},
		{"amqp://h:0/", amqpTarget{}, "bad port"},
		{"amqp://h:99999/", amqpTarget{}, "bad port"},
		{"amqp://[::1", amqpTarget{}, "parse url"},
	}
	for _, tt := range tests {
		got, err := parseAMQPURL(tt.url)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseAMQPURL(%q) error = %v, want one containing %q", tt.url, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("parseAMQPURL(%q) error = %v", tt.url, err)
		case tt.err == "" && got != tt.want:
			t.Errorf("parseAMQPURL(%q) =\n %+v, want\n %+v", tt.url, got, tt.want)
		}
	}
}

func TestTuneOk(t *testing.T) {
	tests := []struct {
		channelMax, wantChannelMax uint16
		frameMax, wantFrameMax     uint32
	}{
		{2047, 2047, 131072, 131072},
		{0, 1, 0, batchFrameMax},
		{1, 1, 1 << 20, batchFrameMax},
		{10, 10, 8192, 8192},
	}
	for _, tt := range tests {
		got := tuneOk(&amqp.ConnectionTune{ChannelMax: tt.channelMax, FrameMax: tt.frameMax, Heartbeat: 60})
		if got.ChannelMax != tt.wantChannelMax || got.FrameMax != tt.wantFrameMax || got.Heartbeat != 0 {
			t.Errorf("tuneOk(channel-max %d, frame-max %d) = %+v, want %d, %d, heartbeat 0",
				tt.channelMax, tt.frameMax, got, tt.wantChannelMax, tt.wantFrameMax)
		}
	}
}

func TestConfirmReaderSettles(t *testing.T) {
	type conf struct {
		tag            uint64
		multiple, nack bool
	}
	tests := []struct {
		name                    string
		published               uint64
		confs                   []conf
		confirmed, nacked, left int64
		err                     string
	}{
		{"single acks in order", 3, []conf{{1, false, false}, {2, false, false}, {3, false, false}}, 3, 0, 0, ""},
		{"multiple", 5, []conf{{3, true, false}, {5, true, true}}, 3, 2, 0, ""},
		{"out of order, then multiple", 5, []conf{{2, false, false}, {4, false, true}, {5, true, false}}, 4, 1, 0, ""},
		{"duplicates ignored", 4, []conf{{1, false, false}, {1, false, false}, {2, true, false}, {2, true, false}}, 2, 0, 2, ""},
		{"multiple with tag 0 settles all", 3, []conf{{0, true, false}}, 3, 0, 0, ""},
		{"tag never published", 2, []conf{{3, false, false}}, 0, 0, 2, "delivery tag 3"},
		{"single tag 0", 2, []conf{{0, false, false}}, 0, 0, 2, "delivery tag 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPhaseRun(0, 0, 0)
			r := newConfirmReader(nil, p, NewHistogram(), time.Now(), 8)
			for range tt.published {
				r.tokens <- struct{}{}
			}
			r.tagged.Store(tt.published)
			var err error
			for _, c := range tt.confs {
				if err = r.confirm(c.tag, c.multiple, !c.nack); err != nil {
					break
				}
			}
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("confirm error = %v, want %q", err, tt.err)
			}
			if p.confirmed.Load() != tt.confirmed || p.nacked.Load() != tt.nacked || int64(len(r.tokens)) != tt.left {
				t.Errorf("confirmed %d nacked %d tokens left %d, want %d %d %d",
					p.confirmed.Load(), p.nacked.Load(), len(r.tokens), tt.confirmed, tt.nacked, tt.left)
			}
			if got := r.lat.Summary().Count; got != uint64(tt.confirmed+tt.nacked) {
				t.Errorf("latency samples %d, want %d", got, tt.confirmed+tt.nacked)
			}
		})
	}
}

// fakeServer accepts one connection on 127.0.0.1 and runs script on it; the
// test's cleanup closes everything and waits for it. script's error is
// reported through the returned channel.
func fakeServer(t *testing.T, script func(r *amqp.Reader, w *amqp.Writer) error) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	res := make(chan error, 1)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		nc net.Conn
	)
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			res <- err
			return
		}
		mu.Lock()
		nc = c
		mu.Unlock()
		defer c.Close()
		r := amqp.NewReader(c)
		if err := r.ReadProtocolHeader(); err != nil {
			res <- err
			return
		}
		res <- script(r, amqp.NewWriter(c))
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		if nc != nil {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), res
}

// send writes and flushes method m.
func send(w *amqp.Writer, ch uint16, m amqp.Method) error {
	if err := w.WriteMethod(ch, m); err != nil {
		return err
	}
	return w.Flush()
}

// recv reads the next method, which must be a T.
func recv[T amqp.Method](r *amqp.Reader) (T, error) {
	var zero T
	f, err := r.ReadFrame()
	if err != nil {
		return zero, err
	}
	m, err := amqp.ReadMethod(f.Payload)
	if err != nil {
		return zero, err
	}
	got, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("got %s, want %s", m.Name(), zero.Name())
	}
	return got, nil
}

func start(w *amqp.Writer, mechanisms string) error {
	return send(w, 0, &amqp.ConnectionStart{VersionMajor: 0, VersionMinor: 9, Mechanisms: mechanisms, Locales: "en_US"})
}

func TestHandshake(t *testing.T) {
	var (
		startOk *amqp.ConnectionStartOk
		tuneOk  *amqp.ConnectionTuneOk
		open    *amqp.ConnectionOpen
	)
	addr, res := fakeServer(t, func(r *amqp.Reader, w *amqp.Writer) error {
		var err error
		if err = start(w, "AMQPLAIN PLAIN"); err != nil {
			return err
		}
		if startOk, err = recv[*amqp.ConnectionStartOk](r); err != nil {
			return err
		}
		if err = send(w, 0, &amqp.ConnectionTune{ChannelMax: 0, FrameMax: 0, Heartbeat: 60}); err != nil {
			return err
		}
		if tuneOk, err = recv[*amqp.ConnectionTuneOk](r); err != nil {
			return err
		}
		if open, err = recv[*amqp.ConnectionOpen](r); err != nil {
			return err
		}
		if err = send(w, 0, &amqp.ConnectionOpenOk{}); err != nil {
			return err
		}
		if _, err = recv[*amqp.ChannelOpen](r); err != nil {
			return err
		}
		if err = send(w, 1, &amqp.ChannelOpenOk{}); err != nil {
			return err
		}
		if _, err = recv[*amqp.ConfirmSelect](r); err != nil {
			return err
		}
		return send(w, 1, &amqp.ConfirmSelectOk{})
	})
	target := amqpTarget{addr: addr, user: "bob", password: "s3cret", vhost: "perf"}
	var tracked []io.Closer
	c, err := openBatchConn(t.Context(), target, "publisher 7", true, func(c io.Closer) error { tracked = append(tracked, c); return nil })
	if err != nil {
		t.Fatalf("openBatchConn: %v", err)
	}
	defer c.nc.Close()
	if err := <-res; err != nil {
		t.Fatalf("fake server: %v", err)
	}
	if len(tracked) != 1 {
		t.Errorf("tracked %d closers, want the socket", len(tracked))
	}
	if startOk.Mechanism != "PLAIN" || startOk.Response != "\x00bob\x00s3cret" || startOk.Locale != "en_US" ||
		startOk.ClientProperties["connection_name"] != "sluice-bench publisher 7" || startOk.ClientProperties["product"] != "sluice-bench" {
		t.Errorf("start-ok %+v", startOk)
	}
	if tuneOk.ChannelMax != 1 || tuneOk.FrameMax != batchFrameMax || tuneOk.Heartbeat != 0 || c.frameMax != batchFrameMax {
		t.Errorf("tune-ok %+v, frame max %d", tuneOk, c.frameMax)
	}
	if open.VirtualHost != "perf" {
		t.Errorf("connection.open vhost %q, want perf", open.VirtualHost)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	tests := []struct {
		name   string
		script func(r *amqp.Reader, w *amqp.Writer) error
		want   string
		code   uint16 // of a *ServerCloseError, when one is wanted
	}{
		{
			name:   "no PLAIN",
			script: func(r *amqp.Reader, w *amqp.Writer) error { return start(w, "AMQPLAIN EXTERNAL") },
			want:   `mechanisms "AMQPLAIN EXTERNAL"`,
		},
		{
			name: "login refused",
			script: func(r *amqp.Reader, w *amqp.Writer) error {
				if err := start(w, "PLAIN"); err != nil {
					return err
				}
				if _, err := recv[*amqp.ConnectionStartOk](r); err != nil {
					return err
				}
				if err := send(w, 0, &amqp.ConnectionClose{ReplyCode: 403, ReplyText: "ACCESS_REFUSED - login refused"}); err != nil {
					return err
				}
				_, err := recv[*amqp.ConnectionCloseOk](r)
				return err
			},
			want: "ACCESS_REFUSED - login refused",
			code: 403,
		},
		{
			name: "frame-max below the minimum",
			script: func(r *amqp.Reader, w *amqp.Writer) error {
				if err := start(w, "PLAIN"); err != nil {
					return err
				}
				if _, err := recv[*amqp.ConnectionStartOk](r); err != nil {
					return err
				}
				return send(w, 0, &amqp.ConnectionTune{FrameMax: 1024})
			},
			want: "frame-max 1024",
		},
		{
			name: "unexpected method",
			script: func(r *amqp.Reader, w *amqp.Writer) error {
				return send(w, 0, &amqp.ConnectionTune{FrameMax: 4096})
			},
			want: "got connection.tune, want connection.start",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, res := fakeServer(t, tt.script)
			target := amqpTarget{addr: addr, user: "u", password: "p", vhost: "/"}
			_, err := openBatchConn(t.Context(), target, "x", false, func(io.Closer) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("openBatchConn error = %v, want one containing %q", err, tt.want)
			}
			var ce *ServerCloseError
			if tt.code != 0 && (!errors.As(err, &ce) || ce.Code != tt.code || !ce.Connection) {
				t.Errorf("error %v, want a connection *ServerCloseError with code %d", err, tt.code)
			}
			if err := <-res; err != nil {
				t.Errorf("fake server: %v", err)
			}
		})
	}
}
