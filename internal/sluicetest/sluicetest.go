// Package sluicetest starts a whole Sluice broker for tests: the broker
// over an in-memory (or, WithDataDir, the durable) store and its AMQP server on 127.0.0.1:0, shut down by
// t.Cleanup. It is imported only by tests.
//
// Start owns one goroutine (the AMQP accept loop) and waits for it in the
// cleanup. A *Broker is safe for concurrent use.
package sluicetest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/store"
	"github.com/sluicemq/sluice/internal/store/memstore"
	"github.com/sluicemq/sluice/internal/store/pebblestore"
)

// Option changes how Start builds the broker.
type Option func(*options)

type options struct {
	dataDir string
	level   slog.Level
	server  func(*amqpserver.Config)
	broker  func(*broker.Config)
	wrap    func(store.Store) store.Store
	store   func(*pebblestore.Options)
	tls     *tls.Config
	pipe    bool
}

// WithDataDir keeps the broker's state in the durable store in dir, so a
// test can stop a broker and start another on the same data. Without it
// the broker uses an in-memory store.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithLogLevel sets the level of the log lines the broker writes to the
// test's output (default: Warn).
func WithLogLevel(l slog.Level) Option { return func(o *options) { o.level = l } }

// WithServerConfig lets a test change the AMQP server's configuration.
func WithServerConfig(f func(*amqpserver.Config)) Option { return func(o *options) { o.server = f } }

// WithBrokerConfig lets a test change the broker's configuration.
func WithBrokerConfig(f func(*broker.Config)) Option { return func(o *options) { o.broker = f } }

// WithStoreWrapper hands the broker wrap's view of its store (to slow or
// fail it); the store itself is still closed by the cleanup.
func WithStoreWrapper(wrap func(store.Store) store.Store) Option {
	return func(o *options) { o.wrap = wrap }
}

// WithStoreOptions lets a test change the durable store's options (its
// file system, for faults); it needs WithDataDir.
func WithStoreOptions(f func(*pebblestore.Options)) Option { return func(o *options) { o.store = f } }

// WithTLS adds a TLS listener with conf (TLSAddr), beside the plain one.
func WithTLS(conf *tls.Config) Option { return func(o *options) { o.tls = conf } }

// Broker is a running broker.
type Broker struct {
	Broker  *broker.Broker
	Server  *amqpserver.Server
	addr    string
	tlsAddr string
	pipe    *pipeListener // WithPipe
}

// Start starts a broker and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	o := options{level: slog.LevelWarn}
	for _, opt := range opts {
		opt(&o)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: o.level}))

	bcfg := broker.DefaultConfig()
	bcfg.Logger = log
	bcfg.PasswordCost = access.MinCost // still bcrypt, at a cost a test can afford per user
	if o.broker != nil {
		o.broker(&bcfg)
	}
	var st store.Store = memstore.New()
	var fenceTo atomic.Pointer[broker.Broker]
	if o.dataDir != "" {
		sopts := pebblestore.DefaultOptions()
		sopts.Logger = log
		// As cmd/sluice: the store's own failures fence the broker.
		sopts.OnFence = func(err error) {
			if b := fenceTo.Load(); b != nil {
				b.FenceStore(err)
			}
		}
		if o.store != nil {
			o.store(&sopts)
		}
		ps, err := pebblestore.Open(o.dataDir, sopts)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		st = ps
	}
	bst := st
	if o.wrap != nil {
		bst = o.wrap(st)
	}
	b, err := broker.Open(bcfg, bst)
	if err != nil {
		t.Fatalf("open broker: %v", err)
	}
	fenceTo.Store(b)

	scfg := amqpserver.DefaultConfig()
	scfg.Logger = log
	scfg.Addr = "127.0.0.1:0"
	if o.server != nil {
		o.server(&scfg)
	}
	srv, err := amqpserver.New(scfg, b)
	if err != nil {
		t.Fatalf("new amqp server: %v", err)
	}
	var ln net.Listener
	var pipe *pipeListener
	if o.pipe {
		pipe = newPipeListener()
		ln = pipe
	} else {
		var err error
		ln, err = net.Listen("tcp", scfg.Addr)
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
	}
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	serving := 1
	tlsAddr := ""
	if o.tls != nil {
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		tlsAddr = tln.Addr().String()
		serving++
		go func() { served <- srv.Serve(tls.NewListener(tln, o.tls)) }()
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close amqp server: %v", err)
		}
		for range serving {
			if err := <-served; !errors.Is(err, amqpserver.ErrServerClosed) {
				t.Errorf("serve: %v", err)
			}
		}
		// A test that fenced the store on purpose (an injected disk
		// fault) hears the fence again from Close: the changes still
		// deferred could not be written, as the fence says.
		if err := b.Close(ctx); err != nil && b.Fenced() == nil {
			t.Errorf("close broker: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &Broker{Broker: b, Server: srv, addr: ln.Addr().String(), tlsAddr: tlsAddr, pipe: pipe}
}

// TLSAddr returns the TLS listener's host:port (WithTLS), or "".
func (b *Broker) TLSAddr() string { return b.tlsAddr }

// Addr returns the AMQP listener's host:port.
func (b *Broker) Addr() string { return b.addr }

// URL returns the AMQP URL of the default user guest/guest on the default
// vhost: "amqp://guest:guest@127.0.0.1:port/".
func (b *Broker) URL() string { return fmt.Sprintf("amqp://guest:guest@%s/", b.addr) }

// URLFor returns an AMQP URL for a user, password and vhost.
func (b *Broker) URLFor(user, password, vhost string) string {
	return fmt.Sprintf("amqp://%s@%s/%s", url.UserPassword(user, password).String(), b.addr, url.PathEscape(vhost))
}

// Dial opens an AMQP connection to the broker as guest, closed by
// t.Cleanup.
func (b *Broker) Dial(t testing.TB) *amqp091.Connection {
	t.Helper()
	var conn *amqp091.Connection
	var err error
	if b.pipe != nil {
		conn, err = amqp091.DialConfig(b.URL(), amqp091.Config{Dial: b.pipe.dial, Heartbeat: 10 * time.Second, Locale: "en_US"})
	} else {
		conn, err = amqp091.Dial(b.URL())
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Channel opens a channel on conn.
func Channel(t testing.TB, conn *amqp091.Connection) *amqp091.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// FreeAddr returns a loopback address whose port is free now, for a server
// a test starts in another process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel hands a closed port out again: one it gave this
		// process before may be another node's, not started yet.
		if !handed[addr] {
			handed[addr] = true
			return addr
		}
	}
}

var (
	handedMu sync.Mutex
	handed   = map[string]bool{} // FreeAddr's answers so far
)
