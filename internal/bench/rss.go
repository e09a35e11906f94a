package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// procMemory is a process's resident memory as /proc/PID/status states it.
type procMemory struct {
	RSS       int64 // VmRSS, bytes
	HighWater int64 // VmHWM, bytes
}

// readProcMemory reads /proc/<pid>/status.
func readProcMemory(pid int) (procMemory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMemory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	m, err := parseProcStatus(f)
	if err != nil {
		return procMemory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	return m, nil
}

// parseProcStatus reads the VmRSS and VmHWM lines ("VmRSS:\t  1234 kB") of a
// /proc/PID/status file.
func parseProcStatus(r io.Reader) (procMemory, error) {
	var m procMemory
	var haveRSS bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			return procMemory{}, fmt.Errorf("parse %s line %q", key, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return procMemory{}, fmt.Errorf("parse %s: %w", key, err)
		}
		if key == "VmRSS" {
			m.RSS, haveRSS = kb*1024, true
		} else {
			m.HighWater = kb * 1024
		}
	}
	if err := sc.Err(); err != nil {
		return procMemory{}, fmt.Errorf("scan status: %w", err)
	}
	if !haveRSS {
		// Kernel threads and zombies have no VmRSS line.
		return procMemory{}, fmt.Errorf("no VmRSS line")
	}
	return m, nil
}

// rssSampler records the largest VmRSS of a process, sampled every interval
// by one goroutine between start and stop.
type rssSampler struct {
	pid      int
	interval time.Duration
	peak     atomic.Int64
	stopc    chan struct{}
	wg       sync.WaitGroup
}

func startRSSSampler(pid int, interval time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, interval: interval, stopc: make(chan struct{})}
	s.sample()
	s.wg.Go(s.loop)
	return s
}

func (s *rssSampler) loop() {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
			s.sample()
		}
	}
}

// sample records one reading; a process that went away is not an error of
// the bench, so failures are skipped.
func (s *rssSampler) sample() {
	m, err := readProcMemory(s.pid)
	if err != nil {
		return
	}
	for {
		old := s.peak.Load()
		if m.RSS <= old || s.peak.CompareAndSwap(old, m.RSS) {
			return
		}
	}
}

// stop ends the sampling and returns the peak seen.
func (s *rssSampler) stop() int64 {
	close(s.stopc)
	s.wg.Wait()
	s.sample()
	return s.peak.Load()
}
