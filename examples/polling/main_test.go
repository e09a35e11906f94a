package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/sluicetest"
)

// The example runs end to end against a real broker: the quick job is
// done after polling, the stuck one dead-letters with its history.
func TestPollingExample(t *testing.T) {
	b := sluicetest.Start(t)
	var out bytes.Buffer
	if err := run(b.URL(), &out, settings{pollEvery: 20 * time.Millisecond, maxAttempts: 4}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"web: accepted quick",
		"worker: done: quick after 3 polls",
		"worker: stuck still pending after 4 polls, rejected",
		"dead letter: stuck",
		`reason: "rejected"`,
		`queue: "polling.jobs"`,
		`x-first-death-reason: "rejected"`,
		"attempt: 4",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
