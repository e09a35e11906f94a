package broker

// One rule for every name a client gives the broker — queues, exchanges,
// vhosts, users, policies, schemas — through any door (AMQP, HTTP,
// definitions import): valid UTF-8, at most 255 bytes (AMQP's short
// string, so every name can be sent back in a frame), and no control
// characters (NUL, CR, LF, tab, DEL, C1, U+2028 and U+2029 line breaks),
// which no client can type, no log line shows honestly and no metric
// label takes. Routing keys are short strings too: at most 255 bytes.

import (
	"strconv"
	"unicode/utf8"
)

// MaxShortString is the longest name or routing key, in bytes.
const MaxShortString = 255

// CheckName returns InvalidArgument unless name (of a kind: "queue",
// "exchange", "vhost", …) obeys the name rule. The empty name passes;
// callers for whom it is wrong say so themselves.
func CheckName(kind, name string) error {
	if len(name) > MaxShortString {
		return errorf(InvalidArgument, "%s name of %d bytes; at most %d", kind, len(name), MaxShortString)
	}
	if !utf8.ValidString(name) {
		return errorf(InvalidArgument, "%s name %s is not valid UTF-8", kind, quoteName(name))
	}
	for i, r := range name {
		if nameControl(r) {
			return errorf(InvalidArgument, "%s name %s has control character %U at byte %d", kind, quoteName(name), r, i)
		}
	}
	return nil
}

// nameControl reports whether r is a character names may not hold.
func nameControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029'
}

// CheckRoutingKey returns InvalidArgument for a routing key longer than
// a short string.
func CheckRoutingKey(key string) error {
	if len(key) > MaxShortString {
		return errorf(InvalidArgument, "routing key of %d bytes; at most %d", len(key), MaxShortString)
	}
	return nil
}

// quoteName shows a refused name safely: escaped, and cut.
func quoteName(name string) string {
	const show = 64
	if len(name) > show {
		return strconv.Quote(name[:show]) + "…"
	}
	return strconv.Quote(name)
}
