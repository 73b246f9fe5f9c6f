package usertext

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClean(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		want    string
		wantErr string // substring; "" for success
	}{
		{name: "plain", in: "INC-123: disk full on db-1", want: "INC-123: disk full on db-1"},
		{name: "trimmed", in: "  fix prod \n", want: "fix prod"},
		{name: "lines and tabs", in: "line one\n\tline two", want: "line one\n\tline two"},
		{name: "CRLF from a form", in: "line one\r\nline two", want: "line one\nline two"},
		{name: "other scripts", in: "Störung 修复 исправить", want: "Störung 修复 исправить"},
		{name: "emoji with ZWJ", in: "on call 👩\u200d💻", want: "on call 👩\u200d💻"},
		{name: "ZWNJ in Persian", in: "می\u200cخواهم", want: "می\u200cخواهم"},
		{name: "one symbol", in: "🔥", want: "🔥"},

		{name: "empty", in: "", wantErr: "is blank"},
		{name: "spaces", in: " \t\n ", wantErr: "is blank"},
		{name: "no-break spaces", in: "\u00a0\u2007\u202f\u3000", wantErr: "is blank"},
		{name: "zero-width space", in: "\u200b\u200b", wantErr: "invisible character U+200B"},
		{name: "zero-width inside", in: "fix\u200bprod", wantErr: "invisible character U+200B"},
		{name: "word joiner", in: "\u2060", wantErr: "U+2060"},
		{name: "BOM", in: "\ufeffok", wantErr: "U+FEFF"},
		{name: "soft hyphen", in: "\u00ad", wantErr: "U+00AD"},
		{name: "tag characters", in: "ok\U000E0041\U000E0042", wantErr: "U+E0041"},
		{name: "hangul filler", in: "\u3164\u3164", wantErr: "is blank"},
		{name: "braille blank", in: "\u2800", wantErr: "is blank"},
		{name: "only ZWJ", in: "\u200d", wantErr: "is blank"},
		{name: "only combining marks", in: "\u0301\u0301", wantErr: "is blank"},
		{name: "RLO reorders", in: "approved by \u202eosic\u202c", wantErr: "bidirectional control U+202E"},
		{name: "RLI isolate", in: "a\u2067b", wantErr: "U+2067"},
		{name: "RLM", in: "a\u200fb", wantErr: "U+200F"},
		{name: "arabic letter mark", in: "a\u061cb", wantErr: "U+061C"},
		{name: "bell", in: "ding\a", wantErr: "control character U+0007"},
		{name: "escape sequence", in: "\x1b[2Jcleared", wantErr: "U+001B"},
		{name: "lone CR forges a line", in: "ok\rApproved by ciso", wantErr: "U+000D"},
		{name: "NEL", in: "ok\u0085next", wantErr: "U+0085"},
		{name: "line separator", in: "ok\u2028next", wantErr: "U+2028"},
		{name: "NUL", in: "ok\x00", wantErr: "U+0000"},
		{name: "invalid UTF-8", in: "ok\xff", wantErr: "UTF-8"},
		{name: "too long", in: strings.Repeat("é", 11), wantErr: "at most 10 characters, got 11"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Clean(tc.in, 10_000)
			if tc.name == "too long" {
				got, err = Clean(tc.in, 10)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Clean(%q) = %v", tc.in, err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Clean(%q) (-want +got):\n%s", tc.in, diff)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Clean(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			if got != "" {
				t.Errorf("Clean(%q) returned %q with its error", tc.in, got)
			}
		})
	}
}

func TestLengthCountsCharacters(t *testing.T) {
	t.Parallel()
	if _, err := Clean(strings.Repeat("界", 10), 10); err != nil {
		t.Errorf("10 three-byte characters refused at max 10: %v", err)
	}
	if _, err := Clean(" "+strings.Repeat("a", 10)+" ", 10); err != nil {
		t.Errorf("surrounding space counted: %v", err)
	}
	if _, err := Clean("", 10); !errors.Is(err, ErrBlank) {
		t.Errorf("empty text: %v, want ErrBlank", err)
	}
}
