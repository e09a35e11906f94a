package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in    string
		whole uint64
		want  uint64
		err   bool
	}{
		{in: "0", want: 0},
		{in: "1GiB", want: 1 << 30},
		{in: "512 MiB", want: 512 << 20},
		{in: "64KiB", want: 64 << 10},
		{in: "2GB", want: 2e9},
		{in: "100", want: 100},
		{in: "40%", whole: 1000, want: 400},
		{in: "40%", err: true},
		{in: "150%", whole: 1000, err: true},
		{in: "lots", err: true},
		{in: "-1GiB", err: true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in, tt.whole)
		if (err != nil) != tt.err {
			t.Errorf("parseSize(%q, %d) error = %v, want error %v", tt.in, tt.whole, err, tt.err)
			continue
		}
		if !tt.err && got != tt.want {
			t.Errorf("parseSize(%q, %d) = %d, want %d", tt.in, tt.whole, got, tt.want)
		}
	}
}

// A data directory named explicitly that does not exist (deleted, not
// mounted) is refused unless --init says this is a new broker: starting
// empty there would forget every queue and hand out guest/guest again.
func TestMissingDataDirectoryNeedsInit(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gone")
	var stdout, stderr bytes.Buffer
	// Old builds started (and ran until the context ended) instead.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	code := run(ctx, []string{"serve", "--amqp", "127.0.0.1:0", "--http", "", "--data", data}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--init") {
		t.Fatalf("serve on a missing data directory: exit %d, stderr:\n%s\nwant exit 1 and a hint about --init", code, stderr.String())
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the missing data directory was created: %v", err)
	}
}
