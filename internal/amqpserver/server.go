package amqpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/listen"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Close.
var ErrServerClosed = errors.New("amqpserver: server closed")

// Server accepts AMQP connections and serves them over a broker.
type Server struct {
	cfg    Config
	broker *broker.Broker
	log    *slog.Logger
	nextID atomic.Uint64
	// openConns counts connections past connection.open, against
	// Config.MaxConnections.
	openConns atomic.Int64
	// capWarned and refuseWarned are the second (Unix) of the last
	// warning that a socket was closed at accept, or a connection refused
	// at connection.open, for the connection limit: under a flood of
	// clients, one line a second.
	capWarned, refuseWarned atomic.Int64
	conns                   sync.WaitGroup // one per connection goroutine pair
	// partial counts the body bytes received of publishes in progress on
	// every connection, against Config.BodyMemory.
	partial atomic.Int64
	// blockedNow mirrors blocked != "" for the readers' per-frame look.
	blockedNow atomic.Bool

	// mu guards the fields below.
	mu        sync.Mutex
	listeners []net.Listener
	live      map[*conn]struct{}
	closed    bool
	blocked   string        // reason, when publishers are blocked
	unblocked chan struct{} // closed when not blocked; replaced on SetBlocked
}

// New returns a server over b. It does not listen until Serve or
// ListenAndServe.
func New(cfg Config, b *broker.Broker) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("amqpserver: broker is nil")
	}
	s := &Server{
		cfg:       cfg,
		broker:    b,
		log:       cfg.Logger,
		live:      make(map[*conn]struct{}),
		unblocked: make(chan struct{}),
	}
	close(s.unblocked)
	return s, nil
}

// ListenAndServe listens on Config.Addr and serves until Close.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen amqp %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Close, and closes ln. A failed
// accept (descriptors exhausted, a connection aborted before it was
// taken) does not stop it: it backs off and retries (listen.Retry).
func (s *Server) Serve(ln net.Listener) error {
	ln = listen.Retry(ln, "amqp", s.log)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.log.Info("amqp listening", "addr", ln.Addr().String())

	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			return fmt.Errorf("accept amqp: %w", err)
		}
		s.start(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// start serves one accepted socket, unless the server is closing. With
// Config.MaxConnections set, a socket beyond twice the limit (counting
// those still in their handshake) is closed at once: descriptors stay
// bounded even when clients never finish a handshake. Up to there, a
// connection over the limit hears why at connection.open (limits.go).
func (s *Server) start(nc net.Conn) {
	c := newConn(s, nc, s.nextID.Add(1))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if max := s.cfg.MaxConnections; max > 0 && len(s.live) >= 2*max {
		s.mu.Unlock()
		nc.Close()
		if onceASecond(&s.capWarned) {
			s.log.Warn("amqp socket closed at accept: twice the connection limit is open", "max_connections", max)
		}
		return
	}
	s.live[c] = struct{}{}
	s.conns.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.conns.Done()
		defer s.forget(c)
		c.serve()
	}()
}

// onceASecond reports whether a warning last given in the second at holds
// may be given again, and notes this second.
func onceASecond(at *atomic.Int64) bool {
	now := time.Now().Unix()
	return at.Swap(now) != now
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
}

// Addr returns the address of the first listener, or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

// Close stops accepting, closes every connection with 320
// CONNECTION_FORCED and waits for the connections' goroutines. When ctx
// ends first, the remaining sockets are closed at once.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	lns := s.listeners
	s.listeners = nil
	conns := make([]*conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.shutdown(newError(amqp.ConnectionForced, nil, "broker shutdown"))
	}
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.live {
		c.nc.Close()
	}
	s.mu.Unlock()
	<-done
	return fmt.Errorf("close amqp server: %w", ctx.Err())
}

// SetBlocked blocks publishers, as RabbitMQ does under a resource alarm:
// every client that advertised the connection.blocked capability gets
// connection.blocked with reason, and a connection that publishes is not
// read from until SetUnblocked.
func (s *Server) SetBlocked(reason string) {
	s.mu.Lock()
	if s.blocked == "" {
		s.unblocked = make(chan struct{})
	}
	if reason == "" {
		reason = "blocked"
	}
	s.blocked = reason
	s.blockedNow.Store(true)
	conns := s.liveLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.notifyBlocked(reason)
	}
}

// SetUnblocked ends a SetBlocked: blocked clients get connection.unblocked
// and reading resumes.
func (s *Server) SetUnblocked() {
	s.mu.Lock()
	if s.blocked == "" {
		s.mu.Unlock()
		return
	}
	s.blocked = ""
	s.blockedNow.Store(false)
	close(s.unblocked)
	conns := s.liveLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.notifyUnblocked()
	}
}

// blockState returns the current block reason ("" when not blocked) and
// a channel closed once publishers are unblocked.
func (s *Server) blockState() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blocked, s.unblocked
}

// bodiesOver reports whether the bodies in progress are over
// Config.BodyMemory.
func (s *Server) bodiesOver() bool {
	return s.cfg.BodyMemory > 0 && s.partial.Load() > int64(s.cfg.BodyMemory)
}

// PartialBodyBytes returns the body bytes received of publishes not
// complete yet, on every connection.
func (s *Server) PartialBodyBytes() int64 { return s.partial.Load() }

func (s *Server) liveLocked() []*conn {
	conns := make([]*conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	return conns
}

// Connections returns the broker sessions of the connections that
// completed their handshake, for the HTTP API's listings.
func (s *Server) Connections() []*broker.Connection {
	s.mu.Lock()
	conns := s.liveLocked()
	s.mu.Unlock()
	out := make([]*broker.Connection, 0, len(conns))
	for _, c := range conns {
		c.mu.Lock()
		// bconn is written before isOpen is set under c.mu.
		if c.isOpen && !c.closing {
			out = append(out, c.bconn)
		}
		c.mu.Unlock()
	}
	return out
}

// CloseConnection closes the connection named name (as broker.ConnInfo
// names it) with 320 CONNECTION_FORCED and reason. It reports false when
// no open connection has that name.
func (s *Server) CloseConnection(name, reason string) bool {
	s.mu.Lock()
	conns := s.liveLocked()
	s.mu.Unlock()
	for _, c := range conns {
		if c.name != name {
			continue
		}
		c.mu.Lock()
		open := c.isOpen && !c.closing
		c.mu.Unlock()
		if !open {
			return false
		}
		if reason == "" {
			reason = "closed via management API"
		}
		c.shutdown(newError(amqp.ConnectionForced, nil, "%s", reason))
		return true
	}
	return false
}
