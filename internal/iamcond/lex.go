package iamcond

import "strings"

// The helpers in this file form a small CEL lexer: just enough to tell code
// from string literals, quoted identifiers and comments, and to track
// bracket depth. Splitting on the text (rather than on a parsed AST) keeps
// each clause exactly as the administrator wrote it, which is what JIT
// Access v1 does too.

// stripComments removes CEL comments (// up to the end of the line) that
// are outside string literals. The line break itself is kept, so that the
// text on either side cannot fuse into a new token.
func stripComments(s string) string {
	if !strings.Contains(s, "//") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	i := 0
	for i < len(s) {
		switch ch := s[i]; {
		case ch == '"' || ch == '\'' || ch == '`':
			end := skipQuoted(s, i)
			b.WriteString(s[i:end])
			i = end
		case ch == '/' && i+1 < len(s) && s[i+1] == '/':
			for i < len(s) && s[i] != '\n' && s[i] != '\r' {
				i++
			}
		default:
			b.WriteByte(ch)
			i++
		}
	}
	return b.String()
}

// walkCode calls fn for every byte of s that is code, that is outside
// string literals and quoted identifiers; s must be free of comments.
// depth is the bracket nesting ((), [], {} alike) around the byte; for a
// bracket it is the depth outside that bracket. A closing bracket without
// an opening one leaves the depth at zero. fn returns how many further
// bytes to skip (for two-byte operators).
func walkCode(s string, fn func(i, depth int) int) {
	depth := 0
	for i := 0; i < len(s); {
		switch ch := s[i]; ch {
		case '"', '\'', '`':
			i = skipQuoted(s, i)
			continue
		case '(', '[', '{':
			i += 1 + fn(i, depth)
			depth++
			continue
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		}
		i += 1 + fn(i, depth)
	}
}

// skipQuoted returns the index just after the string literal or quoted
// identifier that starts at s[i], or len(s) if it is not terminated.
// String literals may be triple-quoted and raw (r"…": backslash is not an
// escape); quoted identifiers (`…`) have no escapes.
func skipQuoted(s string, i int) int {
	q := s[i]
	if q == '`' {
		if j := strings.IndexByte(s[i+1:], '`'); j >= 0 {
			return i + 1 + j + 1
		}
		return len(s)
	}
	delim := s[i : i+1]
	if strings.HasPrefix(s[i:], strings.Repeat(delim, 3)) {
		delim = s[i : i+3]
	}
	raw := isRawPrefix(s, i)
	for j := i + len(delim); j < len(s); {
		switch {
		case s[j] == '\\' && !raw:
			j += 2
		case strings.HasPrefix(s[j:], delim):
			return j + len(delim)
		default:
			j++
		}
	}
	return len(s)
}

// isRawPrefix reports whether the quote at s[i] opens a raw string: it is
// preceded by a literal prefix made of r/R (and optionally b/B for bytes)
// that is not the tail of an identifier.
func isRawPrefix(s string, i int) bool {
	raw, n := false, 0
	for j := i - 1; j >= 0 && n < 2; j-- {
		if c := s[j]; c == 'r' || c == 'R' {
			raw = true
		} else if c != 'b' && c != 'B' {
			break
		}
		n++
	}
	before := i - 1 - n
	return raw && (before < 0 || !isIdentByte(s[before]))
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
