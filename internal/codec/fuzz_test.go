package codec

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzDecode: the codec opens what it sealed, byte for byte, and refuses
// anything else that claims to be sealed (altered, truncated, another key)
// with a typed error, never a panic.
func FuzzDecode(f *testing.F) {
	key := bytes.Repeat([]byte{0x42}, KeySize)
	c, err := New(map[string][]byte{"k1": key}, "k1")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"granted":true}`), "k1", []byte{}, false)
	f.Add([]byte{}, "k1", bytes.Repeat([]byte{1}, 40), true)
	f.Add([]byte("x"), "other", []byte("short"), true)
	f.Fuzz(func(t *testing.T, plain []byte, keyID string, sealed []byte, raw bool) {
		if !raw {
			enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: plain}})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := c.Decode(enc)
			if err != nil {
				t.Fatalf("cannot open what it sealed: %v", err)
			}
			if !bytes.Equal(dec[0].GetData(), plain) {
				t.Fatalf("round trip changed %q into %q", plain, dec[0].GetData())
			}
			// One flipped bit anywhere is detected.
			if len(enc[0].Data) > 0 {
				enc[0].Data[len(plain)%len(enc[0].Data)] ^= 1
				if _, err := c.Decode(enc); !errors.Is(err, ErrTampered) {
					t.Fatalf("a flipped bit got %v, want ErrTampered", err)
				}
			}
			return
		}
		p := &commonpb.Payload{Metadata: map[string][]byte{MetadataEncoding: []byte(EncodingEncrypted), MetadataKeyID: []byte(keyID)}, Data: sealed}
		out, err := c.Decode([]*commonpb.Payload{p})
		if err == nil {
			// Only a GCM-authenticated payload opens; random bytes never are.
			t.Fatalf("opened a payload it did not seal: %v", out)
		}
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("untyped error %v", err)
		}
		if _, perr := proto.Marshal(p); perr != nil {
			t.Fatal(perr)
		}
	})
}

// FuzzHTTPDecode: whatever body reaches /decode with the right token, the
// endpoint answers without panicking, and bad input is the client's fault
// (4xx), never a server error.
func FuzzHTTPDecode(f *testing.F) {
	c, err := New(map[string][]byte{"k1": bytes.Repeat([]byte{0x42}, KeySize)}, "k1")
	if err != nil {
		f.Fatal(err)
	}
	h, err := NewHTTPHandler(c, HTTPOptions{Token: testToken, CORSOrigin: testOrigin})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"azE="},"data":"AAAA"}]}`)
	f.Add(`{"payloads":[]}`)
	f.Add(`{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"e30="}]}`)
	f.Add(`[[[[[[[[[[[[[[[[[[[[`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/decode", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+testToken)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q", w.Code, body)
		}
	})
}
