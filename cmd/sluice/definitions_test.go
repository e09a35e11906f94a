package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// serve --load-definitions imports RabbitMQ 3.10.8's export at boot: its
// queues exist (passive declare) before the first client connects; a bad
// file stops the broker with a reason.
func TestServeLoadDefinitions(t *testing.T) {
	file, err := filepath.Abs("../../internal/httpapi/testdata/rabbitmq-3.10.8-definitions.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "--password-cost", "4", "--amqp", "127.0.0.1:0", "--http", "", "--init", "--data", filepath.Join(t.TempDir(), "d"),
			"--log-format", "json", "--load-definitions", file}, &stdout, &stderr)
	}()
	loaded := waitLog(t, &stderr, "definitions loaded")
	if loaded["queues"] != float64(5) {
		t.Errorf("loaded %v", loaded)
	}
	started := waitLog(t, &stderr, "sluice started")
	conn, err := amqp091.Dial("amqp://guest:guest@" + started["amqp"].(string) + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive("orders.created", true, false, false, false, nil); err != nil {
		t.Errorf("imported queue missing: %v", err)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"queues":[{"name":"q","vhost":"nowhere"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out2, err2 syncBuffer
	code := run(context.Background(), []string{"serve", "--password-cost", "4", "--amqp", "127.0.0.1:0", "--http", "", "--init", "--data", filepath.Join(t.TempDir(), "d2"),
		"--load-definitions", bad}, &out2, &err2)
	if code == 0 || !strings.Contains(err2.String(), "vhost 'nowhere'") {
		t.Errorf("bad file: exit %d, stderr %s", code, err2.String())
	}
}
