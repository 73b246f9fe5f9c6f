// Package usertext checks free text that people type and other people read:
// justifications, and the reasons of decisions, revocations and
// withdrawals. Such text reaches approvers' screens, mail, the IAM binding's
// description and the audit trail, so it must say what it looks like it
// says: no text that is blank but looks filled in, no characters that
// reorder what is displayed (Trojan Source, CVE-2021-42574), no controls
// that forge lines in logs or mail.
package usertext

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrBlank is returned for text with nothing visible in it.
var ErrBlank = errors.New("is blank")

// Clean returns s without surrounding white space, with CRLF line ends
// made LF (browsers send textarea lines as CRLF), or an error that says why
// it is refused:
//
//   - not valid UTF-8;
//   - more than max characters (runes);
//   - a control character other than tab and line feed (a lone CR too);
//   - a bidirectional control (U+202A–U+202E, U+2066–U+2069, U+200E,
//     U+200F, U+061C), which makes text display in another order than
//     it reads;
//   - another invisible format character (Unicode category Cf: zero-width
//     space, word joiner, soft hyphen, BOM, tag characters …), except the
//     zero-width joiner and non-joiner that emoji and several scripts need;
//   - a line or paragraph separator (U+2028, U+2029);
//   - nothing visible: no letter, digit, punctuation or symbol other than
//     the blank-looking fillers (U+3164, U+115F, U+1160, U+FFA0, U+2800).
//
// Errors read after the field's name: "justification " + err.Error().
func Clean(s string, max int) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("is not valid UTF-8")
	}
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if n := utf8.RuneCountInString(s); n > max {
		return "", fmt.Errorf("must be at most %d characters, got %d", max, n)
	}
	visible := false
	for i, r := range s {
		switch {
		case r == '\n' || r == '\t':
		case unicode.IsControl(r):
			return "", fmt.Errorf("contains the control character %U at byte %d", r, i)
		case bidi(r):
			return "", fmt.Errorf("contains the bidirectional control %U at byte %d, which changes the order text is shown in", r, i)
		case r == '\u200c' || r == '\u200d':
		case unicode.Is(unicode.Cf, r):
			return "", fmt.Errorf("contains the invisible character %U at byte %d", r, i)
		case r == '\u2028' || r == '\u2029':
			return "", fmt.Errorf("contains the line separator %U at byte %d; use a line feed", r, i)
		case filler(r):
		case unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S):
			visible = true
		}
	}
	if !visible {
		return "", ErrBlank
	}
	return s, nil
}

// bidi reports the Unicode bidirectional formatting characters
// (UAX #9 explicit formatting, and the implicit marks).
func bidi(r rune) bool {
	return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' ||
		r == '\u200e' || r == '\u200f' || r == '\u061c'
}

// filler reports letters and symbols that display as blank space.
func filler(r rune) bool {
	switch r {
	case '\u3164', '\u115f', '\u1160', '\uffa0', '\u2800':
		return true
	}
	return false
}
