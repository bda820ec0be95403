package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// source is one thing the leak scan reads: a history, a log, a listing.
type source struct {
	Name string
	Kind string // "history", "search-attributes", "log", "database"
	Data []byte
}

// hit is one secret found in one source.
type hit struct {
	Source string
	Secret int    // index into the scanned secrets; never the value
	How    string // "plain", "base64", "base64 inside JSON"
}

// scanSecrets looks for every secret in every source: verbatim, base64
// encoded at any byte alignment (payload data is base64 in JSON output), and
// inside any base64 JSON string that decodes. Secrets shorter than 8
// characters are refused: they would match by chance.
func scanSecrets(secrets []string, sources []source) ([]hit, error) {
	for i, s := range secrets {
		if len(s) < 8 {
			return nil, fmt.Errorf("secret #%d is shorter than 8 characters; scanning for it proves nothing", i)
		}
	}
	var hits []hit
	for _, src := range sources {
		var decoded [][]byte
		if looksJSON(src.Data) {
			decoded = decodedStrings(src.Data)
		}
		for i, s := range secrets {
			switch {
			case bytes.Contains(src.Data, []byte(s)):
				hits = append(hits, hit{src.Name, i, "plain"})
			case containsAny(src.Data, base64Needles(s)):
				hits = append(hits, hit{src.Name, i, "base64"})
			default:
				for _, d := range decoded {
					if bytes.Contains(d, []byte(s)) {
						hits = append(hits, hit{src.Name, i, "base64 inside JSON"})
						break
					}
				}
			}
		}
	}
	return hits, nil
}

func containsAny(data []byte, needles []string) bool {
	for _, n := range needles {
		if bytes.Contains(data, []byte(n)) {
			return true
		}
	}
	return false
}

// base64Needles are the parts of s's base64 form that do not depend on the
// bytes around it, for each of the three alignments, in the standard and
// the URL alphabet.
func base64Needles(s string) []string {
	var out []string
	for k := range 3 {
		b := append(make([]byte, k), s...)
		enc := base64.RawStdEncoding.EncodeToString(b)
		start := 0
		if k > 0 {
			start = 4 // the first quantum mixes in the preceding bytes
		}
		end := len(enc)
		if len(b)%3 != 0 {
			end = len(b) / 3 * 4 // the last partial quantum mixes in the following bytes
		}
		if end-start < 8 {
			continue
		}
		n := enc[start:end]
		out = append(out, n, strings.NewReplacer("+", "-", "/", "_").Replace(n))
	}
	return out
}

func looksJSON(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// decodedStrings decodes one or more JSON documents and returns every
// string value that is valid base64, decoded.
func decodedStrings(b []byte) [][]byte {
	var out [][]byte
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) || err != nil {
			return out
		}
		walkStrings(v, func(s string) {
			if len(s) < 12 {
				return
			}
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				if d, err := enc.DecodeString(s); err == nil {
					out = append(out, d)
					return
				}
			}
		})
	}
}

func walkStrings(v any, f func(string)) {
	switch x := v.(type) {
	case string:
		f(x)
	case []any:
		for _, e := range x {
			walkStrings(e, f)
		}
	case map[string]any:
		for k, e := range x {
			f(k)
			walkStrings(e, f)
		}
	}
}

// capturedSecret is a secret value found in a decoded payload, with the key
// ID that came with it when there was one.
type capturedSecret struct {
	KeyID string
	Value string
}

// secretKeys are the JSON keys (lower case) whose string values are secrets
// in the product's payloads and in Graph's passwordCredential.
var secretKeys = map[string]bool{"secret": true, "clientsecret": true, "secrettext": true}

// collectSecrets walks a decoded payload for secret values: strings under a
// key in secretKeys, and the value of an object that also has a keyId (a
// rotation's current secret). Such a value sealed with the custody key
// ({"sealed","keyId"}, internal/custody) is opened with open; one it cannot
// open is skipped (the scan then misses its value, and says so).
func collectSecrets(v any, open func(sealed, keyID string) (string, bool), add func(capturedSecret)) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			collectSecrets(e, open, add)
		}
	case map[string]any:
		if _, ok := sealedValue(x); ok {
			return // reached only through its parent, which opens it with the Entra key ID
		}
		keyID, _ := x["keyId"].(string)
		for k, e := range x {
			lk := strings.ToLower(k)
			if !secretKeys[lk] && (lk != "value" || keyID == "") {
				collectSecrets(e, open, add)
				continue
			}
			s, ok := e.(string)
			if m, isMap := e.(map[string]any); isMap {
				if sv, isSealed := sealedValue(m); isSealed && open != nil {
					s, ok = open(sv[0], sv[1])
				}
			}
			if ok && len(s) >= 16 {
				add(capturedSecret{KeyID: keyID, Value: s})
			}
			collectSecrets(e, open, add)
		}
	}
}

// sealedValue reports whether m is a custody.Sealed as JSON: exactly the
// keys sealed and keyId, both strings.
func sealedValue(m map[string]any) ([2]string, bool) {
	sealed, ok1 := m["sealed"].(string)
	keyID, ok2 := m["keyId"].(string)
	return [2]string{sealed, keyID}, ok1 && ok2 && len(m) == 2
}
