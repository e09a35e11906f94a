package sluicetest

import (
	"errors"
	"net"
	"sync"
)

// WithPipe serves AMQP over in-memory net.Pipe connections instead of
// loopback TCP, so a test can run the whole broker and its client inside a
// testing/synctest bubble: a goroutine waiting on a pipe is durably
// blocked, one waiting on a socket is not, and fake time only moves when
// every goroutine in the bubble is durably blocked. Dial uses the pipe;
// Addr and URL still name a host:port, which the pipe ignores.
func WithPipe() Option { return func(o *options) { o.pipe = true } }

// pipeListener hands the server side of each net.Pipe to Accept.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial returns the client side of a new pipe whose server side Accept
// returns.
func (l *pipeListener) dial(string, string) (net.Conn, error) {
	c, s := net.Pipe()
	client, server := loopbackConn{c}, loopbackConn{s}
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		client.Close()
		server.Close()
		return nil, errors.New("sluicetest: pipe listener closed")
	}
}

// loopbackConn gives a pipe end loopback addresses, as the guest user may
// log in from loopback only.
type loopbackConn struct{ net.Conn }

var loopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5672}

func (loopbackConn) LocalAddr() net.Addr  { return loopback }
func (loopbackConn) RemoteAddr() net.Addr { return loopback }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "127.0.0.1:5672" }
