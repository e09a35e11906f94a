package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleResult() Result {
	ph := Phase{
		Name: "fill", Duration: 2 * time.Second, Sent: 1000, Confirmed: 1000,
		ConfirmLatency: Latency{Count: 1000, P50: 1.5, P95: 3.25, P99: 12, Max: 212064},
		QueueDepth:     1000, Target: 1000, Complete: true,
	}
	ph.finish()
	drain := Phase{Name: "drain", Duration: 4 * time.Second, Consumed: 1000, Acked: 1000, Target: 1000}
	drain.finish()
	return Result{
		Scenario: ScenarioBacklog, URL: "amqp://guest:xxxxx@127.0.0.1:5681/", Queue: "q", Client: ClientBatching,
		Publishers: 1, Consumers: 1, MessageSize: 1024, Persistent: true, Confirms: 256,
		Phases: []Phase{ph, drain},
		Memory: &Memory{PID: 42, Start: 100 << 20, AfterFill: 300 << 20, PeakSampled: 310 << 20, HighWater: 320 << 20},
	}
}

func TestPhaseRates(t *testing.T) {
	r := sampleResult()
	if got := r.Phases[0]; got.SentRate != 500 || got.ConfirmedRate != 500 || got.Seconds != 2 {
		t.Errorf("fill rates sent %v confirmed %v over %vs, want 500, 500 over 2s", got.SentRate, got.ConfirmedRate, got.Seconds)
	}
	if got := r.Phases[1]; got.ConsumedRate != 250 || got.AckedRate != 250 {
		t.Errorf("drain rates consumed %v acked %v, want 250 and 250", got.ConsumedRate, got.AckedRate)
	}
}

func TestWriteSummary(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleResult().WriteSummary(&buf); err != nil {
		t.Fatalf("WriteSummary: %v", err)
	}
	out := buf.String()
	for _, want := range []string{
		"scenario backlog", "xxxxx", "1 publisher(s) (batching client)", "1024-byte persistent", "256 outstanding",
		"phase fill: 2.00s, target 1000, reached", "phase drain",
		"1.50ms", "3.25ms", "12ms", "212.1s", "500", "250",
		"queue depth after", "start 100.0 MiB", "with backlog 300.0 MiB", "VmHWM 320.0 MiB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleResult().WriteJSON(&buf); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, buf.String())
	}
	phases := got["phases"].([]any)
	fill := phases[0].(map[string]any)
	if fill["confirmed_per_s"] != 500.0 || fill["duration_s"] != 2.0 {
		t.Errorf("fill phase JSON = %v", fill)
	}
	lat := fill["confirm_latency"].(map[string]any)
	if lat["p99_ms"] != 12.0 {
		t.Errorf("confirm latency JSON = %v, want p99_ms 12", lat)
	}
	if got["client"] != ClientBatching {
		t.Errorf("client JSON = %v, want %q", got["client"], ClientBatching)
	}
	mem := got["memory"].(map[string]any)
	if mem["rss_after_fill_bytes"] != float64(300<<20) {
		t.Errorf("memory JSON = %v", mem)
	}
}
