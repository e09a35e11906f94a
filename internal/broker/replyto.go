package broker

// Direct reply-to (amq.rabbitmq.reply-to): a no-ack pseudo-consumer per
// channel, and publishes that go straight to it without a queue.

import (
	"strings"
	"sync"

	"github.com/sluicemq/sluice/internal/message"
)

const (
	replyToQueue  = "amq.rabbitmq.reply-to"
	replyToPrefix = "amq.rabbitmq.reply-to."
)

type replyConsumer struct {
	tag   string
	token string // opaque name of the channel in reply-to addresses
}

// replyRegistry maps reply tokens to channels.
type replyRegistry struct {
	mu    sync.Mutex
	chans map[string]*Channel
}

func newReplyRegistry() *replyRegistry { return &replyRegistry{chans: make(map[string]*Channel)} }

func (r *replyRegistry) lookup(token string) *Channel {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.chans[token]
}

func (r *replyRegistry) set(token string, ch *Channel) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch == nil {
		delete(r.chans, token)
	} else {
		r.chans[token] = ch
	}
}

// consumeReply starts the channel's direct reply-to consumer.
func (ch *Channel) consumeReply(req ConsumeRequest) (string, error) {
	if !req.NoAck {
		return "", errorf(PreconditionFailed, "reply consumer cannot acknowledge")
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.reply != nil {
		return "", errorf(PreconditionFailed, "reply consumer already set")
	}
	tag := req.Tag
	if tag == "" {
		tag = randomName("amq.ctag-")
	}
	if _, dup := ch.consumers[tag]; dup {
		return "", errorf(NotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	ch.reply = &replyConsumer{tag: tag, token: randomName("")}
	ch.env.reply.set(ch.reply.token, ch)
	return tag, nil
}

// cancelReply ends the reply consumer if tag names it.
func (ch *Channel) cancelReply(tag string) bool {
	ch.mu.Lock()
	r := ch.reply
	if r == nil || r.tag != tag {
		ch.mu.Unlock()
		return false
	}
	ch.reply = nil
	ch.mu.Unlock()
	ch.env.reply.set(r.token, nil)
	return true
}

func (ch *Channel) dropReply() {
	ch.mu.Lock()
	r := ch.reply
	ch.reply = nil
	ch.mu.Unlock()
	if r != nil {
		ch.env.reply.set(r.token, nil)
	}
}

// rewriteReplyTo turns reply-to "amq.rabbitmq.reply-to" into the address of
// this channel's reply consumer.
func (ch *Channel) rewriteReplyTo(msg *message.Message) error {
	p := &msg.Properties
	if p.Flags&message.FlagReplyTo == 0 || p.ReplyTo != replyToQueue {
		return nil
	}
	ch.mu.Lock()
	r := ch.reply
	ch.mu.Unlock()
	if r == nil {
		return errorf(PreconditionFailed, "fast reply consumer does not exist")
	}
	p.ReplyTo = replyToPrefix + r.token
	return nil
}

// publishReply delivers a message addressed to a reply consumer. handled
// is false for any other message.
func (ch *Channel) publishReply(msg *message.Message) (routed, handled bool) {
	if msg.Exchange != "" || !strings.HasPrefix(msg.RoutingKey, replyToPrefix) {
		return false, false
	}
	target := ch.env.reply.lookup(strings.TrimPrefix(msg.RoutingKey, replyToPrefix))
	if target == nil {
		return false, true
	}
	return target.deliverReply(msg), true
}

func (ch *Channel) deliverReply(msg *message.Message) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed || ch.reply == nil {
		return false
	}
	ch.nextTag++
	ch.noAckInFlight++
	ch.out.Deliver(&Delivery{
		ConsumerTag: ch.reply.tag,
		DeliveryTag: ch.nextTag,
		Exchange:    msg.Exchange,
		RoutingKey:  msg.RoutingKey,
		Properties:  msg.Properties,
		Body:        msg.Body,
	})
	return true
}
