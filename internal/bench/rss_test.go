package bench

import (
	"os"
	"strings"
	"testing"
)

func TestParseProcStatus(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    procMemory
		wantErr string
	}{
		{
			name: "beam.smp",
			status: "Name:\tbeam.smp\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 2248004 kB\n" +
				"VmHWM:\t  311808 kB\nVmRSS:\t  265216 kB\nRssAnon:\t  250000 kB\nThreads:\t41\n",
			want: procMemory{RSS: 265216 * 1024, HighWater: 311808 * 1024},
		},
		{name: "rss only", status: "VmRSS:\t 4 kB\n", want: procMemory{RSS: 4096}},
		{name: "kernel thread", status: "Name:\tkthreadd\nState:\tS (sleeping)\n", wantErr: "no VmRSS"},
		{name: "unit other than kB", status: "VmRSS:\t 4 MB\n", wantErr: "parse VmRSS"},
		{name: "not a number", status: "VmRSS:\t four kB\n", wantErr: "parse VmRSS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStatus(strings.NewReader(tt.status))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseProcStatus() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseProcStatus() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("parseProcStatus() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadProcMemoryOfThisProcess(t *testing.T) {
	m, err := readProcMemory(os.Getpid())
	if err != nil {
		t.Skipf("no /proc on this system: %v", err)
	}
	if m.RSS <= 0 || m.HighWater < m.RSS {
		t.Errorf("own memory = %+v, want RSS > 0 and VmHWM >= VmRSS", m)
	}
	s := startRSSSampler(os.Getpid(), rssInterval)
	if peak := s.stop(); peak <= 0 {
		t.Errorf("sampler peak = %d, want > 0", peak)
	}
}

func TestReadProcMemoryNoProcess(t *testing.T) {
	// Pid numbers never reach this value on Linux (pid_max is at most 2^22).
	if _, err := readProcMemory(1 << 30); err == nil {
		t.Fatal("readProcMemory of a missing pid succeeded")
	}
}
