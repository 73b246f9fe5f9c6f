// Package isoduration reads and writes ISO 8601 durations the way JIT Groups
// policy documents and Privileged Access Manager use them: PnDTnHnMn.nS, where
// a day is exactly 24 hours and years, months and weeks are not accepted
// (they have no fixed length; docs/jit-access.md §3.4).
package isoduration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Parse reads a duration such as "PT1H", "P1D", "P1DT6H", "PT90M" or
// "PT0.5S". A leading '-' is refused: no duration in this project is negative.
func Parse(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, errors.New("empty duration")
	}
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "P") {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration (it must start with P, e.g. PT1H)", orig)
	}
	s = s[1:]
	var total float64 // in seconds; exact for any duration we accept
	inTime, any := false, false
	for s != "" {
		if s[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("%q: more than one T", orig)
			}
			inTime = true
			s = s[1:]
			if s == "" {
				return 0, fmt.Errorf("%q: T must be followed by hours, minutes or seconds", orig)
			}
			continue
		}
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration (e.g. PT1H, P1D, P1DT6H)", orig)
		}
		num, unit := s[:i], s[i]
		s = s[i+1:]
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
			return 0, fmt.Errorf("%q: bad number %q", orig, num)
		}
		if strings.Contains(num, ".") && (!inTime || unit != 'S') {
			return 0, fmt.Errorf("%q: only seconds may have a fraction", orig)
		}
		switch {
		case !inTime && unit == 'D':
			total += v * 86400
		case inTime && unit == 'H':
			total += v * 3600
		case inTime && unit == 'M':
			total += v * 60
		case inTime && unit == 'S':
			total += v
		case !inTime && (unit == 'Y' || unit == 'M' || unit == 'W'):
			return 0, fmt.Errorf("%q: years, months and weeks are not supported; use days (P30D) or hours", orig)
		default:
			return 0, fmt.Errorf("%q: unexpected unit %q", orig, string(unit))
		}
		any = true
	}
	if !any {
		return 0, fmt.Errorf("%q has no value", orig)
	}
	if total*float64(time.Second) > math.MaxInt64 {
		return 0, fmt.Errorf("%q is too long", orig)
	}
	return time.Duration(math.Round(total * float64(time.Second))), nil
}

// Format writes d in the canonical form: days, then hours, minutes and
// seconds, omitting zero parts ("P1DT6H", "PT1H30M", "PT0S"). Fractions
// below a second are kept down to the millisecond.
func Format(d time.Duration) string {
	if d < 0 {
		return "-" + Format(-d)
	}
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	if days := d / (24 * time.Hour); days > 0 {
		fmt.Fprintf(&b, "%dD", days)
		d -= days * 24 * time.Hour
	}
	if d == 0 {
		return b.String()
	}
	b.WriteByte('T')
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', -1, 64))
		b.WriteByte('S')
	}
	return b.String()
}

// Human writes d for people: "1 hour", "3 days", "1 day 6 hours", "90 minutes"
// is written "1 hour 30 minutes".
func Human(d time.Duration) string {
	if d <= 0 {
		return "0 minutes"
	}
	parts := []string{}
	add := func(n int64, unit string) {
		if n == 1 {
			parts = append(parts, "1 "+unit)
		} else if n > 1 {
			parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
		}
	}
	add(int64(d/(24*time.Hour)), "day")
	add(int64(d%(24*time.Hour)/time.Hour), "hour")
	add(int64(d%time.Hour/time.Minute), "minute")
	if len(parts) == 0 {
		add(int64(d/time.Second), "second")
	}
	return strings.Join(parts, " ")
}
