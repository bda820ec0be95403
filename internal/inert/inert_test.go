package inert

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "Insufficient privileges to complete the operation.", "Insufficient privileges to complete the operation."},
		{"non-ASCII kept", "Zugriff verweigert – Müller 日本", "Zugriff verweigert – Müller 日本"},
		{"screen clear", "a\x1b[2J\x1b[Hb", "a[2J[Hb"},
		{"OSC 52 clipboard", "x\x1b]52;c;ZXZpbA==\x07y", "x]52;c;ZXZpbA==y"},
		{"C1 CSI", "a\u009b31mb", "a31mb"},
		{"NUL, backspace and DEL", "a\x00b\x08c\x7fd", "abcd"},
		{"bidi override", "invoice\u202Etxt.exe", "invoicetxt.exe"},
		{"bidi isolates and marks", "\u2066a\u2069\u200Eb\u200Fc\u061C", "abc"},
		{"line breaks become spaces", "one\ntwo\r\nthree\tfour\u2028five", "one two  three four five"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Text(tc.in))
		})
	}
}

func TestMarkdown(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"link", "[click](https://evil.example)", `\[click\]\(https\:\/\/evil\.example\)`},
		{"image", "![x](http://e/x.png)", `\!\[x\]\(http\:\/\/e\/x\.png\)`},
		{"html", "<img src=x onerror=alert(1)>", `\<img src\=x onerror\=alert\(1\)\>`},
		{"emphasis and code", "**bold** _it_ `code`", "\\*\\*bold\\*\\* \\_it\\_ \\`code\\`"},
		{"autolink", "see www.evil.example", `see www\.evil\.example`},
		{"letters untouched", "Müller 42", "Müller 42"},
		{"controls stripped too", "a\x1b[31m[b]", `a\[31m\[b\]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Markdown(tc.in))
		})
	}
}

// TestTextAllocatesNothingForPlainText keeps the common case cheap: most
// messages have nothing to strip.
func TestTextAllocatesNothingForPlainText(t *testing.T) {
	s := "The user does not have permission to perform this action."
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = Text(s) }))
}

func FuzzText(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b]52;c;ZXZpbA==\x07", "a\u202Eb", "\xff\xfe", "[x](y)", "\u2028\t\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Text(%q) = %q is not valid UTF-8", s, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("Text(%q) = %q keeps %U", s, out, r)
			}
		}
		if Text(out) != out {
			t.Fatalf("Text is not idempotent on %q", s)
		}
		md := Markdown(s)
		for i, r := range md {
			if r < utf8.RuneSelf && strings.ContainsRune("[]()<>!`*_", r) && (i == 0 || md[i-1] != '\\') {
				t.Fatalf("Markdown(%q) = %q leaves %q unescaped", s, md, r)
			}
		}
	})
}
