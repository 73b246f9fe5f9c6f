package lazyregexp

import (
	"regexp"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A lazy expression answers as the compiled one does, from many
// goroutines at once (go test -race).
func TestMatchesAsCompiled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, expr, in string
	}{
		{"bounded repetition, match", `^[a-z][a-z0-9-]{4,28}[a-z0-9]$`, "demo-project"},
		{"bounded repetition, no match", `^[a-z][a-z0-9-]{4,28}[a-z0-9]$`, "Demo"},
		{"submatches", `line (\d+)`, "yaml: line 12: bad"},
		{"no submatch", `line (\d+)`, "yaml: bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lazy, want := New(tc.expr), regexp.MustCompile(tc.expr)
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					if got := lazy.MatchString(tc.in); got != want.MatchString(tc.in) {
						t.Errorf("MatchString(%q) = %v", tc.in, got)
					}
					if diff := cmp.Diff(want.FindStringSubmatch(tc.in), lazy.FindStringSubmatch(tc.in)); diff != "" {
						t.Errorf("FindStringSubmatch(%q) (-want, +got):\n%s", tc.in, diff)
					}
				})
			}
			wg.Wait()
			if lazy.String() != tc.expr {
				t.Errorf("String() = %q", lazy.String())
			}
		})
	}
}

// In a test binary a bad pattern panics where it is declared, so the
// tests of the package declaring it fail before it ships; elsewhere it
// would panic on first use.
func TestBadPatternPanicsInTests(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("New accepted an unparsable expression in a test binary")
		}
	}()
	New(`(`)
}
