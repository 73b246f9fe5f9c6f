package emailaddr

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Variants is every look-alike of alice@example.com the attackers used,
// and more of the same kind; each must be refused, never repaired.
var variants = map[string]string{
	"trailing NBSP U+00A0":        "alice@example.com\u00a0",
	"leading NBSP U+00A0":         "\u00a0alice@example.com",
	"ideographic space U+3000":    "alice@example.com\u3000",
	"NEL U+0085":                  "alice@example.com\u0085",
	"Turkish dotted I U+0130":     "al\u0130ce@example.com",
	"zero-width space U+200B":     "alice\u200b@example.com",
	"fullwidth at U+FF20":         "alice\uff20example.com",
	"Kelvin sign U+212A":          "\u212aate@example.com",
	"ASCII space inside":          "alice @example.com",
	"ASCII trailing space":        "alice@example.com ",
	"tab":                         "alice@example.com\t",
	"newline":                     "alice@example.com\n",
	"NUL":                         "alice\x00@example.com",
	"DEL":                         "alice\x7f@example.com",
	"BOM U+FEFF":                  "\ufeffalice@example.com",
	"soft hyphen U+00AD":          "ali\u00adce@example.com",
	"invalid UTF-8":               "alice\xff@example.com",
	"Cyrillic a":                  "\u0430lice@example.com",
	"two @":                       "alice@evil@example.com",
	"no @":                        "alice.example.com",
	"empty local part":            "@example.com",
	"empty domain":                "alice@",
	"domain without dot":          "alice@localhost",
	"domain label with space":     "alice@exa mple.com",
	"domain with doubled dot":     "alice@example..com",
	"domain trailing dot":         "alice@example.com.",
	"domain label leading hyphen": "alice@-example.com",
	"domain underscore":           "alice@ex_ample.com",
	"IP literal":                  "alice@[127.0.0.1]",
	"numeric TLD":                 "alice@127.0.0.1",
	"display-name syntax":         "Alice <alice@example.com>",
	"local part leading dot":      ".alice@example.com",
	"local part doubled dot":      "al..ice@example.com",
	"quoted local part":           `"alice"@example.com`,
	"comma":                       "alice,bob@example.com",
	"colon":                       "user:alice@example.com",
	"empty":                       "",
	"too long":                    strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com",
}

func TestCanonicalRefusesVariants(t *testing.T) {
	t.Parallel()
	for name, s := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := Canonical(s)
			if err == nil {
				t.Fatalf("Canonical(%q) = %q, want a refusal", s, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if Valid(s) {
				t.Errorf("Valid(%q) = true", s)
			}
			if Equal(s, "alice@example.com") || Equal("alice@example.com", s) || Equal(s, s) {
				t.Errorf("Equal accepted %q", s)
			}
		})
	}
}

func TestCanonicalAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"Alice@Example.COM", "alice@example.com"},
		{"o'brien+jit@mail.example.co.uk", "o'brien+jit@mail.example.co.uk"},
		{"jit-tasks@my-proj-1.iam.gserviceaccount.com", "jit-tasks@my-proj-1.iam.gserviceaccount.com"},
		{"a.b_c%d-e@x1.io", "a.b_c%d-e@x1.io"},
	} {
		got, err := Canonical(tc.in)
		if err != nil {
			t.Errorf("Canonical(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Canonical(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// Equal and Key fold ASCII case and nothing else.
func TestEqualAndKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b  string
		equal bool
	}{
		{"alice@example.com", "ALICE@EXAMPLE.COM", true},
		{"Alice@Example.com", "aLiCe@eXaMpLe.CoM", true},
		{"alice@example.com", "bob@example.com", false},
		{"alice@example.com", "al\u0130ce@example.com", false},
		{"kate@example.com", "\u212aate@example.com", false},
		{"alice@example.com", "alice@example.com\u00a0", false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.equal {
			t.Errorf("Equal(%q, %q) = %t, want %t", tc.a, tc.b, got, tc.equal)
		}
		if got := Key(tc.a) == Key(tc.b); got != tc.equal {
			t.Errorf("Key(%q) == Key(%q) is %t, want %t", tc.a, tc.b, got, tc.equal)
		}
	}
	// strings.ToLower would fold these onto ASCII; Key must not.
	for _, s := range []string{"\u212aate@example.com", "AL\u0130CE@example.com"} {
		if k := Key(s); k == strings.ToLower(s) || !strings.ContainsFunc(k, func(r rune) bool { return r > 0x7f }) {
			t.Errorf("Key(%q) = %q: folded beyond ASCII", s, k)
		}
	}
}
