package broker

// Sender-selected distribution, as RabbitMQ does it: the CC and BCC
// headers of a published message (arrays of longstr) add routing keys to
// its own. Every entry that is a longstr is a key, the empty string too;
// other entries are ignored; a CC or BCC that is not an array refuses the
// publish. BCC is removed from the message before it is stored, CC stays.

import (
	"slices"

	"github.com/sluicemq/sluice/internal/message"
)

const (
	headerCC  = "CC"
	headerBCC = "BCC"
)

// extraRoutingKeys returns the keys msg's CC and BCC headers add, nil when
// there are none. Entries of the wrong type are skipped here;
// checkRoutingHeaders refuses them at the door.
func extraRoutingKeys(msg *message.Message) []string {
	h := msg.Properties.Headers
	if len(h) == 0 {
		return nil
	}
	var keys []string
	for _, name := range [...]string{headerCC, headerBCC} {
		arr, _ := h[name].([]any)
		for _, v := range arr {
			if s, ok := v.(string); ok {
				keys = append(keys, s)
			}
		}
	}
	return keys
}

// checkRoutingHeaders refuses a CC or BCC header that is not an array,
// with RabbitMQ's text.
func checkRoutingHeaders(msg *message.Message) error {
	h := msg.Properties.Headers
	if len(h) == 0 {
		return nil
	}
	for _, name := range [...]string{headerCC, headerBCC} {
		v, ok := h[name]
		if !ok {
			continue
		}
		if _, isArray := v.([]any); !isArray {
			return errorf(PreconditionFailed, "invalid message: {unacceptable_type_in_header,\"%s\",%s}", name, typeName(v))
		}
	}
	return nil
}

// stripBCC removes the BCC header, copying the headers table so that
// nothing else holding it sees the change. It reports whether it did.
func stripBCC(msg *message.Message) bool {
	h := msg.Properties.Headers
	if _, ok := h[headerBCC]; !ok {
		return false
	}
	out := make(message.Table, len(h)-1)
	for k, v := range h {
		if k != headerBCC {
			out[k] = v
		}
	}
	msg.Properties.Headers = out
	return true
}

// defaultRouteLocked routes through the default exchange with several
// keys: each names a queue, each queue reached once. Called with vh.mu
// held for reading.
func (vh *vhost) defaultRouteLocked(key string, extra []string) []*queue {
	var qs []*queue
	add := func(name string) {
		if q := vh.queues[name]; q != nil && !slices.Contains(qs, q) {
			qs = append(qs, q)
		}
	}
	add(key)
	for _, k := range extra {
		add(k)
	}
	return qs
}

// tagImpersonator is the user tag that lets a publisher set any user_id.
const tagImpersonator = "impersonator"

// hasTag reports whether the user exists and has tag.
func (db *userDB) hasTag(name, tag string) bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return slices.Contains(db.users[name].Tags, tag)
}

// checkProperties makes RabbitMQ's checks of a publish's properties: a
// user_id that is not the publishing user's name (unless the user is an
// impersonator) and a CC or BCC that is not an array are
// PreconditionFailed. An unknown exchange is reported first, as RabbitMQ
// looks the exchange up before it checks the properties.
func (ch *Channel) checkProperties(msg *message.Message) error {
	err := ch.checkUserID(msg)
	if err == nil {
		err = checkRoutingHeaders(msg)
	}
	if err == nil {
		return nil
	}
	ch.vh.mu.RLock()
	x := ch.vh.exchanges[msg.Exchange]
	ch.vh.mu.RUnlock()
	if x == nil {
		return ch.vh.noExchange(msg.Exchange)
	}
	return err
}

// checkUserID is RabbitMQ's validated user-id: consumers may trust the
// user_id property, so a publisher may only set its own name.
func (ch *Channel) checkUserID(msg *message.Message) error {
	p := &msg.Properties
	user := ch.conn.info.User
	if p.Flags&message.FlagUserID == 0 || p.UserID == user || ch.conn.impersonator {
		return nil
	}
	return errorf(PreconditionFailed, "user_id property set to '%s' but authenticated user was '%s'", p.UserID, user)
}
