package amqpserver

import (
	"net"
	"testing"
	"time"
)

// TestPeerClosed checks that a client's close is seen without reading,
// even with its bytes still unread before the end.
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client.Write(make([]byte, 1000))
	time.Sleep(20 * time.Millisecond)
	if peerClosed(server) {
		t.Fatal("open connection reported closed")
	}
	client.Close()
	for deadline := time.Now().Add(2 * time.Second); !peerClosed(server); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("closed connection not reported closed")
		}
	}
}
