package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/store"
)

// A fenced store (issue 10, finding 3) is an alarm: the alarms checks fail
// with resource "store" and the reason, /api/nodes shows it, /metrics has
// sluice_store_fenced 1, and a publish over HTTP is refused with 503.
func TestStoreAlarm(t *testing.T) {
	e := start(t)
	if status, body := e.raw(t, "GET", "/metrics", ""); status != http.StatusOK || !strings.Contains(string(body), "sluice_store_fenced 0") {
		t.Fatalf("metrics before the fence: %d, sluice_store_fenced 0 missing", status)
	}
	e.sb.Broker.FenceStore(fmt.Errorf("%w: write 000002.log: no space left on device", store.ErrFenced))

	status, body := e.raw(t, "GET", "/api/health/checks/alarms", "")
	var h api.Health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusServiceUnavailable || len(h.Alarms) != 1 || h.Alarms[0].Resource != "store" ||
		!strings.Contains(h.Alarms[0].Reason, "no space left") {
		t.Fatalf("alarms check after the fence: %d %s", status, body)
	}
	var nodes []api.Node
	if err := json.Unmarshal(mustGet(t, e, "/api/nodes"), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || !nodes[0].StoreAlarm || !strings.Contains(nodes[0].StoreAlarmReason, "no space left") {
		t.Fatalf("nodes after the fence = %+v", nodes)
	}
	if _, body := e.raw(t, "GET", "/metrics", ""); !strings.Contains(string(body), "sluice_store_fenced 1") {
		t.Fatal("metrics after the fence: sluice_store_fenced 1 missing")
	}
	status, body = e.raw(t, "PUT", "/api/queues/%2F/q", `{"durable":true}`)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("declare after the fence = %d %s, want 503", status, body)
	}
}
