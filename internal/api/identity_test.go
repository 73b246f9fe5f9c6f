package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/auth"
)

// identityVariants differ from alice@example.com only by characters that
// Unicode trimming or folding would remove or map.
var identityVariants = []struct{ name, email string }{
	{"no-break space U+00A0", "alice@example.com\u00a0"},
	{"ideographic space U+3000", "\u3000alice@example.com"},
	{"next line U+0085", "alice@example.com\u0085"},
	{"dotted capital I U+0130", "al\u0130ce@example.com"},
	{"zero-width space U+200B", "alice\u200b@example.com"},
	{"fullwidth at U+FF20", "alice\uff20example.com"},
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	return body.Error.Code
}

// Every variant is refused with 401 by the API itself, whichever
// authenticator named it: the debug header of local mode, or an
// authenticator that (wrongly) vouched for it.
func TestAPIRefusesIdentityVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range identityVariants {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for name, h := range map[string]*Handler{
				"local header":  newHandler(nil, nil, LocalAuthenticator{}, allRoutes, nil),
				"identifier":    newHandler(nil, nil, fakeIAP{who: &auth.Identity{Email: tc.email, HostedDomain: "example.com"}}, allRoutes, nil),
				"authenticator": newHandler(nil, nil, callerOnly(tc.email), allRoutes, nil),
			} {
				r := httptest.NewRequest(http.MethodGet, "/v1/grants", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set(DebugPrincipalHeader, "user:"+tc.email)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != http.StatusUnauthorized || errorCode(t, rec) != "UNAUTHENTICATED" {
					t.Errorf("%s: status %d %s, want 401 UNAUTHENTICATED", name, rec.Code, rec.Body)
				}
			}
		})
	}
}

type callerOnly string

func (c callerOnly) Caller(*http.Request) (string, error) { return string(c), nil }

// The local authenticator takes the header as it is: canonical addresses
// in any ASCII case pass, lower-cased; nothing is trimmed into one.
func TestLocalAuthenticator(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header, remote, want string
	}{
		{"user:alice@example.com", "127.0.0.1:1", "alice@example.com"},
		{"user:Alice@Example.COM", "[::1]:1", "alice@example.com"},
		{" user:alice@example.com", "127.0.0.1:1", ""},
		{"user:alice@example.com ", "127.0.0.1:1", ""},
		{"user:alice@example.com\u00a0", "127.0.0.1:1", ""},
		{"alice@example.com", "127.0.0.1:1", ""},
		{"user:alice@example.com", "192.0.2.1:1", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set(DebugPrincipalHeader, tc.header)
		got, err := LocalAuthenticator{}.Caller(r)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("Caller(%q from %s) = %q, %v; want %q", tc.header, tc.remote, got, err, tc.want)
		}
	}
}

// The rate limit keys callers by their canonical address: ASCII case
// spellings of one address share one bucket, and look-alikes never get a
// bucket of their own (they are refused before the limiter). Requests
// carry a malformed body, so an admitted one ends 400 at decoding and a
// limited one 429.
func TestRateLimitSharesOneBucketPerAddress(t *testing.T) {
	t.Parallel()
	spellings := []string{"alice@example.com", "Alice@Example.com", "ALICE@EXAMPLE.COM", "aLiCe@eXaMpLe.CoM"}
	for _, v := range identityVariants {
		spellings = append(spellings, v.email)
	}
	var who callerFunc = func(r *http.Request) string { return r.Header.Get("X-Test-Who") }
	h := newHandler(nil, nil, who, allRoutes, nil).WithRateLimit(RateLimit{Every: time.Hour, Burst: 10})
	got := map[int]int{}
	for i := range 30 {
		r := httptest.NewRequest(http.MethodPost, "/v1/grants", strings.NewReader(`{`))
		r.Header.Set("X-Requested-With", "test")
		r.Header.Set("X-Test-Who", spellings[i%len(spellings)])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		got[rec.Code]++
	}
	// 30 requests over 10 spellings: 4 case spellings (12 requests) share
	// one bucket of 10, the 6 look-alikes (18 requests) are refused.
	want := map[int]int{http.StatusBadRequest: 10, http.StatusTooManyRequests: 2, http.StatusUnauthorized: 18}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

type callerFunc func(*http.Request) string

func (f callerFunc) Caller(r *http.Request) (string, error) { return f(r), nil }
