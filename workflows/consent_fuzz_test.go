package workflows

import (
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// FuzzDecodeConsent: whatever a Temporal client sends as the admin-consent
// signal (the payload is anyone's who can signal), decodeConsent returns a
// signal or a problem, never both, never a panic, and keeps its texts short.
func FuzzDecodeConsent(f *testing.F) {
	for _, s := range []string{
		`{"granted":true,"by":"admin@contoso"}`,
		`{"granted":false,"by":"x","note":"AADSTS65004","source":"callback","runId":"0198c3a1-7f2e"}`,
		`{"granted":"yes"}`, `{"granted":null}`, `{"by":7,"granted":true}`, `[]`, `null`, `"granted"`, `{}`, ``,
		`{"granted":true,"note":"\u001b]52;c;ZXZpbA==\u0007"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)}, Data: data}
		sig, problem := decodeConsent(converter.NewRawValue(p))
		if (sig == nil) == (problem == "") {
			t.Fatalf("signal %+v with problem %q for %q", sig, problem, data)
		}
		if sig == nil {
			return
		}
		for _, s := range []string{sig.By, sig.Note} {
			if len(s) > maxSignalText+len("…") {
				t.Fatalf("%d bytes kept of %q", len(s), data)
			}
		}
	})
}
