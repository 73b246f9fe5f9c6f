package token

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
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

// TestParseKeysRefuses: a set with a key this project cannot trust, or
// that names keys ambiguously, is refused whole; keys of other kinds are
// skipped, and a set left with none is refused too.
func TestParseKeysRefuses(t *testing.T) {
	t.Parallel()
	var set struct{ Keys []map[string]string }
	if err := json.Unmarshal(testJWKS(t), &set); err != nil {
		t.Fatal(err)
	}
	n := `"n":"` + set.Keys[0]["n"] + `"`
	tests := map[string]string{
		"weak key":    `{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`,
		"invalid EC":  `{"keys":[{"kty":"EC","kid":"k","crv":"P-256","x":"AA","y":"AA"}]}`,
		"HS256 alg":   `{"keys":[{"kty":"RSA","alg":"HS256","kid":"k",` + n + `,"e":"AQAB"}]}`,
		"enc use":     `{"keys":[{"kty":"RSA","use":"enc","kid":"k",` + n + `,"e":"AQAB"}]}`,
		"even e":      `{"keys":[{"kty":"RSA","kid":"k",` + n + `,"e":"AQAC"}]}`,
		"e over 2^31": `{"keys":[{"kty":"RSA","kid":"k",` + n + `,"e":"AQABAQAB"}]}`,
		"kid twice":   `{"keys":[{"kty":"RSA","kid":"k",` + n + `,"e":"AQAB"},{"kty":"RSA","kid":"k",` + n + `,"e":"AQAB"}]}`,
		"no kid":      `{"keys":[{"kty":"RSA",` + n + `,"e":"AQAB"}]}`,
		"not JSON":    `<html>`,
		"keys not []": `{"keys":{}}`,
		"dup member":  `{"keys":[],"keys":[]}`,
		"no keys":     `{"keys":[]}`,
		"PEM not PEM": `{"k":"hello"}`,
		"only P-384":  `{"keys":[{"kty":"EC","kid":"k","crv":"P-384","x":"AA","y":"AA"}]}`,
	}
	for name, jwks := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if keys, err := parseKeys([]byte(jwks), []jose.SignatureAlgorithm{jose.RS256}); err == nil {
				t.Errorf("parseKeys = %v, want an error", keys)
			}
			_, err := NewKeySet(KeySetConfig{KeysJSON: []byte(jwks), Algorithms: []jose.SignatureAlgorithm{jose.RS256}}, nil)
			if !errors.Is(err, ErrKeysInvalid) {
				t.Errorf("NewKeySet: %v, want %v", err, ErrKeysInvalid)
			}
		})
	}
}

// TestKeySetFailures: a 404 is ErrNoKeys and stays so while the next
// fetch waits (no second request); a set that does not parse is
// ErrKeysInvalid as well as ErrKeysUnusable; a server that is down is
// ErrKeysUnusable only.
func TestKeySetFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status, body, fetches := http.StatusNotFound, "", 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		w.WriteHeader(status)
		io.WriteString(w, body) //nolint:errcheck
	}))
	defer srv.Close()
	clock := testNow
	keys, err := NewKeySet(KeySetConfig{KeysURL: srv.URL, HTTPClient: srv.Client(), Algorithms: []jose.SignatureAlgorithm{jose.RS256}}, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name        string
		advance     time.Duration
		status      int
		body        string
		want, never error
		fetches     int
	}{
		{name: "404", status: http.StatusNotFound, want: ErrNoKeys, fetches: 1},
		{name: "404 remembered", advance: time.Second, want: ErrNoKeys, fetches: 1},
		{name: "garbage set", advance: time.Minute, status: http.StatusOK, body: `{"keys":1}`, want: ErrKeysInvalid, fetches: 2},
		{name: "garbage set is unusable too", advance: time.Second, want: ErrKeysUnusable, never: ErrNoKeys, fetches: 2},
		{name: "server error", advance: time.Minute, status: http.StatusInternalServerError, want: ErrKeysUnusable, never: ErrKeysInvalid, fetches: 3},
		{name: "keys back", advance: time.Minute, status: http.StatusOK, body: string(testJWKS(t)), fetches: 4},
	}
	for _, st := range steps {
		clock = clock.Add(st.advance)
		mu.Lock()
		if st.status != 0 {
			status, body = st.status, st.body
		}
		mu.Unlock()
		_, err := keys.Key(t.Context(), testKid)
		switch {
		case st.want == nil && err != nil:
			t.Errorf("%s: %v", st.name, err)
		case st.want != nil && !errors.Is(err, st.want):
			t.Errorf("%s: %v, want %v", st.name, err, st.want)
		case st.never != nil && errors.Is(err, st.never):
			t.Errorf("%s: %v, must not be %v", st.name, err, st.never)
		}
		mu.Lock()
		if fetches != st.fetches {
			t.Errorf("%s: %d fetches, want %d", st.name, fetches, st.fetches)
		}
		mu.Unlock()
	}
}

// TestRefetchFailure: a kid missing from a fresh cache whose refetch fails
// is ErrUnknownKey and the fetch's error both; the cached keys still work.
func TestRefetchFailure(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	up := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write(testJWKS(t)) //nolint:errcheck
	}))
	defer srv.Close()
	clock := testNow
	keys, err := NewKeySet(KeySetConfig{KeysURL: srv.URL, HTTPClient: srv.Client(), Algorithms: []jose.SignatureAlgorithm{jose.RS256}}, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Key(t.Context(), testKid); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	up = false
	mu.Unlock()
	clock = clock.Add(time.Minute)
	_, err = keys.Key(t.Context(), "new-key")
	for _, want := range []error{ErrUnknownKey, ErrKeysUnusable} {
		if !errors.Is(err, want) {
			t.Errorf("unknown kid, refetch failed: %v, want it to wrap %v", err, want)
		}
	}
	if _, err := keys.Key(t.Context(), testKid); err != nil {
		t.Errorf("cached key after a failed refetch: %v", err)
	}
}
