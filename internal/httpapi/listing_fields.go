package httpapi

// Reading a listing's name and sort field straight from the typed items
// (by their JSON names), so that filtering, sorting and paging 10,000
// queues encode only the page that is answered, not every item.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

var marshalerType = reflect.TypeFor[json.Marshaler]()

// jsonField returns what lookupPath would find at path in v encoded as
// JSON and decoded with UseNumber: nil when absent, json.Number, string,
// bool, or a decoded object or array.
func jsonField(v reflect.Value, path []string) any {
	for i, k := range path {
		v = indirect(v)
		if !v.IsValid() {
			return nil
		}
		if v.Type().Implements(marshalerType) || reflect.PointerTo(v.Type()).Implements(marshalerType) {
			m, _ := decodeJSONValue(v).(map[string]any)
			return lookupPath(m, path[i:])
		}
		switch v.Kind() {
		case reflect.Struct:
			f, ok := structField(v, k)
			if !ok {
				return nil
			}
			v = f
		case reflect.Map:
			if v.Type().Key().Kind() != reflect.String {
				return nil
			}
			v = v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key()))
		default:
			return nil
		}
	}
	v = indirect(v)
	if !v.IsValid() {
		return nil
	}
	return decodeJSONValue(v)
}

// indirect follows pointers and interfaces; a nil one is the zero Value.
func indirect(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	return v
}

// structField finds the field encoding/json writes under name, looking
// into embedded structs; one left out by omitempty is the zero Value.
func structField(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		tname, opts, _ := strings.Cut(tag, ",")
		if sf.Anonymous && tname == "" {
			if f, ok := structField(indirect(v.Field(i)), name); ok {
				return f, true
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if tname == "" {
			tname = sf.Name
		}
		if tname != name {
			continue
		}
		f := v.Field(i)
		if strings.Contains(","+opts+",", ",omitempty,") && f.IsZero() {
			return reflect.Value{}, true
		}
		return f, true
	}
	return reflect.Value{}, false
}

func decodeJSONValue(v reflect.Value) any {
	if !v.Type().Implements(marshalerType) && !reflect.PointerTo(v.Type()).Implements(marshalerType) {
		switch v.Kind() {
		case reflect.String:
			return v.String()
		case reflect.Bool:
			return v.Bool()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return json.Number(strconv.FormatInt(v.Int(), 10))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return json.Number(strconv.FormatUint(v.Uint(), 10))
		}
	}
	raw, err := json.Marshal(v.Interface())
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil
	}
	return out
}
