package httpapi_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/httpapi"
)

// readUntilClosed reads nc until the server closes it, for at most 5 s,
// and reports whether it did.
func readUntilClosed(t *testing.T, nc net.Conn) bool {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}

// A client that announces a body and never sends it does not hold its
// connection (and descriptor) forever: ReadTimeout closes it.
func TestHTTPDropsAnnouncedBodyNeverSent(t *testing.T) {
	e := startWith(t, func(c *httpapi.Config) { c.ReadTimeout = 300 * time.Millisecond })
	nc, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "POST /api/exchanges/%2F/amq.default/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if !readUntilClosed(t, nc) {
		t.Error("the connection is still open 5 s after its body stalled")
	}
}

// Past MaxConnections open HTTP connections a new one is closed at
// accept; once one closes, requests are served again.
func TestHTTPMaxConnections(t *testing.T) {
	e := startWith(t, func(c *httpapi.Config) { c.MaxConnections = 2 })
	addr := strings.TrimPrefix(e.url, "http://")
	var held []net.Conn
	for range 2 { // idle connections, held open
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		held = append(held, nc)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !readUntilClosed(t, nc) {
		t.Fatal("a third connection stays open past MaxConnections 2")
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(e.url + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request served after a connection closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
