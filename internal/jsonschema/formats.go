package jsonschema

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// formats are the format checkers, by name; each says why a string is not
// of its format.
var formats = map[string]func(string) error{
	"date-time": dateTime,
	"email":     email,
	"uri":       uri,
}

// dateTime checks RFC 3339 section 5.6 date-time:
// YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), T and Z in either case, a leap
// second only at 23:59:60 UTC.
func dateTime(s string) error {
	const layout = "YYYY-MM-DDTHH:MM:SS"
	if len(s) < len(layout)+1 {
		return fmt.Errorf("too short for %s and a time offset", layout)
	}
	date, rest := s[:10], s[10:]
	if rest[0] != 'T' && rest[0] != 't' {
		return errors.New("date and time are not separated by T")
	}
	if !shaped(date, "dddd-dd-dd") {
		return errors.New("the date is not YYYY-MM-DD")
	}
	year, month, day := atoi(date[:4]), atoi(date[5:7]), atoi(date[8:10])
	if month < 1 || month > 12 {
		return fmt.Errorf("month %02d does not exist", month)
	}
	if day < 1 || day > daysIn(year, month) {
		return fmt.Errorf("%04d-%02d has no day %02d", year, month, day)
	}
	clock := rest[1:]
	if len(clock) < 8 || !shaped(clock[:8], "dd:dd:dd") {
		return errors.New("the time is not HH:MM:SS")
	}
	hour, minute, second := atoi(clock[:2]), atoi(clock[3:5]), atoi(clock[6:8])
	offset := clock[8:]
	if strings.HasPrefix(offset, ".") {
		i := 1
		for i < len(offset) && isDigit(offset[i]) {
			i++
		}
		if i == 1 {
			return errors.New("no digit after the decimal point")
		}
		offset = offset[i:]
	}
	if hour > 23 || minute > 59 || second > 60 {
		return errors.New("the time is out of range")
	}
	offMinutes := 0
	switch {
	case offset == "Z" || offset == "z":
	case len(offset) == 6 && (offset[0] == '+' || offset[0] == '-') && shaped(offset[1:], "dd:dd"):
		h, m := atoi(offset[1:3]), atoi(offset[4:6])
		if h > 23 || m > 59 {
			return errors.New("the time offset is out of range")
		}
		offMinutes = h*60 + m
		if offset[0] == '-' {
			offMinutes = -offMinutes
		}
	default:
		return errors.New("the time offset is not Z or ±HH:MM")
	}
	if second == 60 {
		utc := ((hour*60+minute-offMinutes)%(24*60) + 24*60) % (24 * 60)
		if utc != 23*60+59 {
			return errors.New("a leap second is only at 23:59:60 UTC")
		}
	}
	return nil
}

// shaped reports whether s has digits where shape has d, and shape's
// other bytes elsewhere.
func shaped(s, shape string) bool {
	if len(s) != len(shape) {
		return false
	}
	for i := range len(s) {
		if shape[i] == 'd' && !isDigit(s[i]) || shape[i] != 'd' && s[i] != shape[i] {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// atoi reads digits already checked.
func atoi(s string) int {
	n := 0
	for i := range len(s) {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// email checks RFC 5321 section 4.1.2 Mailbox: a dot-string or quoted
// local part of at most 64 octets, "@", and a domain (host name) or an
// address literal, 254 octets in all (section 4.5.3.1). Quoted local parts
// may not hold quoted pairs (\x), which no account of ours has.
func email(s string) error {
	if len(s) > 254 {
		return errors.New("longer than 254 octets")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return errors.New("missing @")
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 {
		return errors.New("local part longer than 64 octets")
	}
	if err := localPart(local); err != nil {
		return err
	}
	if lit, ok := strings.CutPrefix(domain, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if !ok {
			return errors.New("address literal without ]")
		}
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			if a, err := netip.ParseAddr(v6); err != nil || !a.Is6() || a.Zone() != "" {
				return errors.New("invalid IPv6 address literal")
			}
			return nil
		}
		if a, err := netip.ParseAddr(lit); err != nil || !a.Is4() {
			return errors.New("invalid IPv4 address literal")
		}
		return nil
	}
	return hostname(domain)
}

func localPart(local string) error {
	if local == "" {
		return errors.New("empty local part")
	}
	if q, ok := strings.CutPrefix(local, `"`); ok && len(local) > 1 {
		q, ok = strings.CutSuffix(q, `"`)
		if !ok {
			return errors.New("unterminated quoted local part")
		}
		for i := range len(q) {
			if c := q[i]; c < 32 || c > 126 || c == '"' || c == '\\' {
				return fmt.Errorf("%q in a quoted local part", c)
			}
		}
		return nil
	}
	for atom := range strings.SplitSeq(local, ".") {
		if atom == "" {
			return errors.New("empty atom in the local part (a leading, trailing or double dot)")
		}
		for i := range len(atom) {
			if !isAtext(atom[i]) {
				return fmt.Errorf("%q in the local part", atom[i])
			}
		}
	}
	return nil
}

func isAtext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// hostname checks RFC 1123 section 2.1 host names: dot-separated labels
// of 1 to 63 letters, digits and hyphens, neither starting nor ending with
// a hyphen, 253 octets at most, and maybe a final dot (an absolute name,
// RFC 1034 section 3.1).
func hostname(h string) error {
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return errors.New("empty domain")
	}
	if len(h) > 253 {
		return errors.New("domain longer than 253 octets")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("a domain label is empty or longer than 63 octets")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a domain label starts or ends with a hyphen")
		}
		for i := range len(label) {
			if c := label[i]; !isLetDigHyp(c) {
				return fmt.Errorf("%q in the domain", c)
			}
		}
	}
	return nil
}

func isLetDigHyp(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '-'
}

// uri checks for an absolute URI (RFC 3986 section 4.3), as Go's net/url
// parses one.
func uri(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	if !u.IsAbs() {
		return errors.New("not absolute (no scheme)")
	}
	return nil
}
