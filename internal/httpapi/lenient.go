package httpapi

// RabbitMQ's management API parses some body fields leniently:
// rabbitmqadmin sends "auto_delete": "false" and "count": "1" as strings,
// and RabbitMQ accepts them (rabbit_mgmt_util's parse_bool and parse_int).
// Sluice does the same for the fields below, before the body is decoded
// into its typed form, so a string that is not a boolean or a number is
// still refused with the field's name.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// lenientBools are the top-level fields where "true" and "false" (strings)
// stand for the booleans.
var lenientBools = map[string]bool{"durable": true, "auto_delete": true, "internal": true,
	"exclusive": true, "dry_run": true, "requeue": true}

// lenientInts are the top-level fields where a string holding a decimal
// number stands for the number.
var lenientInts = map[string]bool{"count": true, "truncate": true, "delay": true,
	"limit": true, "rate": true}

// lenientBody rewrites the lenient fields of a JSON object body into their
// JSON types. A body that is not a JSON object is returned unchanged, for
// the decoder to report; a lenient field holding a string that is not a
// boolean (number) is an error that names the field.
func lenientBody(body []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return body, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return body, nil // malformed: the decoder says where
	}
	changed := false
	for k, raw := range fields {
		if len(raw) == 0 || raw[0] != '"' || (!lenientBools[k] && !lenientInts[k]) {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			continue
		}
		v, err := lenientValue(k, s)
		if err != nil {
			return nil, err
		}
		fields[k], changed = json.RawMessage(v), true
	}
	if !changed {
		return body, nil
	}
	return json.Marshal(fields)
}

func lenientValue(field, s string) (string, error) {
	t := strings.TrimSpace(s)
	if lenientBools[field] {
		switch strings.ToLower(t) {
		case "true", "false":
			return strings.ToLower(t), nil
		}
		return "", fmt.Errorf("field %q: %q is not a boolean; want true or false", field, s)
	}
	if _, err := strconv.ParseInt(t, 10, 64); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("field %q: %q is not a number", field, s)
}
