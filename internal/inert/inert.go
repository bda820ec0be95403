// Package inert makes text that came from outside the product (Microsoft's
// error messages, a callback's error_description, a signal's "by" and "note",
// a customer's Dataverse plugin) safe to show: in a terminal it cannot move
// the cursor, clear the screen, write the clipboard (OSC 52) or reorder what
// follows it (bidi overrides); in the Temporal UI's Markdown it cannot become
// a link, an image or formatting.
//
// Apply it where the text is shown, not where it is stored, so histories keep
// what was received and every view decides for itself.
package inert

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s on one line with every control character removed: C0 and C1
// controls (ESC, so no ANSI/OSC sequence survives, and BEL, backspace, CR),
// DEL, Unicode line and paragraph separators, and the bidirectional
// formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069). Tabs and line breaks become one space each, so a
// multi-line message stays readable on one line; invalid UTF-8 becomes
// U+FFFD.
func Text(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case drop(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Markdown is Text with every ASCII punctuation character backslash-escaped
// (CommonMark allows escaping any of them), so that outside text put in the
// Temporal UI's details renders as the literal characters: no link, image,
// HTML, emphasis, heading, table or code span, and no autolink either
// ("https\://", "www\.").
func Markdown(s string) string {
	s = Text(s)
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for _, r := range s {
		if r < utf8.RuneSelf && unicode.IsPunct(r) || r < utf8.RuneSelf && unicode.IsSymbol(r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isPlain reports whether s needs no change: valid UTF-8 without a
// character Text would touch. Most text is plain, and then Text allocates
// nothing.
func isPlain(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' || drop(r) {
			return false
		}
		i += n
	}
	return true
}

// drop reports the runes Text removes: controls (Cc: C0, DEL, C1) and the
// Bidi_Control characters.
func drop(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}
