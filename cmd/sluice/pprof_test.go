package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestServePprofFlag(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "--password-cost", "4", "--amqp", "127.0.0.1:0", "--http", "", "--pprof", "127.0.0.1:0", "--data", data, "--init", "--log-format", "json"}, &stdout, &stderr)
	}()
	defer func() { cancel(); <-exit }()
	addr, _ := waitLog(t, &stderr, "pprof listening")["addr"].(string)
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %d %.200q", resp.StatusCode, body)
	}
}
