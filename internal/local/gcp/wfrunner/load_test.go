package wfrunner

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoadReportsEveryProblem checks that Load reports all problems of a
// definition at once, each with its step and line (docs/architecture.md §7: anything
// outside the subset fails at load, loudly).
func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	src := `main:
  steps:
    - a:
        call: nope.nothing
    - b:
        next: missing
    - c:
        parallel: {}
`
	_, err := Load("multi", []byte(src))
	if err == nil {
		t.Fatal("Load accepted a bad definition")
	}
	for _, want := range []string{
		`step "a" (line 4): call to "nope.nothing"`,
		`step "b" (line 6): next: unknown step "missing"`,
		`step "c" (line 7): "parallel" is not supported`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestStoredValueRoundTrip checks that journaled values replay with their
// Workflows types: a double that looks like an integer stays a double, bytes
// stay bytes, integers stay int64 (Workflows data types, docs/google-cloud.md §4
// Expression helpers: bytes from text.encode/base64.decode).
func TestStoredValueRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    any
	}{
		{"integer", int64(3)},
		{"big_integer", int64(9007199254740993)},
		{"integral_double", 3.0},
		{"double", 1.5},
		{"bytes", []byte("raw\x00bytes")},
		{"nested", map[string]any{"l": []any{int64(1), 2.0, "s", nil, true, []byte("b")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(storedValue{tc.v})
			if err != nil {
				t.Fatal(err)
			}
			var got storedValue
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.v, got.v); diff != "" {
				t.Errorf("round trip of %s (-want +got):\n%s", b, diff)
			}
		})
	}
}
