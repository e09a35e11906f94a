package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Result is what a run measured.
type Result struct {
	Scenario string `json:"scenario"`
	// URL is the broker, with its password hidden.
	URL   string `json:"url"`
	Queue string `json:"queue"`
	// Client is the publishers' client (Config.Client).
	Client      string `json:"client"`
	Publishers  int    `json:"publishers"`
	Consumers   int    `json:"consumers"`
	MessageSize int    `json:"message_size"`
	Persistent  bool   `json:"persistent"`
	Confirms    int    `json:"confirms"`
	// Fanout is the number of queues each message reached (0: one queue);
	// Rate the paced publish rate (0: unpaced).
	Fanout int `json:"fanout,omitempty"`
	Rate   int `json:"rate,omitempty"`
	// Phases are in the order they ran: publish and churn have one,
	// backlog has "fill" and "drain".
	Phases []Phase `json:"phases"`
	// Memory is set when Config.PID was.
	Memory *Memory `json:"memory,omitempty"`
	// Interrupted is set when the caller's context ended the run early.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Phase holds the counts, rates and latencies of one phase of a run.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"duration_s"`
	// Sent messages were handed to the connection; Confirmed and Nacked are
	// the broker's publisher-confirm answers to them.
	Sent      int64 `json:"sent"`
	Confirmed int64 `json:"confirmed"`
	Nacked    int64 `json:"nacked"`
	// Consumed counts deliveries (redeliveries included); Acked the ones
	// acked; Requeued the ones nacked with requeue (churn).
	Consumed int64 `json:"consumed"`
	Acked    int64 `json:"acked"`
	Requeued int64 `json:"requeued"`
	// Per-second rates over Duration.
	SentRate      float64 `json:"sent_per_s"`
	ConfirmedRate float64 `json:"confirmed_per_s"`
	ConsumedRate  float64 `json:"consumed_per_s"`
	AckedRate     float64 `json:"acked_per_s"`
	// ConfirmLatency is publish to confirm; ConsumeLatency is publish to
	// delivery (in backlog's drain, mostly time spent waiting in the queue).
	ConfirmLatency Latency `json:"confirm_latency"`
	ConsumeLatency Latency `json:"consume_latency"`
	// QueueDepth is the queue's message count after the phase, when the
	// scenario asks the broker for it (backlog's fill).
	QueueDepth int64 `json:"queue_depth,omitempty"`
	// Target is the count the phase aimed at (0: bounded by time only);
	// Complete says whether it reached it.
	Target   int64 `json:"target,omitempty"`
	Complete bool  `json:"complete"`
}

// Memory is the broker's resident set size, read from /proc/PID/status, in
// bytes.
type Memory struct {
	PID int `json:"pid"`
	// Start is VmRSS before the first phase; AfterFill is VmRSS with the
	// backlog in place (backlog only).
	Start     int64 `json:"rss_start_bytes"`
	AfterFill int64 `json:"rss_after_fill_bytes,omitempty"`
	// PeakSampled is the largest VmRSS seen while sampling during the run;
	// HighWater is the kernel's VmHWM at the end, the process's peak since
	// it started.
	PeakSampled int64 `json:"rss_peak_sampled_bytes"`
	HighWater   int64 `json:"rss_high_water_bytes"`
}

// finish fills the rates from the counts and the duration.
func (p *Phase) finish() {
	p.Seconds = p.Duration.Seconds()
	p.SentRate = rate(p.Sent, p.Duration)
	p.ConfirmedRate = rate(p.Confirmed, p.Duration)
	p.ConsumedRate = rate(p.Consumed, p.Duration)
	p.AckedRate = rate(p.Acked, p.Duration)
}

// WriteJSON writes r as indented JSON.
func (r Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write json result: %w", err)
	}
	return nil
}

// WriteSummary writes r for people.
func (r Result) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pr := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	pr("scenario %s on %s, queue %q\n", r.Scenario, r.URL, r.Queue)
	pr("%d publisher(s) (%s client), %d consumer(s), %d-byte %s messages, confirms %s\n",
		r.Publishers, r.Client, r.Consumers, r.MessageSize, persistence(r.Persistent), confirmsText(r.Confirms))
	if r.Fanout > 1 {
		pr("fanout exchange to %d queues\n", r.Fanout)
	}
	if r.Rate > 0 {
		pr("publishers paced to %d msg/s\n", r.Rate)
	}
	if r.Interrupted {
		pr("interrupted: the figures cover the run until then\n")
	}
	for _, p := range r.Phases {
		pr("\nphase %s: %.2fs", p.Name, p.Seconds)
		if p.Target > 0 {
			pr(", target %d, %s", p.Target, map[bool]string{true: "reached", false: "NOT reached"}[p.Complete])
		}
		pr("\n")
		pr("\tcount\tmsg/s\tp50\tp95\tp99\tmax\n")
		if p.Sent > 0 {
			pr("  sent\t%d\t%.0f\t\t\t\t\n", p.Sent, p.SentRate)
		}
		if p.Confirmed > 0 || p.Nacked > 0 {
			l := p.ConfirmLatency
			pr("  confirmed\t%d\t%.0f\t%s\t%s\t%s\t%s\n", p.Confirmed, p.ConfirmedRate,
				fmtMS(l.P50), fmtMS(l.P95), fmtMS(l.P99), fmtMS(l.Max))
		}
		if p.Nacked > 0 {
			pr("  nacked by broker\t%d\t\t\t\t\t\n", p.Nacked)
		}
		if p.Consumed > 0 {
			l := p.ConsumeLatency
			pr("  consumed\t%d\t%.0f\t%s\t%s\t%s\t%s\n", p.Consumed, p.ConsumedRate,
				fmtMS(l.P50), fmtMS(l.P95), fmtMS(l.P99), fmtMS(l.Max))
			pr("  acked\t%d\t%.0f\t\t\t\t\n", p.Acked, p.AckedRate)
		}
		if p.Requeued > 0 {
			pr("  nacked, requeued\t%d\t%.0f\t\t\t\t\n", p.Requeued, rate(p.Requeued, p.Duration))
		}
		if p.QueueDepth > 0 {
			pr("  queue depth after\t%d\t\t\t\t\t\n", p.QueueDepth)
		}
	}
	if m := r.Memory; m != nil {
		pr("\nbroker pid %d resident memory: start %s", m.PID, mib(m.Start))
		if m.AfterFill > 0 {
			pr(", with backlog %s", mib(m.AfterFill))
		}
		pr(", peak sampled %s, VmHWM %s\n", mib(m.PeakSampled), mib(m.HighWater))
	}
	pr("\nlatencies: confirmed = publish to confirm, consumed = publish to delivery\n")
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

func persistence(p bool) string {
	if p {
		return "persistent"
	}
	return "transient"
}

func confirmsText(n int) string {
	if n == 0 {
		return "off"
	}
	return fmt.Sprintf("%d outstanding", n)
}

func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 10_000:
		return fmt.Sprintf("%.0fms", v)
	default:
		return fmt.Sprintf("%.1fs", v/1000)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
