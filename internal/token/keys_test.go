package token

import (
	"testing"
	"time"
)

func TestMaxAge(t *testing.T) {
	t.Parallel()
	for cc, want := range map[string]time.Duration{
		"public, max-age=19302, must-revalidate, no-transform": 19302 * time.Second,
		"MAX-AGE=60":       time.Minute,
		"no-cache":         -1,
		"":                 -1,
		"max-age=-5":       -1,
		"max-age=abc":      -1,
		"max-age=99999999": maxKeyTTL,
	} {
		if got := maxAge(cc); got != want {
			t.Errorf("maxAge(%q) = %v, want %v", cc, got, want)
		}
	}
}
