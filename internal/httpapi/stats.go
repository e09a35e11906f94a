package httpapi

// Message rates: the broker only counts (broker.MessageStats); the rates
// RabbitMQ reports in message_stats' *_details are computed here from
// samples. A sampler goroutine, owned by the Server, takes a sample of
// the broker-wide, per-queue and per-exchange counters every
// Config.SampleInterval; a rate is the difference of the last two samples
// over the time between them. Counts in answers are read live.

import (
	"strconv"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

// objKey names a queue or an exchange (vhost, name), or a channel
// (connection name, channel number).
type objKey struct{ vhost, name string }

func channelKey(conn string, number uint16) objKey { return objKey{conn, strconv.Itoa(int(number))} }

// sample is the counters at one instant.
type sample struct {
	at        time.Time
	broker    broker.MessageStats
	queues    map[objKey]broker.MessageStats
	exchanges map[objKey][2]uint64 // publish in, out
	channels  map[objKey]broker.MessageStats
}

// sampler owns the sampling goroutine (when started) and the samples.
type sampler struct {
	b        *broker.Broker
	conns    Connections // may be nil
	now      func() time.Time
	interval time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup

	mu        sync.Mutex
	prev, cur *sample // nil until taken
}

func newSampler(b *broker.Broker, conns Connections, now func() time.Time, interval time.Duration) *sampler {
	return &sampler{b: b, conns: conns, now: now, interval: interval, stop: make(chan struct{})}
}

// start takes a first sample and, with a positive interval, starts the
// goroutine that takes the next ones until close.
func (s *sampler) start() {
	s.take()
	if s.interval <= 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.take()
			}
		}
	}()
}

func (s *sampler) close() {
	close(s.stop)
	s.wg.Wait()
}

// take records a sample of every counter.
func (s *sampler) take() {
	smp := &sample{at: s.now(), broker: s.b.MessageStats(),
		queues: make(map[objKey]broker.MessageStats), exchanges: make(map[objKey][2]uint64),
		channels: make(map[objKey]broker.MessageStats)}
	qs, _ := s.b.Queues("")
	for _, q := range qs {
		smp.queues[objKey{q.VHost, q.Name}] = q.Stats
	}
	xs, _ := s.b.Exchanges("")
	for _, x := range xs {
		smp.exchanges[objKey{x.VHost, x.Name}] = [2]uint64{x.PublishIn, x.PublishOut}
	}
	if s.conns != nil {
		for _, c := range s.conns.Connections() {
			name := c.Info().Name
			for _, ch := range c.ChannelInfos() {
				smp.channels[channelKey(name, ch.Number)] = ch.Stats
			}
		}
	}
	s.mu.Lock()
	s.prev, s.cur = s.cur, smp
	s.mu.Unlock()
}

// pair returns the last two samples and the seconds between them; ok is
// false until two samples exist.
func (s *sampler) pair() (prev, cur *sample, secs float64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev == nil || s.cur == nil {
		return nil, nil, 0, false
	}
	secs = s.cur.at.Sub(s.prev.at).Seconds()
	return s.prev, s.cur, secs, secs > 0
}

// rate is (b-a)/secs, 0 when the counter went back (a queue deleted and
// declared again).
func rate(a, b uint64, secs float64) api.Rate {
	if b < a || secs <= 0 {
		return api.Rate{}
	}
	return api.Rate{Rate: float64(b-a) / secs}
}

// messageStats converts live counters to the API's form, with the rates
// between the samples a and b (nil: no rates yet).
func messageStats(live broker.MessageStats, a, b *broker.MessageStats, secs float64) api.MessageStats {
	out := api.MessageStats{
		Publish: live.Publish, DeliverGet: live.DeliverGet(), Deliver: live.Deliver, DeliverNoAck: live.DeliverNoAck,
		Get: live.Get, GetNoAck: live.GetNoAck, Ack: live.Ack, Redeliver: live.Redeliver, Nack: live.Nack,
		DeadLetter: live.DeadLetteredTotal(), Expire: live.Expired,
		ReturnUnroutable: live.ReturnUnroutable, DropUnroutable: live.DropUnroutable,
	}
	for i, r := range broker.DeadLetterReasons() {
		if n := live.DeadLettered[i]; n > 0 {
			if out.DeadLetterByReason == nil {
				out.DeadLetterByReason = make(map[string]uint64)
			}
			out.DeadLetterByReason[r] = n
		}
	}
	if a == nil || b == nil {
		return out
	}
	out.PublishDetails = rate(a.Publish, b.Publish, secs)
	out.DeliverGetDetails = rate(a.DeliverGet(), b.DeliverGet(), secs)
	out.DeliverDetails = rate(a.Deliver, b.Deliver, secs)
	out.DeliverNoAckDetails = rate(a.DeliverNoAck, b.DeliverNoAck, secs)
	out.GetDetails = rate(a.Get, b.Get, secs)
	out.GetNoAckDetails = rate(a.GetNoAck, b.GetNoAck, secs)
	out.AckDetails = rate(a.Ack, b.Ack, secs)
	out.RedeliverDetails = rate(a.Redeliver, b.Redeliver, secs)
	out.NackDetails = rate(a.Nack, b.Nack, secs)
	out.DeadLetterDetails = rate(a.DeadLetteredTotal(), b.DeadLetteredTotal(), secs)
	out.ExpireDetails = rate(a.Expired, b.Expired, secs)
	if live.ReturnUnroutable > 0 {
		r := rate(a.ReturnUnroutable, b.ReturnUnroutable, secs)
		out.ReturnUnroutableDetails = &r
	}
	if live.DropUnroutable > 0 {
		r := rate(a.DropUnroutable, b.DropUnroutable, secs)
		out.DropUnroutableDetails = &r
	}
	return out
}

// overviewStats are the broker-wide message_stats.
func (s *sampler) overviewStats() api.MessageStats {
	prev, cur, secs, ok := s.pair()
	if !ok {
		return messageStats(s.b.MessageStats(), nil, nil, 0)
	}
	return messageStats(s.b.MessageStats(), &prev.broker, &cur.broker, secs)
}

// queueStats are a queue's message_stats.
func (s *sampler) queueStats(q broker.QueueInfo) api.MessageStats {
	prev, cur, secs, ok := s.pair()
	k := objKey{q.VHost, q.Name}
	a, okA := prev.queueSample(k)
	b, okB := cur.queueSample(k)
	if !ok || !okA || !okB {
		return messageStats(q.Stats, nil, nil, 0)
	}
	return messageStats(q.Stats, &a, &b, secs)
}

func (smp *sample) queueSample(k objKey) (broker.MessageStats, bool) {
	if smp == nil {
		return broker.MessageStats{}, false
	}
	st, ok := smp.queues[k]
	return st, ok
}

// channelStats are a channel's message_stats.
func (s *sampler) channelStats(conn string, ch broker.ChannelInfo) api.MessageStats {
	prev, cur, secs, ok := s.pair()
	if !ok {
		return messageStats(ch.Stats, nil, nil, 0)
	}
	k := channelKey(conn, ch.Number)
	a, okA := prev.channels[k]
	b, okB := cur.channels[k]
	if !okA || !okB {
		return messageStats(ch.Stats, nil, nil, 0)
	}
	return messageStats(ch.Stats, &a, &b, secs)
}

// exchangeStats are an exchange's message_stats.
func (s *sampler) exchangeStats(x broker.ExchangeInfo) api.ExchangeStats {
	out := api.ExchangeStats{PublishIn: x.PublishIn, PublishOut: x.PublishOut}
	prev, cur, secs, ok := s.pair()
	if !ok {
		return out
	}
	k := objKey{x.VHost, x.Name}
	a, okA := prev.exchanges[k]
	b, okB := cur.exchanges[k]
	if okA && okB {
		out.PublishInDetails = rate(a[0], b[0], secs)
		out.PublishOutDetails = rate(a[1], b[1], secs)
	}
	return out
}

// vhostStats sums the counters of a vhost's queues, with rates.
func (s *sampler) vhostStats(qs []broker.QueueInfo) api.MessageStats {
	var live broker.MessageStats
	for _, q := range qs {
		addStats(&live, q.Stats)
	}
	prev, cur, secs, ok := s.pair()
	if !ok {
		return messageStats(live, nil, nil, 0)
	}
	var a, b broker.MessageStats
	for _, q := range qs {
		k := objKey{q.VHost, q.Name}
		qa, okA := prev.queues[k]
		qb, okB := cur.queues[k]
		if okA && okB {
			addStats(&a, qa)
			addStats(&b, qb)
		}
	}
	return messageStats(live, &a, &b, secs)
}

func addStats(to *broker.MessageStats, s broker.MessageStats) {
	to.Publish += s.Publish
	to.Deliver += s.Deliver
	to.DeliverNoAck += s.DeliverNoAck
	to.Get += s.Get
	to.GetNoAck += s.GetNoAck
	to.Redeliver += s.Redeliver
	to.Ack += s.Ack
	to.Nack += s.Nack
	to.Expired += s.Expired
	for i := range s.DeadLettered {
		to.DeadLettered[i] += s.DeadLettered[i]
	}
}
