package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/listen"
)

const (
	// stopGrace is how long a phase may overrun its duration (to collect
	// outstanding confirms) before the bench closes its connections.
	stopGrace = confirmGrace + 5*time.Second
	// dialTimeout bounds each TCP connect.
	dialTimeout = 10 * time.Second
	// progressEvery is how often the human output reports progress.
	progressEvery = 5 * time.Second
	// rssInterval is how often the broker's memory is sampled.
	rssInterval = 250 * time.Millisecond
)

// session is one Run: its configuration, its clock origin and the
// connections it opened.
type session struct {
	cfg   Config
	epoch time.Time
	out   io.Writer   // progress lines; nil for JSON output
	tls   *tls.Config // for amqps:// (ServerName filled in per dial)

	// declared is set once the run declared its queue empty, so that
	// cleanup never deletes a queue that held someone's messages.
	declared bool

	// conns are amqp091-go connections and the batching client's sockets.
	mu     sync.Mutex
	conns  []io.Closer
	closed bool
}

// Run runs the scenario of cfg against the broker at cfg.URL, writes the
// summary (or JSON) to out and returns the result. It declares cfg.Queue,
// which must be empty, and deletes it at the end unless cfg.Keep. When ctx
// ends, Run closes its connections, reports what it measured until then with
// Interrupted set, and returns a nil error.
func Run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("bench config: %w", err)
	}
	tlsConf, err := listen.ClientConfig(cfg.TLSCA, cfg.TLSCert, cfg.TLSKey, cfg.TLSInsecure)
	if err != nil {
		return Result{}, fmt.Errorf("bench config: %w", err)
	}
	s := &session{cfg: cfg, epoch: time.Now(), tls: tlsConf}
	if !cfg.JSON {
		s.out = out
		fmt.Fprintf(out, "bench %s on %s, queue %q, up to %v per phase\n",
			cfg.Scenario, redactURL(cfg.URL), cfg.Queue, cfg.Duration)
	}
	defer s.closeAll()
	stop := context.AfterFunc(ctx, s.closeAll)
	defer stop()

	res := Result{
		Scenario: cfg.Scenario, URL: redactURL(cfg.URL), Queue: cfg.Queue, Client: cfg.Client,
		Publishers: cfg.Publishers, Consumers: cfg.consumers(), MessageSize: cfg.MessageSize,
		Persistent: cfg.Persistent, Confirms: cfg.Confirms, Fanout: cfg.Fanout, Rate: cfg.Rate,
	}
	err = s.run(ctx, &res)
	if ctx.Err() != nil {
		res.Interrupted, err = true, nil
	}
	if err == nil {
		if cfg.JSON {
			err = res.WriteJSON(out)
		} else {
			err = res.WriteSummary(out)
		}
	}
	// Clean up after writing, so that a broker gone at the end does not
	// hide what was measured.
	return res, errors.Join(err, s.cleanup())
}

// run declares the queue and runs the scenario's phases into res.
func (s *session) run(ctx context.Context, res *Result) error {
	setup, err := s.dial(ctx, "setup")
	if err != nil {
		return err
	}
	ch, err := setup.Channel()
	if err != nil {
		return fmt.Errorf("setup: open channel: %w", err)
	}
	if err := s.declare(ch); err != nil {
		return err
	}
	var sampler *rssSampler
	if s.cfg.PID > 0 {
		m, err := readProcMemory(s.cfg.PID)
		if err != nil {
			return err
		}
		res.Memory = &Memory{PID: s.cfg.PID, Start: m.RSS}
		sampler = startRSSSampler(s.cfg.PID, rssInterval)
		defer func() {
			res.Memory.PeakSampled = sampler.stop()
			if m, err := readProcMemory(s.cfg.PID); err == nil {
				res.Memory.HighWater = m.HighWater
			}
		}()
	}
	cfg := s.cfg
	switch cfg.Scenario {
	case ScenarioPublish:
		ph, err := s.runPhase(ctx, "publish", cfg.Publishers, cfg.consumers(), int64(cfg.Messages), 0, 0)
		res.Phases = append(res.Phases, ph)
		return err
	case ScenarioChurn:
		ph, err := s.runPhase(ctx, "churn", cfg.Publishers, cfg.consumers(), int64(cfg.Messages), 0, cfg.Requeues)
		res.Phases = append(res.Phases, ph)
		return err
	case ScenarioBacklog, ScenarioRequeue:
		return s.runBacklog(ctx, ch, res)
	}
	return fmt.Errorf("scenario %q: unknown", cfg.Scenario) // Validate refuses it
}

// runBacklog fills the queue, measures its depth and the broker's memory,
// then drains it (in requeue, nacking every message cfg.Requeues times
// before its ack).
func (s *session) runBacklog(ctx context.Context, ch *amqp.Channel, res *Result) error {
	fill, err := s.runPhase(ctx, "fill", s.cfg.Publishers, 0, int64(s.cfg.Backlog), 0, 0)
	if err == nil {
		var q amqp.Queue
		q, err = ch.QueueDeclarePassive(s.cfg.Queue, true, false, false, false, nil)
		if err != nil {
			err = fmt.Errorf("queue %q: read depth: %w", s.cfg.Queue, err)
		}
		fill.QueueDepth = int64(q.Messages)
	}
	res.Phases = append(res.Phases, fill)
	if err != nil || ctx.Err() != nil {
		return err
	}
	if res.Memory != nil {
		if m, err := readProcMemory(s.cfg.PID); err == nil {
			res.Memory.AfterFill = m.RSS
		}
	}
	s.progress("backlog of %d messages in place", fill.QueueDepth)
	if fill.QueueDepth == 0 {
		return nil
	}
	requeues := 0
	if s.cfg.Scenario == ScenarioRequeue {
		requeues = s.cfg.Requeues
	}
	drain, err := s.runPhase(ctx, "drain", 0, s.cfg.consumers(), 0, fill.QueueDepth, requeues)
	res.Phases = append(res.Phases, drain)
	return err
}

// declare declares the bench's durable queues (and, with fanout, the
// exchange that binds them) and checks that they are empty, so that old
// messages do not skew the figures.
func (s *session) declare(ch *amqp.Channel) error {
	var args amqp.Table
	if s.cfg.QueueType != "" {
		args = amqp.Table{"x-queue-type": s.cfg.QueueType}
	}
	ex, _ := s.cfg.exchange()
	if ex != "" {
		if err := ch.ExchangeDeclare(ex, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %q: %w", ex, err)
		}
	}
	for _, name := range s.cfg.queues() {
		q, err := ch.QueueDeclare(name, true, false, false, false, args)
		if err != nil {
			return fmt.Errorf("declare queue %q: %w", name, err)
		}
		if q.Messages > 0 {
			return fmt.Errorf("queue %q holds %d messages already: delete it or pick another --queue", name, q.Messages)
		}
		s.declared = true
		if ex != "" {
			if err := ch.QueueBind(name, "", ex, false, nil); err != nil {
				return fmt.Errorf("bind queue %q to %q: %w", name, ex, err)
			}
		}
	}
	return nil
}

// cleanup deletes the queue the run declared unless the configuration keeps
// it, on a connection of its own, since the run's may have been closed.
func (s *session) cleanup() error {
	if s.cfg.Keep || !s.declared {
		return nil
	}
	conn, err := amqp.DialConfig(s.cfg.URL, s.amqpConfig("cleanup"))
	if err != nil {
		return fmt.Errorf("cleanup: connect: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("cleanup: open channel: %w", err)
	}
	for _, name := range s.cfg.queues() {
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			return fmt.Errorf("cleanup: delete queue %q: %w", name, err)
		}
	}
	if ex, _ := s.cfg.exchange(); ex != "" {
		if err := ch.ExchangeDelete(ex, false, false); err != nil {
			return fmt.Errorf("cleanup: delete exchange %q: %w", ex, err)
		}
	}
	return nil
}

func (s *session) amqpConfig(name string) amqp.Config {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("sluice-bench " + name)
	return amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: props,
		Dial:       amqp.DefaultDial(dialTimeout),
		// amqp091-go fills in ServerName from the URL's host.
		TLSClientConfig: s.tls.Clone(),
	}
}

// dial opens a connection that closeAll will close.
func (s *session) dial(ctx context.Context, name string) (*amqp.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: connect: %w", name, err)
	}
	conn, err := amqp.DialConfig(s.cfg.URL, s.amqpConfig(name))
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", name, redactURL(s.cfg.URL), err)
	}
	if err := s.track(conn); err != nil {
		return nil, fmt.Errorf("%s: connect: %w", name, err)
	}
	return conn, nil
}

// track has closeAll close c; when the run is already stopping it closes c
// at once and returns an error.
func (s *session) track(c io.Closer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return errors.New("run is stopping")
	}
	s.conns = append(s.conns, c)
	return nil
}

// closeAll closes every connection of the run and refuses new ones. Blocked
// publishes and consumers return once their connection is closed.
func (s *session) closeAll() {
	s.mu.Lock()
	conns := s.conns
	s.conns, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// progress prints a line of progress in human mode.
func (s *session) progress(format string, args ...any) {
	if s.out != nil {
		fmt.Fprintf(s.out, "  "+format+"\n", args...)
	}
}

// runPhase runs pubs publishers and cons consumers until the phase is done:
// publishers stop at limit messages (0: no limit), consumers once they have
// acked what the publishers got in (or drainTarget when there are no
// publishers), all of them at cfg.Duration or when ctx ends.
func (s *session) runPhase(ctx context.Context, name string, pubs, cons int, limit, drainTarget int64, requeues int) (Phase, error) {
	p := newPhaseRun(limit, drainTarget, requeues)
	p.copies = int64(max(1, s.cfg.Fanout))
	if pubs > 0 && s.cfg.Rate > 0 {
		p.interval = time.Duration(float64(time.Second) * float64(pubs) / float64(s.cfg.Rate))
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Duration)
	defer cancel()
	hard, hardCancel := context.WithTimeout(ctx, s.cfg.Duration+stopGrace)
	defer hardCancel()
	stopHard := context.AfterFunc(hard, s.closeAll)
	defer stopHard() // runs before hardCancel, so a normal end closes nothing

	confirmLat := make([]*Histogram, pubs)
	consumeLat := make([]*Histogram, cons)
	errs := make([]error, pubs+cons)
	var workers, pubWG sync.WaitGroup
	start := time.Now()
	for i := range pubs {
		confirmLat[i] = NewHistogram()
		pubWG.Go(func() {
			if errs[i] = s.runPublisher(pctx, hard, i, p, confirmLat[i]); errs[i] != nil {
				cancel()
			}
		})
	}
	for i := range cons {
		consumeLat[i] = NewHistogram()
		workers.Go(func() {
			if errs[pubs+i] = s.consumer(pctx, hard, i, p, consumeLat[i]); errs[pubs+i] != nil {
				cancel()
			}
		})
	}
	workers.Go(func() {
		pubWG.Wait()
		p.publishersDone.Store(true)
		p.checkDone(s.cfg.Confirms > 0)
	})
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if s.out != nil {
		progressWG.Go(func() { s.reportProgress(name, start, p, progressDone) })
	}
	workers.Wait()
	close(progressDone)
	progressWG.Wait()

	ph := Phase{
		Name: name, Duration: time.Since(start),
		Sent: p.sent.Load(), Confirmed: p.confirmed.Load(), Nacked: p.nacked.Load(),
		Consumed: p.consumed.Load(), Acked: p.acked.Load(), Requeued: p.requeued.Load(),
	}
	ph.ConfirmLatency = merged(confirmLat).Summary()
	ph.ConsumeLatency = merged(consumeLat).Summary()
	switch {
	case limit > 0:
		ph.Target = limit
		ph.Complete = ph.Sent >= limit && (cons == 0 || isClosed(p.done))
	case drainTarget > 0:
		ph.Target = drainTarget
		ph.Complete = ph.Acked >= drainTarget
	}
	ph.finish()
	if ctx.Err() != nil {
		return ph, nil // interrupted: errors are the closed connections
	}
	if err := errors.Join(errs...); err != nil {
		return ph, fmt.Errorf("phase %s: %w", name, err)
	}
	if hard.Err() != nil {
		return ph, fmt.Errorf("phase %s: did not stop within %v of its duration", name, stopGrace)
	}
	return ph, nil
}

// runPublisher runs publisher idx with the configured client: the one place
// that chooses between them.
func (s *session) runPublisher(ctx, hard context.Context, idx int, p *phaseRun, lat *Histogram) error {
	if s.cfg.Client == ClientBatching {
		return s.batchingPublisher(ctx, hard, idx, p, lat)
	}
	return s.publisher(ctx, hard, idx, p, lat)
}

func (s *session) reportProgress(name string, start time.Time, p *phaseRun, done <-chan struct{}) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.progress("%s", progressLine(name, time.Since(start), p))
		}
	}
}

// progressLine reports the counts of a running phase that are not zero.
func progressLine(name string, el time.Duration, p *phaseRun) string {
	var parts []string
	if n := p.sent.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("sent %d (%.0f/s)", n, rate(n, el)),
			fmt.Sprintf("confirmed %d", p.confirmed.Load()))
	}
	if n := p.consumed.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("consumed %d (%.0f/s)", n, rate(n, el)))
	}
	if n := p.requeued.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("requeued %d", n))
	}
	return strings.TrimSpace(fmt.Sprintf("%s %5.1fs: %s", name, el.Seconds(), strings.Join(parts, ", ")))
}

func merged(hs []*Histogram) *Histogram {
	all := NewHistogram()
	for _, h := range hs {
		all.Merge(h)
	}
	return all
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
