package broker

import (
	"slices"

	"github.com/sluicemq/sluice/internal/message"
)

// Exchange types.
const (
	kindDirect  = "direct"
	kindFanout  = "fanout"
	kindTopic   = "topic"
	kindHeaders = "headers"
	// kindDelayed is the delayed-message plugin's type: it routes as its
	// x-delayed-type argument says, holding messages with x-delay.
	kindDelayed = "x-delayed-message"
)

// exchange is one exchange and its outgoing bindings, indexed for routing
// by its type. Guarded by its vhost's mu.
type exchange struct {
	name       string
	kind       string // as declared
	route      string // how it routes: kind, or x-delayed-type for kindDelayed
	durable    bool
	autoDelete bool
	internal   bool
	args       message.Table
	alternate  string // alternate-exchange: the argument, else a policy's (policy.go)
	// policy and policySchema: the policy that applies and its schema
	// setting (policy.go).
	policy, policySchema string

	bindings []*binding            // all outgoing bindings, in creation order
	direct   map[string][]*binding // direct: by routing key
	topic    *topicNode            // topic: trie of binding keys
	inbound  []*binding            // bindings that point at this exchange

	stats exchangeCounters // stats.go
}

// binding links a source exchange to a queue or an exchange.
type binding struct {
	src     *exchange
	q       *queue    // destination queue, or
	x       *exchange // destination exchange
	key     string
	args    message.Table
	headers *headersMatch // headers exchanges only
}

func (bd *binding) destName() string {
	if bd.q != nil {
		return bd.q.name
	}
	return bd.x.name
}

// same reports whether bd binds the same ends with the same key and args.
func (bd *binding) same(q *queue, x *exchange, key string, args message.Table) bool {
	return bd.q == q && bd.x == x && bd.key == key && tablesEqual(bd.args, args)
}

func newExchange(name, kind string, durable, autoDelete, internal bool, args message.Table) *exchange {
	x := &exchange{name: name, kind: kind, route: kind, durable: durable, autoDelete: autoDelete, internal: internal, args: args}
	if kind == kindDelayed {
		x.route, _ = args["x-delayed-type"].(string)
	}
	if ae, ok := args["alternate-exchange"].(string); ok {
		x.alternate = ae
	}
	switch x.route {
	case kindDirect:
		x.direct = make(map[string][]*binding)
	case kindTopic:
		x.topic = &topicNode{}
	}
	return x
}

func validKind(kind string) bool {
	switch kind {
	case kindDirect, kindFanout, kindTopic, kindHeaders:
		return true
	}
	return false
}

// addBinding indexes bd; the caller checked it is new.
func (x *exchange) addBinding(bd *binding) {
	x.bindings = append(x.bindings, bd)
	switch x.route {
	case kindDirect:
		x.direct[bd.key] = append(x.direct[bd.key], bd)
	case kindTopic:
		x.topic.add(splitTopic(bd.key), bd)
	case kindHeaders:
		bd.headers = newHeadersMatch(bd.args)
	}
	if bd.x != nil {
		bd.x.inbound = append(bd.x.inbound, bd)
	} else {
		bd.q.bindings = append(bd.q.bindings, bd)
	}
}

// removeBinding unindexes bd from both of its ends.
func (x *exchange) removeBinding(bd *binding) {
	x.bindings = slices.DeleteFunc(x.bindings, func(b *binding) bool { return b == bd })
	switch x.route {
	case kindDirect:
		l := slices.DeleteFunc(x.direct[bd.key], func(b *binding) bool { return b == bd })
		if len(l) == 0 {
			delete(x.direct, bd.key)
		} else {
			x.direct[bd.key] = l
		}
	case kindTopic:
		x.topic.remove(splitTopic(bd.key), bd)
	}
	if bd.x != nil {
		bd.x.inbound = slices.DeleteFunc(bd.x.inbound, func(b *binding) bool { return b == bd })
	} else {
		bd.q.bindings = slices.DeleteFunc(bd.q.bindings, func(b *binding) bool { return b == bd })
	}
}

func (x *exchange) findBinding(q *queue, dx *exchange, key string, args message.Table) *binding {
	for _, bd := range x.bindings {
		if bd.same(q, dx, key, args) {
			return bd
		}
	}
	return nil
}

// match appends the bindings of x that the message matches, with its
// routing key or one of extra (CC and BCC, senders.go).
func (x *exchange) match(msg *message.Message, extra []string, out []*binding) []*binding {
	switch x.route {
	case kindDirect, kindTopic:
		out = x.matchKey(msg.RoutingKey, out)
		for _, k := range extra {
			out = x.matchKey(k, out)
		}
		return out
	case kindFanout:
		return append(out, x.bindings...)
	case kindHeaders:
		for _, bd := range x.bindings {
			if bd.headers.matches(msg.Properties.Headers) {
				out = append(out, bd)
			}
		}
	}
	return out
}

// matchKey appends the bindings of a direct or topic exchange that key
// matches.
func (x *exchange) matchKey(key string, out []*binding) []*binding {
	if x.route == kindDirect {
		return append(out, x.direct[key]...)
	}
	return x.topic.match(splitTopic(key), out)
}

// routeLocked returns the queues a message published to x reaches, each
// once, following exchange-to-exchange bindings (each exchange visited once
// per publish, so loops end) and alternate exchanges (used by an exchange
// that matched no binding). Called with vh.mu held for reading.
func (vh *vhost) routeLocked(x *exchange, msg *message.Message) []*queue {
	extra := extraRoutingKeys(msg)
	if x.name == "" {
		if len(extra) > 0 {
			return vh.defaultRouteLocked(msg.RoutingKey, extra) // senders.go
		}
		if q := vh.queues[msg.RoutingKey]; q != nil {
			return []*queue{q}
		}
		return nil
	}
	var (
		qs      []*queue
		seen    map[*queue]struct{} // once qs is long
		visited = []*exchange{x}
		work    = []*exchange{x}
		matched []*binding
	)
	addQueue := func(q *queue) {
		if seen == nil {
			if !slices.Contains(qs, q) {
				qs = append(qs, q)
			}
			if len(qs) > 16 {
				seen = make(map[*queue]struct{}, 2*len(qs))
				for _, q := range qs {
					seen[q] = struct{}{}
				}
			}
			return
		}
		if _, ok := seen[q]; !ok {
			seen[q] = struct{}{}
			qs = append(qs, q)
		}
	}
	for len(work) > 0 {
		e := work[len(work)-1]
		work = work[:len(work)-1]
		matched = e.match(msg, extra, matched[:0])
		if len(matched) == 0 && e.alternate != "" {
			if ae := vh.exchanges[e.alternate]; ae != nil && !slices.Contains(visited, ae) {
				visited = append(visited, ae)
				work = append(work, ae)
			}
			continue
		}
		for _, bd := range matched {
			switch {
			case bd.q != nil:
				addQueue(bd.q)
			case !slices.Contains(visited, bd.x):
				visited = append(visited, bd.x)
				work = append(work, bd.x)
			}
		}
	}
	return qs
}
