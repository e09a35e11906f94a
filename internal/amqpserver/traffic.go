package amqpserver

// Traffic counters of each connection: bytes read from and written to its
// socket (RabbitMQ's recv_oct and send_oct), for the HTTP API. The reader
// and writer goroutines add to typed atomics; Traffic reads them.

import (
	"io"
	"sync/atomic"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(uint64(n))
	return n, err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (cw countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n.Add(uint64(n))
	return n, err
}

// Traffic returns the bytes received from and sent to the named open
// connection since it was accepted; ok is false when there is none.
func (s *Server) Traffic(name string) (recvOct, sendOct uint64, ok bool) {
	s.mu.Lock()
	conns := s.liveLocked()
	s.mu.Unlock()
	for _, c := range conns {
		if c.name == name {
			return c.recvOct.Load(), c.sendOct.Load(), true
		}
	}
	return 0, 0, false
}
