package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// decodeExact decodes a JSON object into the struct v, rejecting any property v does not
// declare. encoding/json matches names case-insensitively at every depth, Microsoft's
// services do not (Dataverse: "Property names are case sensitive", Graph likewise), so every
// object's names are compared exactly with the struct it decodes into, nested ones included,
// before encoding/json sees the body. It returns the offending property name ("" for syntax
// errors) with the error.
func decodeExact(r io.Reader, v any) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return "", err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", errors.New("empty payload, JSON content expected")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return "", fmt.Errorf("invalid JSON: %w", err)
	}
	if top == nil {
		return "", errors.New("the body must be a JSON object, not null")
	}
	if path := unknownName(b, reflect.TypeOf(v)); path != nil {
		prop := path[len(path)-1]
		return prop, fmt.Errorf("unknown property '%s'", prop)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("invalid JSON: %w", err)
	}
	return "", nil
}

// unknownName walks the JSON value raw against the Go type t and returns the
// path of property names (outermost first) to the first object property t
// does not declare with exactly that spelling, nil when there is none.
// Maps, json.RawMessage and interfaces take any name; a value of the wrong
// shape is left for encoding/json to reject.
func unknownName(raw json.RawMessage, t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(json.RawMessage{}):
		return nil
	case t.Kind() == reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return nil
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			ft, ok := fields[k]
			if !ok {
				return []string{k}
			}
			if p := unknownName(obj[k], ft); p != nil {
				return append([]string{k}, p...)
			}
		}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil
		}
		for _, it := range items {
			if p := unknownName(it, t.Elem()); p != nil {
				return p
			}
		}
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields (embedded structs
// flattened, as encoding/json does) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
