package httpapi_test

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/httpapi"
)

// TestHealthChecks: RabbitMQ's health checks answer 200 {"status":"ok"}
// or 503 {"status":"failed"} with the reason and what failed.
func TestHealthChecks(t *testing.T) {
	var diskAlarm atomic.Bool
	e := startWith(t, func(c *httpapi.Config) {
		c.NodeName = "sluice@probe"
		c.Node = func() httpapi.NodeStatus {
			return httpapi.NodeStatus{MemoryUsed: 1 << 20, MemoryLimit: 1 << 30, DiskFree: 1 << 29,
				DiskFreeLimit: 1 << 30, DiskAlarm: diskAlarm.Load()}
		}
		c.Listeners = func() []api.Listener {
			return []api.Listener{{Protocol: "amqp", IPAddress: "127.0.0.1", Port: 5672},
				{Protocol: "http", IPAddress: "127.0.0.1", Port: 15672}}
		}
	})
	check := func(path string, wantStatus int) api.Health {
		t.Helper()
		status, body := e.raw(t, "GET", path, "")
		if status != wantStatus {
			t.Fatalf("GET %s = %d %s, want %d", path, status, body, wantStatus)
		}
		var h api.Health
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
		return h
	}
	for _, path := range []string{"/api/health/checks/alarms", "/api/health/checks/local-alarms",
		"/api/health/checks/port-listener/5672", "/api/health/checks/protocol-listener/amqp091",
		"/api/health/checks/virtual-hosts", "/api/health/checks/node-is-quorum-critical",
		"/api/health/checks/node-is-mirror-sync-critical", "/api/aliveness-test/%2F"} {
		if h := check(path, http.StatusOK); h.Status != "ok" {
			t.Errorf("GET %s: status %q", path, h.Status)
		}
	}
	h := check("/api/health/checks/port-listener/5671", http.StatusServiceUnavailable)
	if h.Status != "failed" || h.Reason != "No active listener" || len(h.Ports) != 2 {
		t.Errorf("port-listener 5671 = %+v", h)
	}
	if h := check("/api/health/checks/protocol-listener/amqps", http.StatusServiceUnavailable); h.Status != "failed" {
		t.Errorf("protocol-listener amqps = %+v", h)
	}
	check("/api/health/checks/port-listener/notaport", http.StatusBadRequest)

	diskAlarm.Store(true)
	h = check("/api/health/checks/alarms", http.StatusServiceUnavailable)
	if h.Status != "failed" || len(h.Alarms) != 1 || h.Alarms[0] != (api.Alarm{Node: "sluice@probe", Resource: "disk"}) {
		t.Errorf("alarms during a disk alarm = %+v", h)
	}
	var o api.Overview
	if err := json.Unmarshal(mustGet(t, e, "/api/overview"), &o); err != nil {
		t.Fatal(err)
	}
	if len(o.Alarms) != 1 || o.Alarms[0].Resource != "disk" {
		t.Errorf("overview alarms = %+v", o.Alarms)
	}
	var nodes []api.Node
	if err := json.Unmarshal(mustGet(t, e, "/api/nodes"), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name != "sluice@probe" || !nodes[0].Running || !nodes[0].DiskFreeAlarm ||
		nodes[0].MemAlarm || nodes[0].MemLimit != 1<<30 || nodes[0].DiskFree != 1<<29 || nodes[0].FDUsed < 1 {
		t.Errorf("nodes = %+v", nodes)
	}
	if status, _ := e.raw(t, "GET", "/api/nodes/sluice@probe", ""); status != http.StatusOK {
		t.Errorf("GET /api/nodes/sluice@probe = %d", status)
	}
	if status, _ := e.raw(t, "GET", "/api/nodes/rabbit@elsewhere", ""); status != http.StatusNotFound {
		t.Errorf("GET /api/nodes/rabbit@elsewhere = %d, want 404", status)
	}
	diskAlarm.Store(false)
	check("/api/health/checks/alarms", http.StatusOK)
}

// TestHealthChecksNeedCredentials: as RabbitMQ's, the checks are for
// management users; a missing login gets 401.
func TestHealthChecksNeedCredentials(t *testing.T) {
	e := start(t)
	resp, err := http.Get(e.url + "/api/health/checks/alarms")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated alarms check = %d, want 401", resp.StatusCode)
	}
}

func mustGet(t *testing.T, e *testEnv, path string) []byte {
	t.Helper()
	status, body := e.raw(t, "GET", path, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, status, body)
	}
	return body
}
