package envelope

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
)

// jwkServer serves per-email JWKS at /{email} the way Google serves
// https://www.googleapis.com/service_accounts/v1/metadata/jwk/{EMAIL}
// (IAM Credentials signJwt reference, keyId field), 404 for others, and
// counts fetches.
type jwkServer struct {
	mu      sync.Mutex
	sets    map[string][]byte
	fetches []string
}

func (s *jwkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	email := r.URL.Path[1:]
	s.fetches = append(s.fetches, email)
	jwks, ok := s.sets[email]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(jwks) //nolint:errcheck
}

func (s *jwkServer) set(email string, jwks []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets[email] = jwks
}

func (s *jwkServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.fetches)
}

// TestGoogleKeys: keys are fetched per service account, cached, refetched
// once when an unknown kid appears (key rotation), and an account without
// keys is an unknown signer, not a transient error.
func TestGoogleKeys(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	rotated, err := localoidc.Open("")
	if err != nil {
		t.Fatal(err)
	}
	srv := &jwkServer{sets: map[string][]byte{caller: trusted.JWKS()}}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	var mu sync.Mutex
	clock := now
	tick := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	gk := &GoogleKeys{Client: hs.Client(), BaseURL: hs.URL + "/", Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}
	v, err := New(Config{Keys: gk, Trusted: TrustSet(caller, nokeys), Audience: audience, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(s *localoidc.Signer, iss, jti string) error {
		c := validClaims(body)
		c["iss"], c["sub"], c["jti"] = iss, iss, jti
		_, err := v.Verify(t.Context(), []byte(body), map[string]string{Attribute: sign(t, s, c)})
		return err
	}

	for _, jti := range []string{"a", "b"} {
		if err := verify(trusted, caller, jti); err != nil {
			t.Fatalf("Verify %s: %v", jti, err)
		}
	}
	if n := srv.count(); n != 1 {
		t.Errorf("%d fetches for two envelopes, want 1 (cached)", n)
	}

	// The caller rotates to a new key; the cached set does not have it.
	srv.set(caller, rotated.JWKS())
	tick(time.Minute)
	if err := verify(rotated, caller, "c"); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := srv.count(); n != 2 {
		t.Errorf("%d fetches after rotation, want 2", n)
	}
	// Garbage kids do not make it refetch within MinRefresh.
	_, other := keys(t)
	if err := verify(other, caller, "d"); !isReason(err, ReasonUnknownSigner) {
		t.Errorf("unknown kid: %v", err)
	}
	if n := srv.count(); n != 2 {
		t.Errorf("%d fetches after an unknown kid just after a refresh, want 2", n)
	}

	// 404 for an account: unknown signer (refused), not retried.
	if err := verify(trusted, nokeys, "e"); !isReason(err, ReasonUnknownSigner) {
		t.Errorf("account without keys: %v", err)
	}

	// A server error is transient.
	hs.Close()
	tick(2 * time.Hour)
	if err := verify(rotated, caller, "f"); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("key server down: %v, want a transient error", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if diff := cmp.Diff([]string{caller, caller, nokeys}, srv.fetches); diff != "" {
		t.Errorf("fetches (-want +got):\n%s", diff)
	}
}

// TestRefetchFailureIsTransient: a kid the cached keys lack may be a key
// the caller just created; if Google cannot be reached to fetch it, the
// envelope is not refused but left for Pub/Sub to redeliver.
func TestRefetchFailureIsTransient(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	rotated, err := localoidc.Open("")
	if err != nil {
		t.Fatal(err)
	}
	srv := &jwkServer{sets: map[string][]byte{caller: trusted.JWKS()}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	clock := now
	gk := &GoogleKeys{Client: hs.Client(), BaseURL: hs.URL + "/", Now: func() time.Time { return clock }}
	v, err := New(Config{Keys: gk, Trusted: TrustSet(caller), Audience: audience, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(s *localoidc.Signer) error {
		_, err := v.Verify(t.Context(), []byte(body), map[string]string{Attribute: sign(t, s, validClaims(body))})
		return err
	}
	if err := verify(trusted); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	hs.Close()
	clock = clock.Add(time.Minute)
	if err := verify(rotated); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("new kid, key server down: %v, want a transient error", err)
	}
	if err := verify(trusted); err != nil {
		t.Errorf("cached key, key server down: %v", err)
	}
}

func isReason(err error, want Reason) bool {
	var r *Refused
	return errors.As(err, &r) && r.Reason == want
}

// TestParseJWKS: keys that cannot verify an RS256 envelope are not used,
// and a kid published twice is refused rather than guessed. Each set
// holds the trusted signer's modulus under its kid, so a key that were
// used would verify the envelope.
func TestParseJWKS(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	good := trusted.JWKS()
	tok := sign(t, trusted, validClaims(body))
	attrs := map[string]string{Attribute: tok}
	verify := func(jwks []byte) error {
		v, err := New(Config{Keys: StaticKeys{caller: jwks}, Trusted: TrustSet(caller), Audience: audience, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(t.Context(), []byte(body), attrs)
		return err
	}
	if err := verify(good); err != nil {
		t.Fatalf("the published key: %v", err)
	}
	kid := `"kid":"` + kidOf(t, tok) + `"`
	n := `"n":"` + jwkField(t, good, "n") + `"`
	tests := map[string]string{
		"weak key":  `{"keys":[{"kty":"RSA",` + kid + `,"n":"AQAB","e":"AQAB"}]}`,
		"EC key":    `{"keys":[{"kty":"EC",` + kid + `,"crv":"P-256","x":"AA","y":"AA"}]}`,
		"HS256 alg": `{"keys":[{"kty":"RSA","alg":"HS256",` + kid + `,` + n + `,"e":"AQAB"}]}`,
		"enc use":   `{"keys":[{"kty":"RSA","use":"enc",` + kid + `,` + n + `,"e":"AQAB"}]}`,
		"even e":    `{"keys":[{"kty":"RSA",` + kid + `,` + n + `,"e":"AQAC"}]}`,
		"kid twice": `{"keys":[{"kty":"RSA",` + kid + `,` + n + `,"e":"AQAB"},{"kty":"RSA",` + kid + `,` + n + `,"e":"AQAB"}]}`,
		"no kid":    `{"keys":[{"kty":"RSA",` + n + `,"e":"AQAB"}]}`,
		"huge e":    `{"keys":[{"kty":"RSA",` + kid + `,` + n + `,"e":"AQABAQAB"}]}`,
		"HTML":      `<html>`,
	}
	for name, jwks := range tests {
		if err := verify([]byte(jwks)); !isReason(err, ReasonUnknownSigner) {
			t.Errorf("%s: Verify = %v, want %s", name, err, ReasonUnknownSigner)
		}
	}
}

func jwkField(t *testing.T, jwks []byte, name string) string {
	t.Helper()
	var set struct{ Keys []map[string]string }
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", jwks, err)
	}
	return set.Keys[0][name]
}
