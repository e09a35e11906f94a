package httpapi

import (
	"os"
	"syscall"
)

// NodeStatus is what the API reports of the machine the broker runs on:
// memory and disk against their alarm watermarks (zero limits: that alarm
// is off) and the alarms raised now. cmd/sluice fills it from the resource
// monitor.
type NodeStatus struct {
	MemoryUsed, MemoryLimit uint64
	MemoryAlarm             bool
	DiskFree, DiskFreeLimit uint64
	DiskAlarm               bool
}

// nodeStatus asks Config.Node, or reports nothing known.
func (s *Server) nodeStatus() NodeStatus {
	if s.cfg.Node == nil {
		return NodeStatus{}
	}
	return s.cfg.Node()
}

// openFDs counts the process's open file descriptors (-1 when unknown).
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// maxFDs is the process's soft limit on open file descriptors (-1 when
// unknown).
func maxFDs() int64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return -1
	}
	return int64(lim.Cur)
}
