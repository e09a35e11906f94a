package main

import "testing"

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
