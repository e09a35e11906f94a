package httpapi

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Finding 1: a name that is not valid UTF-8 (a store written before names
// were checked at the door) neither panics a scrape nor hides its queue:
// its sample is sent with the name repaired.
func TestMetricLabelThatIsNotUTF8IsRepaired(t *testing.T) {
	desc := prometheus.NewDesc("sluice_test", "test", []string{"queue"}, nil)
	ch := make(chan prometheus.Metric, 1)
	sendMetric(ch, &Server{}, desc, prometheus.GaugeValue, 1, "bad-\xff")
	if len(ch) != 1 {
		t.Fatal("the sample was left out")
	}
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetLabel()[0].GetValue(); got != "bad-\uFFFD" {
		t.Fatalf("label %q, want the name with U+FFFD", got)
	}
}
