package access

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func mustThrottle(t *testing.T, cfg ThrottleConfig) *Throttle {
	t.Helper()
	th, err := NewThrottle(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// The delay starts after the free failures, doubles, stops at MaxDelay,
// and a source quiet for Forget starts afresh.
func TestThrottleDelayGrows(t *testing.T) {
	clock := newClock()
	cfg := DefaultThrottleConfig()
	cfg.Now = clock.now
	th := mustThrottle(t, cfg)
	var got []time.Duration
	for range 14 {
		got = append(got, th.Failed("a"))
	}
	want := []time.Duration{0, 0, 0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if w := th.Wait("a"); w != time.Minute {
		t.Fatalf("wait %v, want a minute", w)
	}
	if w := th.Wait("b"); w != 0 {
		t.Fatalf("another source waits %v", w)
	}
	clock.add(time.Minute)
	if w := th.Wait("a"); w != 0 {
		t.Fatalf("wait after the delay %v", w)
	}
	clock.add(cfg.Forget)
	if d := th.Failed("a"); d != 0 {
		t.Fatalf("after Forget the first failure costs %v, want nothing", d)
	}
}

// The table stays within MaxSources.
func TestThrottleTableIsBounded(t *testing.T) {
	clock := newClock()
	cfg := DefaultThrottleConfig()
	cfg.Now, cfg.MaxSources, cfg.Free = clock.now, 3, 0
	th := mustThrottle(t, cfg)
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		th.Failed(s)
		clock.add(time.Millisecond)
	}
	if n := len(th.sources); n != 3 {
		t.Fatalf("%d sources kept, want 3", n)
	}
	if th.Wait("a") != 0 || th.Wait("e") == 0 {
		t.Fatal("the least recent source should have gone, the newest stayed")
	}
}

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		remote, key string
		loopback    bool
	}{
		{"127.0.0.1:5000", "127.0.0.1", true},
		{"[::1]:5000", "::/64", true},
		{"192.0.2.7:1", "192.0.2.7", false},
		{"[2001:db8:1:2:3:4:5:6]:1", "2001:db8:1:2::/64", false},
		{"[2001:db8:1:2:ffff::9]:1", "2001:db8:1:2::/64", false},
		{"[::ffff:10.0.0.1]:1", "10.0.0.1", false},
		{"10.0.0.2", "10.0.0.2", false},
		{"pipe", "pipe", false},
	} {
		if got := SourceOf(tc.remote); got.Key != tc.key || got.Loopback != tc.loopback {
			t.Errorf("SourceOf(%q) = %+v, want %q loopback=%v", tc.remote, got, tc.key, tc.loopback)
		}
	}
}

// A source's first failure is logged at once; the rest of its window as
// one line when the window ends; the counters count each.
func TestFailuresAreLoggedInAggregate(t *testing.T) {
	clock := newClock()
	var buf bytes.Buffer
	f := NewFailures(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute, clock.now)
	src := SourceOf("192.0.2.7:1")
	for i := range 100 {
		f.Failed("amqp", "192.0.2.7:1", src, []string{"guest", "admin", "root"}[i%3], "wrong password")
	}
	f.Throttled("http", "192.0.2.7:2", src, "guest")
	f.Flush()
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("%d lines before the window ended:\n%s", n, buf.String())
	}
	clock.add(time.Minute)
	f.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "failed=99") || !strings.Contains(lines[1], "throttled=1") ||
		!strings.Contains(lines[1], "remote=192.0.2.7:1") || !strings.Contains(lines[1], "users=\"[admin root guest]\"") {
		t.Fatalf("log:\n%s", buf.String())
	}
	c := f.Counts()
	if c.Failed["amqp"] != 100 || c.Throttled["http"] != 1 {
		t.Fatalf("counts %+v", c)
	}
}
