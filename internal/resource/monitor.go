// Package resource watches the broker's memory use and the free space of its
// data directory, and raises an alarm when either crosses its watermark, as
// RabbitMQ's memory and disk alarms do. The broker's front door reacts to
// alarms by blocking publishers (connection.blocked) until they clear;
// consumers keep draining.
//
// A Monitor owns one goroutine, started by Start and stopped by Close, which
// looks on a timer and when poked (Poke). Its methods are safe for
// concurrent use.
package resource

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Monitor. Zero limits disable that alarm.
type Config struct {
	DataDir       string
	DiskFreeLimit uint64        // bytes; alarm while free space is below it
	MemoryLimit   uint64        // bytes; alarm while the memory held is above it
	Interval      time.Duration // how often to look
	Logger        *slog.Logger
	// GoMemoryLimit makes Start set the Go runtime's soft memory limit
	// (debug.SetMemoryLimit) to MemoryLimit, unless GOMEMLIMIT is set: the
	// collector then works to keep the process under the limit instead of
	// letting garbage grow the heap to twice what is live.
	GoMemoryLimit bool

	// DiskFree and MemoryUsed read the machine; tests replace them.
	DiskFree   func(dir string) (uint64, error)
	MemoryUsed func() (uint64, error)
}

// DefaultConfig watches dir with a 1 GiB free-disk limit and a memory limit
// of 40% of the machine's memory (RabbitMQ's default high watermark). It
// looks five times a second: both readings cost microseconds, and memory a
// client fills at network speed must be caught soon.
func DefaultConfig(dir string) Config {
	cfg := Config{
		DataDir:       dir,
		DiskFreeLimit: 1 << 30,
		Interval:      200 * time.Millisecond,
		Logger:        slog.Default(),
		DiskFree:      DiskFree,
		MemoryUsed:    HeldMemory,
		GoMemoryLimit: true,
	}
	if total, err := TotalMemory(); err == nil {
		cfg.MemoryLimit = total / 10 * 4
	}
	return cfg
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Interval <= 0 {
		return errors.New("resource monitor: interval must be positive")
	}
	if c.DiskFree == nil || c.MemoryUsed == nil || c.Logger == nil {
		return errors.New("resource monitor: DiskFree, MemoryUsed and Logger are required")
	}
	return nil
}

// Alarm says which watermarks are crossed now.
type Alarm struct {
	Disk   bool
	Memory bool
}

// Any reports whether any alarm is raised.
func (a Alarm) Any() bool { return a.Disk || a.Memory }

// Reason is the text sent with connection.blocked.
func (a Alarm) Reason() string {
	switch {
	case a.Disk && a.Memory:
		return "low on disk space and memory"
	case a.Disk:
		return "low on disk space"
	case a.Memory:
		return "low on memory"
	}
	return ""
}

// Monitor checks the watermarks every Interval and calls onChange whenever
// the alarm state changes.
type Monitor struct {
	cfg      Config
	onChange func(Alarm)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	poke     chan struct{} // capacity 1: a look is asked for (Poke)

	lastGC time.Time // when collect last ran a collection; the checks' own

	mu     sync.Mutex
	state  Alarm
	status Status // the values of the latest check

	// diskUnread is set while free space cannot be read (the data
	// directory deleted, say): it is logged when it starts, not each check.
	diskUnread atomic.Bool
}

// Status is what the latest check read, beside the limits it compared them
// with (zero limits: that alarm is off).
type Status struct {
	Alarm
	MemoryUsed, MemoryLimit uint64
	DiskFree, DiskFreeLimit uint64
}

// New returns a stopped Monitor. onChange is called from the monitor's
// goroutine and must not block for long.
func New(cfg Config, onChange func(Alarm)) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Monitor{cfg: cfg, onChange: onChange, poke: make(chan struct{}, 1)}, nil
}

// Poke asks the monitor to look now rather than at its next tick; pokes
// made before it looks are one look. It never blocks: a caller that just
// took memory at network speed (bodies arriving) calls it, since a client
// can send more between two ticks than the limit leaves room for.
func (m *Monitor) Poke() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// Start runs a first check at once and then one every Interval, and one
// after each Poke.
func (m *Monitor) Start() {
	if m.cfg.GoMemoryLimit && m.cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(min(m.cfg.MemoryLimit, math.MaxInt64)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.Check()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(m.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.Check()
			case <-m.poke:
				m.Check()
			}
		}
	}()
}

// Close stops the monitor's goroutine and waits for it.
func (m *Monitor) Close() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
}

// State returns the alarms raised now.
func (m *Monitor) State() Alarm {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Status returns the latest check's readings and the alarms raised now; a
// reading the checks do not take (its alarm is off) is taken now.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	st := m.status
	st.Alarm = m.state
	m.mu.Unlock()
	st.MemoryLimit, st.DiskFreeLimit = m.cfg.MemoryLimit, m.cfg.DiskFreeLimit
	if st.MemoryUsed == 0 {
		st.MemoryUsed, _ = m.cfg.MemoryUsed()
	}
	if st.DiskFree == 0 {
		st.DiskFree, _ = m.cfg.DiskFree(m.cfg.DataDir)
	}
	return st
}

// Check reads the machine once and reports a change of state.
func (m *Monitor) Check() {
	next := m.State()
	var read Status
	if m.cfg.DiskFreeLimit > 0 {
		if free, err := m.cfg.DiskFree(m.cfg.DataDir); err != nil {
			if !m.diskUnread.Swap(true) {
				m.cfg.Logger.Warn("cannot read free disk space; the disk alarm keeps its state until it can", "dir", m.cfg.DataDir, "err", err)
			}
		} else {
			m.diskUnread.Store(false)
			read.DiskFree = free
			next.Disk = free < m.cfg.DiskFreeLimit
			m.logEdge("disk", m.State().Disk, next.Disk, free, m.cfg.DiskFreeLimit)
		}
	}
	if m.cfg.MemoryLimit > 0 {
		used, err := m.cfg.MemoryUsed()
		if err == nil && next.Memory && used > m.cfg.MemoryLimit && m.cfg.GoMemoryLimit {
			// The live heap is measured by a collection: while the
			// alarm stops publishers, few allocations trigger one, and
			// memory consumers freed would not show for minutes.
			used, err = m.collect()
		}
		if err != nil {
			m.cfg.Logger.Warn("read memory use", "err", err)
		} else {
			read.MemoryUsed = used
			next.Memory = used > m.cfg.MemoryLimit
			m.logEdge("memory", m.State().Memory, next.Memory, used, m.cfg.MemoryLimit)
		}
	}
	m.mu.Lock()
	changed := next != m.state
	m.state = next
	m.status = read
	m.mu.Unlock()
	if changed && m.onChange != nil {
		m.onChange(next)
	}
}

func (m *Monitor) logEdge(kind string, was, now bool, value, limit uint64) {
	switch {
	case now && !was:
		m.cfg.Logger.Warn("resource alarm set: publishers are blocked", "resource", kind, "value", value, "limit", limit)
	case was && !now:
		m.cfg.Logger.Info("resource alarm cleared", "resource", kind, "value", value, "limit", limit)
	}
}

// DiskFree returns the bytes available to an unprivileged user on the file
// system holding dir.
func DiskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// collect runs a collection, unless it ran one in the last second (a
// collection of a large heap costs more than a look), and reads the memory
// held again.
func (m *Monitor) collect() (uint64, error) {
	if time.Since(m.lastGC) >= time.Second {
		runtime.GC()
		m.lastGC = time.Now()
	}
	return m.cfg.MemoryUsed()
}

// heldSamples are the runtime metrics HeldMemory reads.
var heldSamples = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/gc/heap/live:bytes",
}

// HeldMemory returns the memory the process holds: the heap objects the
// last collection found live, plus everything else the Go runtime has
// mapped and in use (stacks, its own structures). Garbage not collected
// yet and pages the runtime keeps free or has released do not count: the
// resident set includes them for minutes after they were freed, which kept
// an alarm on RSS raised long after the memory was given back.
func HeldMemory() (uint64, error) {
	s := make([]metrics.Sample, len(heldSamples))
	for i, name := range heldSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	var v [6]uint64
	for i := range s {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0, fmt.Errorf("runtime metric %s unsupported", s[i].Name)
		}
		v[i] = s[i].Value.Uint64()
	}
	total, released, free, objects, unused, live := v[0], v[1], v[2], v[3], v[4], v[5]
	other := total - min(total, released+free+objects+unused)
	return live + other, nil
}

// ResidentMemory returns the process's resident set size.
func ResidentMemory() (uint64, error) {
	return readMeminfoField("/proc/self/status", "VmRSS:")
}

// TotalMemory returns the machine's memory.
func TotalMemory() (uint64, error) {
	return readMeminfoField("/proc/meminfo", "MemTotal:")
}

// readMeminfoField reads a "Name:   1234 kB" line of a /proc file.
func readMeminfoField(path, name string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		fields := bytes.Fields(line[len(name):])
		if len(fields) == 0 {
			break
		}
		n, err := strconv.ParseUint(string(fields[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s in %s: %w", name, path, err)
		}
		if len(fields) > 1 && string(fields[1]) == "kB" {
			n *= 1024
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s in %s", name, path)
}
