package bench

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

func TestRunRefusesInvalidConfig(t *testing.T) {
	c := DefaultConfig()
	c.Publishers = 0
	var out bytes.Buffer
	if _, err := Run(context.Background(), c, &out); err == nil || !strings.Contains(err.Error(), "publishers") {
		t.Fatalf("Run() error = %v, want the config error", err)
	}
	if out.Len() != 0 {
		t.Errorf("Run() wrote %q for an invalid config", out.String())
	}
}

func TestRunReportsUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := DefaultConfig()
	c.URL = "amqp://guest:secret@" + addr + "/"
	_, err = Run(context.Background(), c, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Run() error = %v, want a connect error", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("Run() error %q shows the password", err)
	}
}
