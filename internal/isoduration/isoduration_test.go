package isoduration

import (
	"testing"
	"time"
)

// docs/jit-access.md §3.4: ISO-8601 Duration (PT1H, P1D, P1DT6H, P90D; no weeks
// or months; days = 24 h).
func TestParse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"PT1H": time.Hour, "P1D": 24 * time.Hour, "P1DT6H": 30 * time.Hour, "P90D": 90 * 24 * time.Hour,
		"PT15M": 15 * time.Minute, "PT1H30M": 90 * time.Minute, "PT0.5S": 500 * time.Millisecond,
		"pt2h": 2 * time.Hour, "PT24H": 24 * time.Hour, "PT0S": 0, "P0D": 0, "PT90M": 90 * time.Minute,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1H", "P", "PT", "P1W", "P1M", "P1Y", "PT1D", "P1H", "PT1.5H", "P1DT", "PTH", "-PT1H", "PT1H1", "PT.5S", "PT5.S", "P1DT1H2H3", "PT1HT2M"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Hour: "PT1H", 24 * time.Hour: "P1D", 30 * time.Hour: "P1DT6H", 90 * time.Minute: "PT1H30M",
		0: "PT0S", 1500 * time.Millisecond: "PT1.5S", 61 * time.Second: "PT1M1S",
	} {
		if got := Format(d); got != want {
			t.Errorf("Format(%v) = %q, want %q", d, got, want)
		}
		back, err := Parse(want)
		if err != nil || back != d {
			t.Errorf("Parse(Format(%v)) = %v, %v", d, back, err)
		}
	}
}

func TestHuman(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Minute: "1 minute", 3 * 24 * time.Hour: "3 days", 30 * time.Hour: "1 day 6 hours",
		90 * time.Minute: "1 hour 30 minutes", 30 * time.Second: "30 seconds",
	} {
		if got := Human(d); got != want {
			t.Errorf("Human(%v) = %q, want %q", d, got, want)
		}
	}
}
