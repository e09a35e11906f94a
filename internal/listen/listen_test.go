package listen

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestSplitAndWithPort(t *testing.T) {
	if got := Split(" 127.0.0.1:5672, [::1]:5672,,"); !slices.Equal(got, []string{"127.0.0.1:5672", "[::1]:5672"}) {
		t.Errorf("Split = %q", got)
	}
	for in, want := range map[string]string{"0.0.0.0": "0.0.0.0:5671", "::1": "[::1]:5671", "[::1]": "[::1]:5671",
		"h:1": "h:1", ":5672": ":5672", "localhost": "localhost:5671"} {
		if got := WithPort(in, "5671"); got != want {
			t.Errorf("WithPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpenNamesTheFlag(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = Open("amqp", "127.0.0.1:0,"+busy.Addr().String(), "5672", quiet)
	if err == nil || !strings.HasPrefix(err.Error(), "--amqp "+busy.Addr().String()+": the address is in use") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("err = %v", err)
	}
	if _, err := Open("http", " , ", "15672", quiet); err == nil {
		t.Error("an empty list opened")
	}
	lns, err := Open("amqp", "127.0.0.1:0,127.0.0.1:0", "5672", quiet)
	if err != nil || len(lns) != 2 {
		t.Fatalf("Open = %v, %v", lns, err)
	}
	Close(lns)
}

func TestNoIPv6OnlyForTheLoopback(t *testing.T) {
	notAvail := &net.OpError{Op: "listen", Err: syscall.EADDRNOTAVAIL}
	if !noIPv6("[::1]:5672", notAvail) {
		t.Error("::1 unavailable is not skipped")
	}
	if noIPv6("[2001:db8::1]:5672", notAvail) || noIPv6("127.0.0.1:5672", notAvail) {
		t.Error("a non-loopback or IPv4 address is skipped")
	}
	if noIPv6("[::1]:5672", &net.OpError{Op: "listen", Err: syscall.EADDRINUSE}) {
		t.Error("::1 in use is skipped")
	}
}

type failing struct {
	net.Listener
	n atomic.Int32
}

func (f *failing) Accept() (net.Conn, error) {
	f.n.Add(1)
	return nil, &net.OpError{Op: "accept", Err: syscall.EMFILE}
}

// Close wakes an Accept that waits out its back-off.
func TestRetryStopsOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &failing{Listener: ln}
	r := Retry(f, "test", quiet)
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := r.Accept(); done <- err }()
	for f.n.Load() < 3 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("Accept was not retried")
		}
		time.Sleep(time.Millisecond)
	}
	// The second and third tries come after pauses of 5 and 10 ms.
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("three accepts in %v: no back-off", d)
	}
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}
