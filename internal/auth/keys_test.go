package auth

import (
	"crypto/ecdsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// jwksServer serves a replaceable key set and counts fetches.
type jwksServer struct {
	mu      sync.Mutex
	body    []byte
	status  int
	cc      string
	fetches int
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	if s.cc != "" {
		w.Header().Set("Cache-Control", s.cc)
	}
	if s.status != 0 {
		w.WriteHeader(s.status)
	}
	w.Write(s.body) //nolint:errcheck // test server
}

func (s *jwksServer) set(body []byte, status int, cc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status, s.cc = body, status, cc
}

func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Keys from a URL are cached for Cache-Control max-age, as Google's own
// verifier does (docs/google-cloud.md §7, idtoken: "Certificates are cached according
// to Cache-Control: max-age"); an unknown kid (a rotated-in key) triggers a
// refetch, at most once per MinFetchInterval.
func TestKeyURLCachingAndRotation(t *testing.T) {
	t.Parallel()
	clk := &clock{t: testNow}
	k1, k2 := newECKey(t), newECKey(t)
	srv := &jwksServer{}
	srv.set(ecJWKS(t, map[string]*ecdsa.PublicKey{"k1": &k1.PublicKey}), 0, "public, max-age=600, must-revalidate")
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	v, err := NewIAP(IAPConfig{Audiences: []string{backendAud}, KeysURL: hs.URL, HTTPClient: hs.Client(), Now: clk.now, MinFetchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tokenBy := func(key *ecdsa.PrivateKey, kid string) string {
		claims := with(iapClaimsFor(backendAud), "iat", clk.now().Unix(), "exp", clk.now().Unix()+600)
		return esToken(t, key, mustJSON(t, map[string]string{"alg": "ES256", "kid": kid}), mustJSON(t, claims))
	}
	step := func(name string, tok string, want error, wantFetches int) {
		t.Helper()
		_, err := v.Verify(t.Context(), tok)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", name, err, want)
		}
		if got := srv.count(); got != wantFetches {
			t.Errorf("%s: %d fetches, want %d", name, got, wantFetches)
		}
	}
	step("first use fetches", tokenBy(k1, "k1"), nil, 1)
	clk.advance(5 * time.Minute)
	step("within max-age: cached", tokenBy(k1, "k1"), nil, 1)

	// Google rotates: k2 appears. A k2 token before the rate limit allows
	// another fetch is refused as unknown, then accepted after.
	srv.set(ecJWKS(t, map[string]*ecdsa.PublicKey{"k1": &k1.PublicKey, "k2": &k2.PublicKey}), 0, "max-age=600")
	step("unknown kid refetches", tokenBy(k2, "k2"), nil, 2)
	step("made-up kid within the rate limit: no fetch", tokenBy(k2, "made-up"), ErrUnknownKey, 2)
	step("made-up kid again: still no fetch", tokenBy(k2, "made-up-2"), ErrUnknownKey, 2)
	clk.advance(2 * time.Minute)
	step("made-up kid after the interval: one fetch", tokenBy(k2, "made-up-3"), ErrUnknownKey, 3)

	// After max-age the set is fetched again; k1 was removed.
	srv.set(ecJWKS(t, map[string]*ecdsa.PublicKey{"k2": &k2.PublicKey}), 0, "max-age=600")
	clk.advance(11 * time.Minute)
	step("expired cache refetches; removed key refused", tokenBy(k1, "k1"), ErrUnknownKey, 4)
	step("new set in use", tokenBy(k2, "k2"), nil, 4)
}

// A failing key endpoint refuses tokens (and does not crash), is retried at
// most once per MinFetchInterval, and recovers when the endpoint does.
func TestKeyURLFailures(t *testing.T) {
	t.Parallel()
	key := newECKey(t)
	good := ecJWKS(t, map[string]*ecdsa.PublicKey{testKid: &key.PublicKey})
	tok := esToken(t, key, mustJSON(t, map[string]string{"alg": "ES256", "kid": testKid}), mustJSON(t, iapClaimsFor(backendAud)))
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"HTTP 500", good, http.StatusInternalServerError},
		{"HTTP 404", nil, http.StatusNotFound},
		{"not JSON", []byte("<html>oops</html>"), 0},
		{"empty key set", []byte(`{"keys":[]}`), 0},
		{"truncated", good[:len(good)/2], 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: testNow}
			srv := &jwksServer{}
			srv.set(tc.body, tc.status, "")
			hs := httptest.NewServer(srv)
			t.Cleanup(hs.Close)
			v, err := NewIAP(IAPConfig{Audiences: []string{backendAud}, KeysURL: hs.URL, HTTPClient: hs.Client(), Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrKeysUnusable) {
					t.Errorf("err = %v, want ErrKeysUnusable", err)
				}
			}
			if n := srv.count(); n != 1 {
				t.Errorf("%d fetches within the rate limit, want 1", n)
			}
			srv.set(good, 0, "")
			clk.advance(30 * time.Second) // the default MinFetchInterval
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Errorf("after recovery: %v", err)
			}
		})
	}

	// Nothing listening at all.
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	v, err := NewIAP(IAPConfig{Audiences: []string{backendAud}, KeysURL: url, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrKeysUnusable) {
		t.Errorf("connection refused: err = %v, want ErrKeysUnusable", err)
	}
}
