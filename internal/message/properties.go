package message

// This file is the content-header property list of the basic class: a
// property-flags word, then each present property in flag order.

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// KnownFlags are the bits of a property-flags word that name a property.
const KnownFlags uint16 = 0xfffc

// flagsKnown are the property bits the basic class defines. Bit 0 of a flags
// word is the continuation bit (another flags word follows); bit 1 is unused.
const (
	flagsKnown        uint16 = KnownFlags
	flagContinuation  uint16 = 1
	maxContinuedWords        = 16
)

// AppendProperties appends p's property flags and its present properties, in
// the basic class's order, to dst. Only bits of p.Flags that name a property
// are written. A present property that does not fit its wire type (a short
// string over 255 bytes, an unsupported header value) is an error.
func AppendProperties(dst []byte, p *Properties) ([]byte, error) {
	flags := p.Flags & flagsKnown
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, flags)
	var err error
	shortstr := func(flag uint16, name, s string) {
		if err != nil || flags&flag == 0 {
			return
		}
		if len(s) > math.MaxUint8 {
			err = fmt.Errorf("property %s: %d bytes, longer than 255", name, len(s))
			return
		}
		dst = append(append(dst, byte(len(s))), s...)
	}
	shortstr(FlagContentType, "content-type", p.ContentType)
	shortstr(FlagContentEncoding, "content-encoding", p.ContentEncoding)
	if err == nil && flags&FlagHeaders != 0 {
		if dst, err = AppendTable(dst, p.Headers); err != nil {
			err = fmt.Errorf("property headers: %w", err)
		}
	}
	if flags&FlagDeliveryMode != 0 {
		dst = append(dst, p.DeliveryMode)
	}
	if flags&FlagPriority != 0 {
		dst = append(dst, p.Priority)
	}
	shortstr(FlagCorrelationID, "correlation-id", p.CorrelationID)
	shortstr(FlagReplyTo, "reply-to", p.ReplyTo)
	shortstr(FlagExpiration, "expiration", p.Expiration)
	shortstr(FlagMessageID, "message-id", p.MessageID)
	if flags&FlagTimestamp != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.Timestamp.Unix()))
	}
	shortstr(FlagType, "type", p.Type)
	shortstr(FlagUserID, "user-id", p.UserID)
	shortstr(FlagAppID, "app-id", p.AppID)
	shortstr(FlagClusterID, "cluster-id", p.ClusterID)
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// ReadProperties decodes a property list (flags, then the present
// properties) at the start of b and returns it with the number of bytes it
// took. Flags keeps only the bits that name a property; further flag words
// announced by the continuation bit are read and ignored, since the basic
// class has no properties beyond the first word. Errors wrap ErrMalformed.
func ReadProperties(b []byte) (Properties, int, error) {
	var p Properties
	d := decoder{b: b}
	if err := d.properties(&p); err != nil {
		return Properties{}, 0, fmt.Errorf("properties: %w", err)
	}
	return p, d.off, nil
}

func (d *decoder) properties(p *Properties) error {
	fb, err := d.take(2, "property flags")
	if err != nil {
		return err
	}
	word := binary.BigEndian.Uint16(fb)
	p.Flags = word & flagsKnown
	for i := 0; word&flagContinuation != 0; i++ {
		if i == maxContinuedWords {
			return malformed("more than %d continued property flag words at offset %d", maxContinuedWords, d.off)
		}
		if fb, err = d.take(2, "property flags"); err != nil {
			return err
		}
		word = binary.BigEndian.Uint16(fb)
	}
	// Properties sit on the wire in descending flag-bit order.
	for bit := uint16(1 << 15); bit >= FlagClusterID; bit >>= 1 {
		if p.Flags&bit == 0 {
			continue
		}
		switch bit {
		case FlagHeaders:
			if p.Headers, err = d.table(0); err != nil {
				return fmt.Errorf("property headers: %w", err)
			}
		case FlagDeliveryMode, FlagPriority:
			ob, err := d.take(1, "octet property")
			if err != nil {
				return err
			}
			if bit == FlagDeliveryMode {
				p.DeliveryMode = ob[0]
			} else {
				p.Priority = ob[0]
			}
		case FlagTimestamp:
			tb, err := d.take(8, "property timestamp")
			if err != nil {
				return err
			}
			p.Timestamp = time.Unix(int64(binary.BigEndian.Uint64(tb)), 0).UTC()
		default:
			dst, name := p.stringProperty(bit)
			if *dst, err = d.shortstr("property ", name); err != nil {
				return err
			}
		}
	}
	return nil
}

// shortstr reads a short string; prefix+what names it in errors.
func (d *decoder) shortstr(prefix, what string) (string, error) {
	if d.off >= len(d.b) {
		return "", malformed("truncated %s%s length at offset %d: need 1 bytes, have 0", prefix, what, d.off)
	}
	lb := d.b[d.off : d.off+1]
	d.off++
	sb, err := d.takeOf(int(lb[0]), prefix, what)
	if err != nil {
		return "", err
	}
	return string(sb), nil
}

// stringProperty returns the field and wire name of a short-string property.
func (p *Properties) stringProperty(flag uint16) (*string, string) {
	switch flag {
	case FlagContentType:
		return &p.ContentType, "content-type"
	case FlagContentEncoding:
		return &p.ContentEncoding, "content-encoding"
	case FlagCorrelationID:
		return &p.CorrelationID, "correlation-id"
	case FlagReplyTo:
		return &p.ReplyTo, "reply-to"
	case FlagExpiration:
		return &p.Expiration, "expiration"
	case FlagMessageID:
		return &p.MessageID, "message-id"
	case FlagType:
		return &p.Type, "type"
	case FlagUserID:
		return &p.UserID, "user-id"
	case FlagAppID:
		return &p.AppID, "app-id"
	case FlagClusterID:
		return &p.ClusterID, "cluster-id"
	}
	panic("message: stringProperty of a non-string flag")
}
