// Package emailaddr is the one place email addresses are checked,
// compared and keyed. Identities decide access, so an address is accepted
// only if it is already plain ASCII in canonical form: nothing is trimmed,
// folded or normalised into it. Unicode case folding and space trimming
// would map look-alikes (U+00A0 no-break space, U+3000, U+0085 NEL,
// U+0130 İ, fullwidth ＠ …) onto someone else's address; ASCII rules
// cannot.
//
// The hand-written checks this replaced (IAM members, the local IAM,
// deployment settings) accepted any bytes around one '@' and folded case
// with Unicode rules; the stricter rule here won. The apostrophe stays
// valid (Google usernames may have one); where an address is quoted in a
// query (Cloud Identity, the local world file) the caller refuses it.
package emailaddr

import (
	"errors"
	"fmt"
	"strings"
)

// Limits of RFC 5321 §4.5.3.1.
const (
	maxAddress = 254
	maxLocal   = 64
	maxLabel   = 63
	maxDomain  = 253
)

// ErrInvalid is wrapped by every refusal of Canonical.
var ErrInvalid = errors.New("not a canonical email address")

// Canonical checks that s is an ASCII email address in canonical form — no
// whitespace anywhere, no control, format or non-ASCII character, exactly
// one '@', a non-empty local part of letters, digits and . _ % + - ' (no
// leading, trailing or doubled dot), and a domain that is a valid host
// name — and returns it ASCII-lower-cased. Anything else is refused, never
// repaired.
func Canonical(s string) (string, error) {
	if err := check(s); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return Key(s), nil
}

func check(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxAddress:
		return fmt.Errorf("longer than %d bytes", maxAddress)
	}
	for i := 0; i < len(s); i++ {
		// Byte-wise: any non-ASCII byte (hence any non-ASCII rune, valid
		// UTF-8 or not) is refused, as are spaces and controls.
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("byte %d (0x%02x) is whitespace, a control or not ASCII", i, c)
		}
	}
	if n := strings.Count(s, "@"); n != 1 {
		return fmt.Errorf("has %d '@', want exactly one", n)
	}
	local, domain, _ := strings.Cut(s, "@")
	if err := checkLocal(local); err != nil {
		return fmt.Errorf("local part: %w", err)
	}
	if err := CheckDomain(domain); err != nil {
		return fmt.Errorf("domain: %w", err)
	}
	return nil
}

func checkLocal(l string) error {
	switch {
	case l == "":
		return errors.New("empty")
	case len(l) > maxLocal:
		return fmt.Errorf("longer than %d bytes", maxLocal)
	case l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, ".."):
		return errors.New("leading, trailing or doubled dot")
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !isAlnum(c) && !strings.ContainsRune("._%+-'", rune(c)) {
			return fmt.Errorf("character %q is not allowed", c)
		}
	}
	return nil
}

// CheckDomain checks that d is a host name of at least two dot-separated
// labels of ASCII letters, digits and inner hyphens, whose last label is
// not all digits (so no IP address literal passes), in any ASCII case.
func CheckDomain(d string) error {
	if d == "" {
		return errors.New("empty")
	}
	if len(d) > maxDomain {
		return fmt.Errorf("longer than %d bytes", maxDomain)
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%q has no dot", d)
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabel {
			return fmt.Errorf("label %q must be 1 to %d characters", l, maxLabel)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isAlnum(c) && c != '-' {
				return fmt.Errorf("label %q holds %q", l, c)
			}
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return fmt.Errorf("top-level label %q is all digits", tld)
	}
	return nil
}

// Valid reports whether Canonical accepts s.
func Valid(s string) bool { return check(s) == nil }

// Equal reports whether a and b are both valid and the same address,
// ignoring ASCII case only. An invalid address equals nothing, not even
// itself: a comparison never succeeds through a look-alike.
func Equal(a, b string) bool {
	return Valid(a) && Valid(b) && Key(a) == Key(b)
}

// Key is s with ASCII letters lower-cased and every other byte kept, for
// map keys and buckets: spellings that differ in ASCII case share a key,
// and non-ASCII variants keep distinct keys (they are never folded onto an
// ASCII address, as strings.ToLower would fold U+212A KELVIN SIGN to k).
func Key(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
