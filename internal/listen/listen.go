// Package listen opens the broker's listening sockets: comma-separated
// address lists per flag (--amqp, --amqps, --http, --https), TLS with
// certificates that can be re-read while connections stay up (tls.go), and
// an accept loop that backs off on errors instead of stopping, as
// net/http's does.
//
// It starts no goroutines. A Retry listener and a Certs are safe for
// concurrent use.
package listen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Split reads a comma-separated address list; blanks are dropped.
func Split(list string) []string {
	var out []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// WithPort adds port to an address given without one ("0.0.0.0",
// "::1", "[::1]"), so --amqps 0.0.0.0 means 0.0.0.0:5671.
func WithPort(addr, port string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), port)
}

// Open listens on each address of list, naming flag in any error (so an
// operator sees which setting to change). An IPv6 loopback address on a
// machine without IPv6 is skipped with a log line, as long as another
// address of the list opened: the default lists name both loopbacks.
func Open(flag, list, defaultPort string, log *slog.Logger) ([]net.Listener, error) {
	addrs := Split(list)
	if len(addrs) == 0 {
		return nil, fmt.Errorf("--%s: no address given", flag)
	}
	var (
		lns     []net.Listener
		skipped []string
	)
	for _, a := range addrs {
		a = WithPort(a, defaultPort)
		ln, err := net.Listen("tcp", a)
		if err != nil && noIPv6(a, err) {
			skipped = append(skipped, a)
			log.Info("listen: skipped an IPv6 loopback address this machine lacks", "flag", flag, "addr", a, "err", err)
			continue
		}
		if err != nil {
			Close(lns)
			return nil, listenError(flag, a, err)
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		return nil, fmt.Errorf("--%s %s: no address could be opened", flag, strings.Join(skipped, ","))
	}
	return lns, nil
}

// Close closes every listener of lns.
func Close(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func listenError(flag, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("--%s %s: the address is in use (another broker running?); choose another with --%s: %w", flag, addr, flag, err)
	}
	return fmt.Errorf("--%s %s: %w", flag, addr, err)
}

// noIPv6 reports whether listening on addr failed because the machine
// has no IPv6 loopback.
func noIPv6(addr string, err error) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil || !ip.IsLoopback() {
		return false
	}
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) ||
		errors.Is(err, syscall.EPROTONOSUPPORT)
}

// Retry wraps ln so that Accept never fails for a passing reason: a
// failed accept (EMFILE when descriptors run out, ECONNABORTED, …) is
// logged and retried after a delay that doubles from 5 ms to 1 s, as
// net/http's Server does for temporary errors. Only a closed listener
// ends Accept. Closing the wrapper wakes a waiting retry at once.
func Retry(ln net.Listener, name string, log *slog.Logger) net.Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &retryListener{Listener: ln, name: name, log: log, ctx: ctx, cancel: cancel}
}

type retryListener struct {
	net.Listener
	name   string
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the field below.
	mu       sync.Mutex
	lastWarn time.Time
}

// retryMax is the longest wait between two accepts that failed.
const retryMax = time.Second

func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) || l.ctx.Err() != nil {
			return nil, err
		}
		delay = min(max(2*delay, 5*time.Millisecond), retryMax)
		l.warn(err, delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

// warn logs a failed accept at most once a second: under EMFILE every
// retry fails, and one line per retry would flood the log.
func (l *retryListener) warn(err error, delay time.Duration) {
	l.mu.Lock()
	now := time.Now()
	quiet := now.Sub(l.lastWarn) < time.Second
	if !quiet {
		l.lastWarn = now
	}
	l.mu.Unlock()
	if !quiet {
		l.log.Warn("accept failed; retrying", "listener", l.name, "addr", l.Addr().String(), "err", err, "retry_in", delay)
	}
}

func (l *retryListener) Close() error {
	l.cancel()
	return l.Listener.Close()
}

// Cap wraps ln so that a socket accepted while open() reports max or more
// connections is closed at once (logged at most once a second): clients
// that hold connections open cannot take every descriptor. The caller
// counts its connections (net/http's ConnState), so that the connections
// it serves keep their own type (a *tls.Conn stays one). max 0: no cap.
func Cap(ln net.Listener, max int, open func() int, name string, log *slog.Logger) net.Listener {
	if max <= 0 {
		return ln
	}
	return &capListener{Listener: ln, max: max, open: open, name: name, log: log}
}

type capListener struct {
	net.Listener
	max    int
	open   func() int
	name   string
	log    *slog.Logger
	warned atomic.Int64 // the Unix second of the last warning
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.open() < l.max {
			return c, err
		}
		c.Close()
		if now := time.Now().Unix(); l.warned.Swap(now) != now {
			l.log.Warn("connection closed at accept: the listener's connection cap is reached", "listener", l.name, "max", l.max)
		}
	}
}
