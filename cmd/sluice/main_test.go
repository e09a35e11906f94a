package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLog polls the JSON log for a line with msg and returns it.
func waitLog(t *testing.T, logs *syncBuffer, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
				return line
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs.String())
	return nil
}

func TestServeRunsTheBroker(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "--password-cost", "4", "--amqp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", data, "--init", "--log-format", "json"}, &stdout, &stderr)
	}()
	started := waitLog(t, &stderr, "sluice started")
	addr, _ := started["amqp"].(string)
	if _, err := os.Stat(data); err != nil {
		t.Errorf("data directory not created: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "FORMAT")); err != nil {
		t.Errorf("the durable store was not opened in the data directory: %v", err)
	}

	conn, err := amqp091.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("hello", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp091.Publishing{Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if string(d.Body) != "hi" {
				t.Fatalf("got %q", d.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}

	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	cancel() // what SIGINT and SIGTERM do
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 {
			t.Errorf("connection closed with %v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed on shutdown")
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return")
	}
}

func TestHelpAndUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "sluice <command>"},
		{[]string{"serve", "--help"}, 0, "SLUICE_AMQP"},
		{[]string{"version"}, 0, "sluice " + version},
		{[]string{}, 2, "Commands:"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"serve", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"serve", "--log-format", "xml", "--amqp", "127.0.0.1:0"}, 2, "log format"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), tt.args, &out, &out)
			if code != tt.code || !strings.Contains(out.String(), tt.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out.String(), tt.code, tt.want)
			}
		})
	}
}

func TestServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sluice.json")
	if err := os.WriteFile(file, []byte(`{"data": "/from/file", "amqp": "file:1", "http": "file:2", "log_level": "warn"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// fromFile is the defaults with the file's four settings, then edit's.
	fromFile := func(edit func(*serveConfig)) serveConfig {
		c := defaultServeConfig()
		c.Data, c.AMQP, c.HTTP, c.LogLevel = "/from/file", "file:1", "file:2", "warn"
		if edit != nil {
			edit(&c)
		}
		return c
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"datum": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    serveConfig
		wantErr bool
	}{
		{"defaults", nil, nil, defaultServeConfig(), false},
		{"file", []string{"--config", file}, nil,
			fromFile(nil), false},
		{"env over file", []string{"--config", file}, map[string]string{"SLUICE_AMQP": "env:1"},
			fromFile(func(c *serveConfig) { c.AMQP = "env:1" }), false},
		{"flag over env", []string{"--amqp", "flag:1"}, map[string]string{"SLUICE_AMQP": "env:1", "SLUICE_CONFIG": file},
			fromFile(func(c *serveConfig) { c.AMQP = "flag:1" }), false},
		{"unknown key", []string{"--config", bad}, nil, serveConfig{}, true},
		{"missing file", []string{"--config", filepath.Join(dir, "none.json")}, nil, serveConfig{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			got, err := loadServeConfig(tt.args, lookup, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
