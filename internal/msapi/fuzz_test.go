package msapi

import (
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
)

// Microsoft's error text is outside text: a customer's Dataverse plugin sets
// it. The error line shown in status, logs and failure messages keeps none
// of its control or bidi characters.
func TestErrorLineIsInert(t *testing.T) {
	e := ErrorFromBody("dataverse", "createUser", 400, http.Header{"X-Ms-Service-Request-Id": {"r\x1b[2J"}},
		[]byte(`{"error":{"code":"0x8004\u001b]52;c;ZXZpbA==\u0007","message":"plugin says \u001b[2J\u001b[Hhi \u202Eevil"}}`))
	line := e.Error()
	assert.NotContains(t, line, "\x1b")
	assert.NotContains(t, line, "\x07")
	assert.NotContains(t, line, "\u202e")
	assert.Contains(t, line, "plugin says [2J[Hhi evil")
}

// FuzzErrorFromBody: any status, headers and body decode to one *Error
// whose line is a single inert line, without panicking.
func FuzzErrorFromBody(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{429, `{"error":{"code":"TooManyRequests","message":"Slow down","innerError":{"request-id":"inner"}}}`},
		{429, `{"error":{"code":"0x80072322","message":"Number of requests exceeded"}}`},
		{401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t","trace_id":"trace-1","error_codes":[7000215]}`},
		{500, `<html>oops</html>`},
		{400, `{"error":null}`},
		{400, `{"error":[1,2]}`},
		{403, `{"error":{"code":"\u001b]52;c;eA==\u0007","message":"\u202e"}}`},
		{0, ``},
	} {
		f.Add(s.status, "7", s.body)
	}
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		e := ErrorFromBody("graph", "op", status, http.Header{"Retry-After": {retryAfter}}, []byte(body))
		if e == nil || e.Kind == "" {
			t.Fatalf("no error kind for status %d body %q", status, body)
		}
		if e.RetryAfter < 0 {
			t.Fatalf("negative Retry-After %s from %q", e.RetryAfter, retryAfter)
		}
		line := e.Error()
		if strings.ContainsAny(line, "\n\r") {
			t.Fatalf("error line spans lines: %q", line)
		}
		for _, r := range line {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("error line keeps %U: %q", r, line)
			}
		}
	})
}
