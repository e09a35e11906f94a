package resource

import (
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type fakeMachine struct {
	mu         sync.Mutex
	free, used uint64
}

func (f *fakeMachine) set(free, used uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.free, f.used = free, used
}

func (f *fakeMachine) config() Config {
	return Config{
		DataDir:       "/data",
		DiskFreeLimit: 100,
		MemoryLimit:   1000,
		Interval:      time.Second,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		DiskFree: func(string) (uint64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.free, nil
		},
		MemoryUsed: func() (uint64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.used, nil
		},
	}
}

func TestMonitorRaisesAndClearsAlarms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		machine := &fakeMachine{free: 500, used: 10}
		var mu sync.Mutex
		var changes []Alarm
		m, err := New(machine.config(), func(a Alarm) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, a)
		})
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		defer m.Close()

		steps := []struct {
			free, used uint64
			want       Alarm
		}{
			{free: 50, used: 10, want: Alarm{Disk: true}},
			{free: 50, used: 2000, want: Alarm{Disk: true, Memory: true}},
			{free: 500, used: 2000, want: Alarm{Memory: true}},
			{free: 500, used: 10, want: Alarm{}},
		}
		for _, s := range steps {
			machine.set(s.free, s.used)
			time.Sleep(time.Second)
			synctest.Wait()
			if got := m.State(); got != s.want {
				t.Fatalf("free=%d used=%d: state %+v, want %+v", s.free, s.used, got, s.want)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(changes) != len(steps) {
			t.Fatalf("got %d change notifications %+v, want %d", len(changes), changes, len(steps))
		}
	})
}

func TestAlarmReason(t *testing.T) {
	tests := []struct {
		a    Alarm
		want string
	}{
		{Alarm{Disk: true}, "low on disk space"},
		{Alarm{Memory: true}, "low on memory"},
		{Alarm{Disk: true, Memory: true}, "low on disk space and memory"},
		{Alarm{}, ""},
	}
	for _, tt := range tests {
		if got := tt.a.Reason(); got != tt.want {
			t.Errorf("%+v.Reason() = %q, want %q", tt.a, got, tt.want)
		}
	}
}

func TestReadMachine(t *testing.T) {
	if free, err := DiskFree(t.TempDir()); err != nil || free == 0 {
		t.Fatalf("DiskFree = %d, %v", free, err)
	}
	if rss, err := ResidentMemory(); err != nil || rss < 1<<20 {
		t.Fatalf("ResidentMemory = %d, %v", rss, err)
	}
	if total, err := TotalMemory(); err != nil || total < 1<<20 {
		t.Fatalf("TotalMemory = %d, %v", total, err)
	}
}

// Status reports the alarms with the readings and limits behind them; a
// reading whose alarm is off is taken on demand.
func TestMonitorStatus(t *testing.T) {
	machine := &fakeMachine{free: 50, used: 2000}
	cfg := machine.config()
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Check()
	if got, want := m.Status(), (Status{Alarm: Alarm{Disk: true, Memory: true}, MemoryUsed: 2000, MemoryLimit: 1000, DiskFree: 50, DiskFreeLimit: 100}); got != want {
		t.Errorf("Status() = %+v, want %+v", got, want)
	}
	cfg.DiskFreeLimit = 0
	m, _ = New(cfg, nil)
	m.Check()
	if st := m.Status(); st.Disk || st.DiskFree != 50 || st.DiskFreeLimit != 0 {
		t.Errorf("without a disk limit: %+v", st)
	}
}

// TestHeldMemoryFollowsTheLiveHeap checks that the memory reading counts
// what is live and drops as soon as a collection freed it, unlike the
// resident set, which keeps freed pages for minutes.
func TestHeldMemoryFollowsTheLiveHeap(t *testing.T) {
	runtime.GC()
	before, err := HeldMemory()
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	keep := make([]byte, size)
	for i := range keep {
		keep[i] = byte(i)
	}
	runtime.GC()
	held, err := HeldMemory()
	if err != nil {
		t.Fatal(err)
	}
	if held < before+size*9/10 {
		t.Fatalf("held %d bytes with 64 MiB live, %d before", held, before)
	}
	runtime.KeepAlive(keep)
	keep = nil
	runtime.GC()
	after, err := HeldMemory()
	if err != nil {
		t.Fatal(err)
	}
	if after > before+size/10 {
		t.Fatalf("held %d bytes after freeing 64 MiB, %d before", after, before)
	}
}

// A poke makes the monitor look at once, not at its next tick.
func TestPokeChecksAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		machine := &fakeMachine{free: 500, used: 10}
		cfg := machine.config()
		cfg.Interval = time.Hour
		raised := make(chan Alarm, 4)
		m, err := New(cfg, func(a Alarm) { raised <- a })
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		defer m.Close()
		machine.set(500, 2000)
		start := time.Now()
		m.Poke()
		a := <-raised
		if !a.Memory || time.Since(start) >= time.Hour {
			t.Fatalf("alarm %+v after %v, want memory raised at once", a, time.Since(start))
		}
	})
}
