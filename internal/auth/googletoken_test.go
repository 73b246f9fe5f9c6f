package auth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
)

const (
	revokeURL = "https://revoke-abc-ew.a.run.app/tasks"
	tasksSA   = "jit-tasks@proj.iam.gserviceaccount.com"
	googleKid = "g-key-1"
)

func newGoogleFixture(t *testing.T) *Google {
	t.Helper()
	g, err := NewGoogle(GoogleConfig{
		KeysJSON: rsaJWKS(t, map[string]*rsa.PublicKey{googleKid: &testRSAKey().PublicKey}),
		Now:      fixedNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// googleClaimsFor are the claims of a Cloud Tasks / Pub/Sub push OIDC token
// (docs/google-cloud.md §7, Pub/Sub push: aud, azp, email, email_verified, sub, exp,
// iat, iss https://accounts.google.com).
func googleClaimsFor(aud string) map[string]any {
	return map[string]any{
		"iss": "https://accounts.google.com", "aud": aud, "azp": "1122334455",
		"sub": "1122334455", "email": tasksSA, "email_verified": true,
		"iat": testNow.Unix() - 5, "exp": testNow.Unix() + 3595,
	}
}

func googleToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	return rsToken(t, testRSAKey(), mustJSON(t, map[string]string{"alg": "RS256", "kid": googleKid, "typ": "JWT"}), mustJSON(t, claims))
}

func TestGoogleVerifyAccepts(t *testing.T) {
	t.Parallel()
	g := newGoogleFixture(t)
	for _, tc := range []struct {
		name   string
		claims map[string]any
	}{
		{"issuer https://accounts.google.com", googleClaimsFor(revokeURL)},
		// docs/google-cloud.md §7 (receivers): iss ∈ {https://accounts.google.com, accounts.google.com}.
		{"issuer accounts.google.com", with(googleClaimsFor(revokeURL), "iss", "accounts.google.com")},
		{"audience in an array", with(googleClaimsFor(revokeURL), "aud", []string{"other", revokeURL})},
	} {
		got, err := g.Verify(googleToken(t, tc.claims), revokeURL)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		want := &Claims{
			Issuer: tc.claims["iss"].(string), Audience: revokeURL, AuthorizedBy: "1122334455", Subject: "1122334455",
			Email: tasksSA, EmailVerified: true, IssuedAt: testNow.Unix() - 5, Expires: testNow.Unix() + 3595,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: claims (-want +got):\n%s", tc.name, diff)
		}
	}
}

// Each named attack is refused. docs/google-cloud.md §7 (idtoken): Google ID tokens
// are RS256; idtoken checks aud (skipped when empty!), exp without skew and
// the signature, not iss or iat — we check all of them.
func TestGoogleVerifyRefusesAttacks(t *testing.T) {
	t.Parallel()
	g := newGoogleFixture(t)
	good := googleClaimsFor(revokeURL)
	rs := func(kv ...string) []byte {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return mustJSON(t, m)
	}
	valid := googleToken(t, good)
	parts := strings.Split(valid, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)-1] ^= 1
	pubDER := x509.MarshalPKCS1PublicKey(&testRSAKey().PublicKey)
	for _, tc := range []struct {
		name, token, aud string
		want             error
	}{
		{"forged signature", parts[0] + "." + parts[1] + "." + b64u(sig), revokeURL, ErrSignature},
		{"wrong key with the same kid", rsToken(t, otherRSAKey(), rs("alg", "RS256", "kid", googleKid), mustJSON(t, good)), revokeURL, ErrSignature},
		{"alg none", b64u(rs("alg", "none", "kid", googleKid)) + "." + parts[1] + "." + parts[2], revokeURL, ErrAlgorithm},
		{"alg HS256 keyed with the public key", hsToken(pubDER, rs("alg", "HS256", "kid", googleKid), mustJSON(t, good)), revokeURL, ErrAlgorithm},
		{"alg ES256", esToken(t, newECKey(t), rs("alg", "ES256", "kid", googleKid), mustJSON(t, good)), revokeURL, ErrAlgorithm},
		{"alg PS256", rsToken(t, testRSAKey(), rs("alg", "PS256", "kid", googleKid), mustJSON(t, good)), revokeURL, ErrAlgorithm},
		{"unknown kid", rsToken(t, testRSAKey(), rs("alg", "RS256", "kid", "nope"), mustJSON(t, good)), revokeURL, ErrUnknownKey},
		{"IAP issuer", googleToken(t, with(good, "iss", IAPIssuer)), revokeURL, ErrIssuer},
		{"issuer missing", googleToken(t, with(good, "iss", nil)), revokeURL, ErrIssuer},
		{"wrong audience", googleToken(t, with(good, "aud", "https://intake.example/")), revokeURL, ErrAudience},
		{"empty expected audience", valid, "", ErrAudience},
		{"empty token audience", googleToken(t, with(good, "aud", "")), revokeURL, ErrAudience},
		{"expired", googleToken(t, with(good, "exp", testNow.Unix()-60, "iat", testNow.Unix()-3660)), revokeURL, ErrExpired},
		{"issued in the future", googleToken(t, with(good, "iat", testNow.Unix()+120)), revokeURL, ErrNotYetValid},
		{"not yet valid (nbf)", googleToken(t, with(good, "nbf", testNow.Unix()+120)), revokeURL, ErrNotYetValid},
		{"sub missing", googleToken(t, with(good, "sub", nil)), revokeURL, ErrClaims},
		{"email_verified as a string", googleToken(t, with(good, "email_verified", "true")), revokeURL, ErrMalformed},
		{"payload not an object", rsToken(t, testRSAKey(), rs("alg", "RS256", "kid", googleKid), []byte(`[1,2]`)), revokeURL, ErrMalformed},
		{"malformed base64", parts[0] + "." + parts[1] + "!." + parts[2], revokeURL, ErrMalformed},
		{"extra segment", valid + ".x", revokeURL, ErrMalformed},
		{"oversized", googleToken(t, with(good, "pad", strings.Repeat("y", MaxTokenBytes))), revokeURL, ErrMalformed},
	} {
		got, err := g.Verify(tc.token, tc.aud)
		if err == nil {
			t.Errorf("%s: accepted as %+v", tc.name, got)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := g.Verify(valid, revokeURL); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

// The embedded pipeline's "production-auth" mode: this verifier checks
// tokens of the local signer (localoidc), whose JWKS has Google's format,
// given as bytes, as a file or served over HTTP.
func TestGoogleVerifiesLocalSignerTokens(t *testing.T) {
	t.Parallel()
	signer, err := localoidc.Open("")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.IDToken(tasksSA, revokeURL)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "certs.json")
	if err := os.WriteFile(file, signer.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(signer)
	t.Cleanup(hs.Close)
	for name, cfg := range map[string]GoogleConfig{
		"KeysJSON": {KeysJSON: signer.JWKS()},
		"KeysFile": {KeysFile: file},
		"KeysURL":  {KeysURL: hs.URL, HTTPClient: hs.Client()},
	} {
		g, err := NewGoogle(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, err := g.Verify(tok, revokeURL)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.Email != tasksSA || !c.EmailVerified || c.Issuer != localoidc.Issuer {
			t.Errorf("%s: claims %+v", name, c)
		}
		if _, err := g.Verify(tok, "https://other/"); !errors.Is(err, ErrAudience) {
			t.Errorf("%s: other audience: %v", name, err)
		}
	}
}

func TestGoogleConfig(t *testing.T) {
	t.Parallel()
	if err := (GoogleConfig{}).Validate(); err != nil {
		t.Errorf("defaults (Google's certs URL): %v", err)
	}
	if got := (GoogleConfig{}).keySet().KeysURL; got != GoogleCertsURL {
		t.Errorf("default KeysURL = %q", got)
	}
	err := GoogleConfig{KeysURL: "https://x/", KeysFile: "/f", Skew: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "exactly one") || !strings.Contains(err.Error(), "Skew") {
		t.Errorf("two sources and negative skew: %v", err)
	}
	if _, err := NewGoogle(GoogleConfig{KeysFile: filepath.Join(t.TempDir(), "missing.json")}); err == nil {
		t.Error("missing key file accepted")
	}
	if _, err := NewGoogle(GoogleConfig{KeysJSON: []byte(`{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`)}); err == nil {
		t.Error("tiny RSA modulus accepted")
	}
}

// Keys fetch failing: refuse, do not crash.
func TestGoogleKeysUnavailable(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(hs.Close)
	g, err := NewGoogle(GoogleConfig{KeysURL: hs.URL, HTTPClient: hs.Client(), Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.VerifyContext(t.Context(), googleToken(t, googleClaimsFor(revokeURL)), revokeURL); !errors.Is(err, ErrKeysUnusable) {
		t.Errorf("err = %v, want ErrKeysUnusable", err)
	}
}
