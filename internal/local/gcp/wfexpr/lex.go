package wfexpr

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tInt
	tDouble
	tString
	tTrue
	tFalse
	tNull
	tAnd
	tOr
	tNot
	tIn
	tPlus
	tMinus
	tStar
	tSlash
	tSlashSlash
	tPercent
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
	tLParen
	tRParen
	tLBrack
	tRBrack
	tLBrace
	tRBrace
	tComma
	tDot
	tColon
)

type token struct {
	kind tokKind
	pos  int    // byte offset in the source
	text string // identifier or keyword spelling, or the decoded string literal
	i    int64
	f    float64
}

// keywords maps the spellings Workflows accepts. Logical operators may be
// lower- or upper-case but not mixed-case, booleans true/True/TRUE
// (https://cloud.google.com/workflows/docs/reference/syntax/datatypes).
// Decision: null and in are accepted only in lower case, the spelling every
// documented example uses.
var keywords = map[string]tokKind{
	"true": tTrue, "True": tTrue, "TRUE": tTrue,
	"false": tFalse, "False": tFalse, "FALSE": tFalse,
	"null": tNull,
	"and":  tAnd, "AND": tAnd,
	"or": tOr, "OR": tOr,
	"not": tNot, "NOT": tNot,
	"in": tIn,
}

type lexer struct {
	src string
	off int
}

// syntaxError reports a problem at byte offset pos as line and column (both
// 1-based, columns in characters), since expressions may span lines.
func (lx *lexer) syntaxError(pos int, format string, args ...any) *Error {
	line, col := 1, 1
	for _, r := range lx.src[:min(pos, len(lx.src))] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &Error{
		Tags:    []string{TagSyntaxError},
		Message: fmt.Sprintf("line %d, column %d: %s", line, col, fmt.Sprintf(format, args...)),
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (lx *lexer) next() (token, error) {
	for lx.off < len(lx.src) {
		c := lx.src[lx.off]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			lx.off++
			continue
		}
		break
	}
	start := lx.off
	if start >= len(lx.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := lx.src[start]
	switch {
	case isIdentStart(c):
		end := start + 1
		for end < len(lx.src) && (isIdentStart(lx.src[end]) || isDigit(lx.src[end])) {
			end++
		}
		lx.off = end
		word := lx.src[start:end]
		if k, ok := keywords[word]; ok {
			return token{kind: k, pos: start, text: word}, nil
		}
		return token{kind: tIdent, pos: start, text: word}, nil
	case isDigit(c):
		return lx.number()
	case c == '"' || c == '\'':
		return lx.str(c)
	}
	lx.off++
	two := func(second byte, yes, no tokKind) token {
		if lx.off < len(lx.src) && lx.src[lx.off] == second {
			lx.off++
			return token{kind: yes, pos: start}
		}
		return token{kind: no, pos: start}
	}
	switch c {
	case '+':
		return token{kind: tPlus, pos: start}, nil
	case '-':
		return token{kind: tMinus, pos: start}, nil
	case '*':
		return token{kind: tStar, pos: start}, nil
	case '/':
		return two('/', tSlashSlash, tSlash), nil
	case '%':
		return token{kind: tPercent, pos: start}, nil
	case '<':
		return two('=', tLe, tLt), nil
	case '>':
		return two('=', tGe, tGt), nil
	case '=':
		if t := two('=', tEq, tEOF); t.kind == tEq {
			return t, nil
		}
		return token{}, lx.syntaxError(start, "unexpected '=' (use == to compare)")
	case '!':
		if t := two('=', tNe, tEOF); t.kind == tNe {
			return t, nil
		}
		return token{}, lx.syntaxError(start, "unexpected '!' (use not)")
	case '(':
		return token{kind: tLParen, pos: start}, nil
	case ')':
		return token{kind: tRParen, pos: start}, nil
	case '[':
		return token{kind: tLBrack, pos: start}, nil
	case ']':
		return token{kind: tRBrack, pos: start}, nil
	case '{':
		return token{kind: tLBrace, pos: start}, nil
	case '}':
		return token{kind: tRBrace, pos: start}, nil
	case ',':
		return token{kind: tComma, pos: start}, nil
	case '.':
		return token{kind: tDot, pos: start}, nil
	case ':':
		return token{kind: tColon, pos: start}, nil
	}
	r, _ := utf8.DecodeRuneInString(lx.src[start:])
	return token{}, lx.syntaxError(start, "unexpected character %q", r)
}

// number lexes digits with an optional fraction. Decision: the documented
// number syntax is digits and a decimal point only, so exponents, a leading
// or trailing point, and integers beyond int64 are syntax errors.
func (lx *lexer) number() (token, error) {
	start := lx.off
	end := start
	for end < len(lx.src) && isDigit(lx.src[end]) {
		end++
	}
	isDouble := false
	if end+1 < len(lx.src) && lx.src[end] == '.' && isDigit(lx.src[end+1]) {
		isDouble = true
		end += 2
		for end < len(lx.src) && isDigit(lx.src[end]) {
			end++
		}
	}
	if end < len(lx.src) && (isIdentStart(lx.src[end]) || lx.src[end] == '.' && !isDouble && end+1 < len(lx.src) && isDigit(lx.src[end+1])) {
		return token{}, lx.syntaxError(end, "malformed number")
	}
	lx.off = end
	text := lx.src[start:end]
	if isDouble {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return token{}, lx.syntaxError(start, "double literal %s out of range", text)
		}
		return token{kind: tDouble, pos: start, f: f}, nil
	}
	i, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return token{}, lx.syntaxError(start, "integer literal %s out of range", text)
	}
	return token{kind: tInt, pos: start, i: i}, nil
}

// str lexes a quoted string literal. Decision: JSON escapes plus \' are
// accepted; an unknown escape, a raw line break and invalid UTF-8 are syntax
// errors.
func (lx *lexer) str(quote byte) (token, error) {
	start := lx.off
	i := start + 1
	var b strings.Builder
	for {
		if i >= len(lx.src) {
			return token{}, lx.syntaxError(start, "unterminated string literal")
		}
		c := lx.src[i]
		switch {
		case c == quote:
			lx.off = i + 1
			return token{kind: tString, pos: start, text: b.String()}, nil
		case c == '\n' || c == '\r':
			return token{}, lx.syntaxError(i, "line break in string literal")
		case c == '\\':
			if i+1 >= len(lx.src) {
				return token{}, lx.syntaxError(i, "unterminated string literal")
			}
			esc := lx.src[i+1]
			i += 2
			switch esc {
			case '"', '\'', '\\', '/':
				b.WriteByte(esc)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				r, n, err := lx.unicodeEscape(i)
				if err != nil {
					return token{}, err
				}
				b.WriteRune(r)
				i += n
			default:
				return token{}, lx.syntaxError(i-2, "unknown escape sequence \\%c", esc)
			}
		case c < utf8.RuneSelf:
			if c < 0x20 {
				return token{}, lx.syntaxError(i, "control character in string literal")
			}
			b.WriteByte(c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(lx.src[i:])
			if r == utf8.RuneError && n <= 1 {
				return token{}, lx.syntaxError(i, "invalid UTF-8 in string literal")
			}
			b.WriteString(lx.src[i : i+n])
			i += n
		}
	}
}

// unicodeEscape decodes the XXXX of \uXXXX at offset i, joining a UTF-16
// surrogate pair; a lone surrogate is a syntax error.
func (lx *lexer) unicodeEscape(i int) (rune, int, error) {
	hex4 := func(at int) (rune, bool) {
		if at+4 > len(lx.src) {
			return 0, false
		}
		v, err := strconv.ParseUint(lx.src[at:at+4], 16, 16)
		return rune(v), err == nil
	}
	r, ok := hex4(i)
	if !ok {
		return 0, 0, lx.syntaxError(i-2, "malformed \\u escape")
	}
	if r < 0xD800 || r > 0xDFFF {
		return r, 4, nil
	}
	if r <= 0xDBFF && i+10 <= len(lx.src) && lx.src[i+4] == '\\' && lx.src[i+5] == 'u' {
		if lo, ok := hex4(i + 6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
			return (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000, 10, nil
		}
	}
	return 0, 0, lx.syntaxError(i-2, "lone UTF-16 surrogate in \\u escape")
}
