package jsonschema

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// decimal is a JSON number kept exact: the value is ±0.digits × 10^exp,
// digits without leading or trailing zeros ("" is zero, with exp 0 and
// neg false). Comparing two needs no arithmetic, so a number such as
// 1e999999999 costs nothing (big.Rat would expand it).
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// maxExp bounds the exponents kept: beyond, every number of this package's
// concern compares the same way, and sums of two stay far from overflow.
const maxExp = 1 << 40

// parseDecimal reads a number in JSON's grammar (RFC 8259 section 6).
func parseDecimal(s string) (decimal, error) {
	var d decimal
	rest := s
	if strings.HasPrefix(rest, "-") {
		d.neg = true
		rest = rest[1:]
	}
	mant, expPart, hasExp := strings.Cut(strings.ToLower(rest), "e")
	intPart, frac, hasFrac := strings.Cut(mant, ".")
	if !digitsOnly(intPart) || (len(intPart) > 1 && intPart[0] == '0') ||
		(hasFrac && !digitsOnly(frac)) {
		return decimal{}, fmt.Errorf("%q is not a JSON number", s)
	}
	var exp int64
	if hasExp {
		sign := int64(1)
		switch {
		case strings.HasPrefix(expPart, "-"):
			sign, expPart = -1, expPart[1:]
		case strings.HasPrefix(expPart, "+"):
			expPart = expPart[1:]
		}
		if !digitsOnly(expPart) {
			return decimal{}, fmt.Errorf("%q is not a JSON number", s)
		}
		expPart = strings.TrimLeft(expPart, "0")
		if len(expPart) > 13 {
			exp = maxExp
		} else if expPart != "" {
			n, err := strconv.ParseInt(expPart, 10, 64)
			if err != nil {
				return decimal{}, fmt.Errorf("%q is not a JSON number: %w", s, err)
			}
			exp = min(n, maxExp)
		}
		exp *= sign
	}
	all := intPart + frac
	lead := len(all) - len(strings.TrimLeft(all, "0"))
	all = strings.TrimRight(all[lead:], "0")
	if all == "" {
		return decimal{}, nil
	}
	d.digits = all
	d.exp = exp + int64(len(intPart)) - int64(lead)
	return d, nil
}

func digitsOnly(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isInteger reports whether d has no fractional part (1.0 and 1e2 are
// integers, as the specification says).
func (d decimal) isInteger() bool { return d.digits == "" || int64(len(d.digits)) <= d.exp }

// cmp returns -1, 0 or +1 as d is less than, equal to or greater than e.
func (d decimal) cmp(e decimal) int {
	switch {
	case d.digits == "" && e.digits == "":
		return 0
	case d.digits == "":
		return e.sign() * -1
	case e.digits == "":
		return d.sign()
	case d.neg != e.neg:
		return d.sign()
	}
	c := d.cmpAbs(e)
	if d.neg {
		return -c
	}
	return c
}

func (d decimal) sign() int {
	if d.neg {
		return -1
	}
	return 1
}

// cmpAbs compares the magnitudes of two non-zero numbers.
func (d decimal) cmpAbs(e decimal) int {
	if d.exp != e.exp {
		if d.exp < e.exp {
			return -1
		}
		return 1
	}
	return strings.Compare(d.digits, e.digits) // no trailing zeros: digit order is value order
}

// number reads a json.Number as Decode produces.
func number(n json.Number) (decimal, error) { return parseDecimal(string(n)) }
