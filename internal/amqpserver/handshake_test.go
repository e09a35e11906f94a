package amqpserver_test

import (
	"io"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/sluicemq/sluice/internal/amqp"
	"github.com/sluicemq/sluice/internal/amqpserver"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

func TestHandshakeMechanisms(t *testing.T) {
	b := sluicetest.Start(t)
	tests := []struct {
		name string
		auth amqp091.Authentication
	}{
		{"PLAIN", &amqp091.PlainAuth{Username: "guest", Password: "guest"}},
		{"AMQPLAIN", &amqp091.AMQPlainAuth{Username: "guest", Password: "guest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := amqp091.DialConfig("amqp://"+b.Addr()+"/", amqp091.Config{SASL: []amqp091.Authentication{tt.auth}})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				t.Fatalf("channel: %v", err)
			}
			if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
				t.Fatalf("declare: %v", err)
			}
		})
	}
}

func TestHandshakeRefused(t *testing.T) {
	b := sluicetest.Start(t)
	tests := []struct {
		name   string
		url    string
		code   int
		reason string
	}{
		{"unknown vhost", b.URLFor("guest", "guest", "nosuch"), amqp.NotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := amqp091.Dial(tt.url)
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded")
			}
			ae := wantAMQPError(t, err, tt.code)
			if tt.reason != "" && ae.Reason != tt.reason {
				t.Errorf("reason %q, want %q", ae.Reason, tt.reason)
			}
		})
	}
}

func TestServerPropertiesAndTune(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	props := conn.Properties
	for key, want := range map[string]string{"product": "Sluice", "cluster_name": "sluice"} {
		if got := props[key]; got != want {
			t.Errorf("server property %s = %v, want %q", key, got, want)
		}
	}
	caps, ok := props["capabilities"].(amqp091.Table)
	if !ok {
		t.Fatalf("capabilities = %#v, want a table", props["capabilities"])
	}
	for _, c := range []string{"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
		"consumer_cancel_notify", "connection.blocked", "authentication_failure_close",
		"per_consumer_qos", "direct_reply_to"} {
		if caps[c] != true {
			t.Errorf("capability %s = %v, want true", c, caps[c])
		}
	}
	if conn.Config.ChannelMax != 2047 || conn.Config.FrameSize != 131072 || conn.Config.Heartbeat != 10*time.Second {
		// amqp091-go proposes a 10s heartbeat, below the server's 60s.
		t.Errorf("tuned channel_max %d frame_max %d heartbeat %v, want 2047 131072 10s",
			conn.Config.ChannelMax, conn.Config.FrameSize, conn.Config.Heartbeat)
	}
	if l := conn.Locales; len(l) != 1 || l[0] != "en_US" {
		t.Errorf("locales %v, want [en_US]", l)
	}
}

func TestTuneOkRefused(t *testing.T) {
	b := sluicetest.Start(t)
	tests := []struct {
		name string
		ok   amqp.ConnectionTuneOk
	}{
		{"frame_max below minimum", amqp.ConnectionTuneOk{ChannelMax: 10, FrameMax: 1024}},
		{"frame_max above server", amqp.ConnectionTuneOk{ChannelMax: 10, FrameMax: 1 << 20}},
		{"channel_max above server", amqp.ConnectionTuneOk{ChannelMax: 4000, FrameMax: 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, b.Addr())
			c.sendBytes(amqp.ProtocolHeader)
			expect[*amqp.ConnectionStart](c)
			c.send(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest"})
			expect[*amqp.ConnectionTune](c)
			c.send(0, &tt.ok)
			c.expectConnectionClose(amqp.NotAllowed)
		})
	}
}

func TestBadProtocolHeader(t *testing.T) {
	b := sluicetest.Start(t)
	c := dialRaw(t, b.Addr())
	c.sendBytes([]byte("AMQP\x01\x01\x00\x09"))
	got, err := io.ReadAll(c.nc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != string(amqp.ProtocolHeader) {
		t.Fatalf("server answered %q, want %q and close", got, amqp.ProtocolHeader)
	}
}

func TestHeartbeats(t *testing.T) {
	b := sluicetest.Start(t)

	t.Run("server sends heartbeats", func(t *testing.T) {
		c := dialRaw(t, b.Addr())
		c.sendBytes(amqp.ProtocolHeader)
		expect[*amqp.ConnectionStart](c)
		c.send(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest"})
		expect[*amqp.ConnectionTune](c)
		c.send(0, &amqp.ConnectionTuneOk{ChannelMax: 10, FrameMax: 4096, Heartbeat: 1})
		c.send(0, &amqp.ConnectionOpen{VirtualHost: "/"})
		expect[*amqp.ConnectionOpenOk](c)
		// Keep the server from timing us out while we count its heartbeats.
		deadline := time.Now().Add(5 * time.Second)
		for n := 0; n < 2; {
			if time.Now().After(deadline) {
				t.Fatalf("got %d heartbeats before the deadline, want 2", n)
			}
			c.sendFrame(amqp.Frame{Type: amqp.FrameHeartbeat})
			c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
			f, err := c.r.ReadFrame()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if f.Type == amqp.FrameHeartbeat && f.Channel == 0 {
				n++
			}
		}
	})

	t.Run("silent client is closed", func(t *testing.T) {
		c := dialRaw(t, b.Addr())
		c.sendBytes(amqp.ProtocolHeader)
		expect[*amqp.ConnectionStart](c)
		c.send(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest"})
		expect[*amqp.ConnectionTune](c)
		c.send(0, &amqp.ConnectionTuneOk{ChannelMax: 10, FrameMax: 4096, Heartbeat: 1})
		c.send(0, &amqp.ConnectionOpen{VirtualHost: "/"})
		expect[*amqp.ConnectionOpenOk](c)
		start := time.Now()
		c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.expectEOF()
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Errorf("closed after %v, want about two heartbeat intervals", d)
		}
	})

	t.Run("amqp091-go with 1s heartbeat stays up", func(t *testing.T) {
		conn, err := amqp091.DialConfig(b.URL(), amqp091.Config{Heartbeat: time.Second})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		select {
		case e := <-closed:
			t.Fatalf("connection closed: %v", e)
		case <-time.After(3500 * time.Millisecond):
		}
	})
}

func TestServerCloseSendsConnectionForced(t *testing.T) {
	b := sluicetest.Start(t)
	conn := b.Dial(t)
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if err := b.Server.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	e := closedWith(t, closed, amqp.ConnectionForced)
	if want := "CONNECTION_FORCED - broker shutdown"; e.Reason != want {
		t.Errorf("reason %q, want %q", e.Reason, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*amqpserver.Config)
		ok     bool
	}{
		{"default", func(*amqpserver.Config) {}, true},
		{"small frame max", func(c *amqpserver.Config) { c.FrameMax = 100 }, false},
		{"fractional heartbeat", func(c *amqpserver.Config) { c.Heartbeat = 1500 * time.Millisecond }, false},
		{"no logger", func(c *amqpserver.Config) { c.Logger = nil }, false},
		{"zero channel max", func(c *amqpserver.Config) { c.ChannelMax = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := amqpserver.DefaultConfig()
			tt.change(&cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
