package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// decodeExact decodes a JSON object into the struct v, rejecting any property v does not
// declare. encoding/json matches names case-insensitively, Microsoft's services do not, so
// top-level names are compared exactly first; DisallowUnknownFields covers nested objects.
// It returns the offending property name ("" for syntax errors) with the error.
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
	known := map[string]bool{}
	rt := reflect.TypeOf(v).Elem()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	for k := range top {
		if !known[k] {
			return k, fmt.Errorf("unknown property '%s'", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return f, fmt.Errorf("unknown property '%s'", f)
		}
		return "", fmt.Errorf("invalid JSON: %w", err)
	}
	return "", nil
}
