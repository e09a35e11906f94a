package httpapi_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/internal/httpapi"
	"github.com/sluicemq/sluice/internal/resource"
)

// fakeResources is a resource monitor whose alarms the test raises.
type fakeResources struct {
	mu sync.Mutex
	st resource.Status
}

func (f *fakeResources) Status() resource.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeResources) set(disk, mem bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Disk, f.st.Memory = disk, mem
}

// TestHealthChecks: RabbitMQ's health checks answer 200 {"status":"ok"},
// or 503 {"status":"failed", "reason": …} while an alarm is raised or a
// port has no listener; /api/nodes and the overview show the alarms.
func TestHealthChecks(t *testing.T) {
	res := &fakeResources{st: resource.Status{MemUsed: 100 << 20, MemLimit: 1 << 30, DiskFree: 50 << 30, DiskFreeLimit: 1 << 30}}
	e := startWith(t, func(c *httpapi.Config) { c.Resources = res })
	get := func(path string) (int, map[string]any) {
		t.Helper()
		st, b := e.raw(t, "GET", path, "")
		var m map[string]any
		mustJSON(t, b, &m)
		return st, m
	}
	for _, p := range []string{"alarms", "local-alarms", "virtual-hosts", "node-is-quorum-critical"} {
		if st, m := get("/api/health/checks/" + p); st != http.StatusOK || m["status"] != "ok" {
			t.Errorf("%s: %d %v", p, st, m)
		}
	}
	_, amqpPort, _ := net.SplitHostPort(e.sb.Server.Addr().String())
	if st, m := get("/api/health/checks/port-listener/" + amqpPort); st != http.StatusOK || fmt.Sprint(m["port"]) != amqpPort {
		t.Errorf("port-listener %s: %d %v", amqpPort, st, m)
	}
	if st, m := get("/api/health/checks/port-listener/1"); st != http.StatusServiceUnavailable || m["reason"] != "No active listener" {
		t.Errorf("port-listener 1: %d %v", st, m)
	}
	if st, _ := e.raw(t, "GET", "/api/health/checks/port-listener/x", ""); st != http.StatusBadRequest {
		t.Errorf("port-listener x: %d", st)
	}
	if st, m := get("/api/aliveness-test/%2F"); st != http.StatusOK || m["status"] != "ok" {
		t.Errorf("aliveness: %d %v", st, m)
	}
	if st, _ := e.raw(t, "GET", "/api/aliveness-test/nope", ""); st != http.StatusNotFound {
		t.Errorf("aliveness of a missing vhost: %d", st)
	}

	res.set(true, false)
	st, m := get("/api/health/checks/alarms")
	if st != http.StatusServiceUnavailable || m["status"] != "failed" || !strings.Contains(fmt.Sprint(m["alarms"]), "disk") {
		t.Errorf("alarms under a disk alarm: %d %v", st, m)
	}
	if st, m := get("/api/health/checks/local-alarms"); st != http.StatusServiceUnavailable || m["reason"] != "There are alarms in effect on the node" {
		t.Errorf("local-alarms: %d %v", st, m)
	}
	st, b := e.raw(t, "GET", "/api/nodes", "")
	var nodes []map[string]any
	mustJSON(t, b, &nodes)
	if st != http.StatusOK || len(nodes) != 1 || nodes[0]["disk_free_alarm"] != true || nodes[0]["mem_alarm"] != false ||
		nodes[0]["running"] != true || nodes[0]["mem_limit"] != float64(1<<30) || nodes[0]["fd_used"].(float64) < 1 {
		t.Errorf("nodes: %d %s", st, b)
	}
	name := nodes[0]["name"].(string)
	if st, _ := e.raw(t, "GET", "/api/nodes/"+name, ""); st != http.StatusOK {
		t.Errorf("node %s: %d", name, st)
	}
	if st, _ := e.raw(t, "GET", "/api/nodes/rabbit@elsewhere", ""); st != http.StatusNotFound {
		t.Errorf("unknown node: %d", st)
	}
	_, ov := get("/api/overview")
	if !strings.Contains(fmt.Sprint(ov["alarms"]), "disk") {
		t.Errorf("overview alarms %v", ov["alarms"])
	}
	res.set(false, false)
	if st, _ := get("/api/health/checks/alarms"); st != http.StatusOK {
		t.Errorf("alarms after recovery: %d", st)
	}
}
