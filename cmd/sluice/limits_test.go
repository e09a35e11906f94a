package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAutoMaxConnections(t *testing.T) {
	for _, tt := range []struct {
		nofile uint64
		want   int
	}{
		{256, minAutoConnections},
		{1024, minAutoConnections},
		{fdReserve + 2*minAutoConnections, minAutoConnections},
		{4096, 1024},
		{20000, 8976},
		{65536, 31744},
		{1 << 20, 523264},
		{math.MaxUint64, 1 << 30}, // RLIM_INFINITY
	} {
		if got := autoMaxConnections(tt.nofile); got != tt.want {
			t.Errorf("descriptor limit %d: %d connections, want %d", tt.nofile, got, tt.want)
		}
		// Twice the bound (the sockets it lets be open) fits the limit
		// beside the reserve, unless the bound is the minimum.
		if got := uint64(autoMaxConnections(tt.nofile)); got > minAutoConnections && 2*got+fdReserve > tt.nofile {
			t.Errorf("descriptor limit %d: %d connections leave less than the reserve", tt.nofile, got)
		}
	}
}

// The connection settings come from flags, environment and config file
// like every other, and reach the AMQP server's configuration checked.
func TestAMQPConnectionSettings(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	file := filepath.Join(t.TempDir(), "sluice.json")
	if err := os.WriteFile(file, []byte(`{"max_connections": "20", "connection_output_limit": "2MiB", "write_timeout": "10s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		conns   int
		output  int
		timeout time.Duration
		wantErr string
	}{
		{name: "defaults", conns: autoMaxConnections(lim.Cur), output: 1 << 20, timeout: 30 * time.Second},
		{name: "flags", args: []string{"--max-connections", "500", "--connection-output-limit", "4MiB", "--write-timeout", "5s"},
			conns: 500, output: 4 << 20, timeout: 5 * time.Second},
		{name: "env", env: map[string]string{"SLUICE_MAX_CONNECTIONS": "0", "SLUICE_CONNECTION_OUTPUT_LIMIT": "256KiB", "SLUICE_WRITE_TIMEOUT": "1m"},
			conns: 0, output: 256 << 10, timeout: time.Minute},
		{name: "file", args: []string{"--config", file}, conns: 20, output: 2 << 20, timeout: 10 * time.Second},
		{name: "bad count", args: []string{"--max-connections", "-1"}, wantErr: "--max-connections"},
		{name: "bad limit", args: []string{"--connection-output-limit", "0"}, wantErr: "--connection-output-limit"},
		{name: "bad timeout", args: []string{"--write-timeout", "30"}, wantErr: "--write-timeout"},
		{name: "no timeout", args: []string{"--write-timeout", "0s"}, wantErr: "--write-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			cfg, err := loadServeConfig(tt.args, lookup, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			scfg, err := amqpConfig(cfg, log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if scfg.MaxConnections != tt.conns || scfg.MaxOutputBytes != tt.output || scfg.WriteTimeout != tt.timeout {
				t.Errorf("max connections %d, output limit %d, write timeout %v; want %d, %d, %v",
					scfg.MaxConnections, scfg.MaxOutputBytes, scfg.WriteTimeout, tt.conns, tt.output, tt.timeout)
			}
			if err := scfg.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}
