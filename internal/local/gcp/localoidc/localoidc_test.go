package localoidc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/auth"
)

// verifier is the production verifier of Google ID tokens, with the
// signer's keys; now nil means time.Now.
func verifier(t *testing.T, s *Signer, now func() time.Time) *auth.Google {
	t.Helper()
	v, err := auth.NewGoogle(auth.GoogleConfig{KeysJSON: s.JWKS(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTokenRoundTripAndRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.IDToken("revoker@p.iam.gserviceaccount.com", "https://revoke.local")
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifier(t, s, nil).Verify(tok, "https://revoke.local")
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Email != "revoker@p.iam.gserviceaccount.com" || !c.EmailVerified || c.Issuer != Issuer {
		t.Errorf("claims = %+v", c)
	}

	// The key persists: a signer reopened from the same directory verifies
	// tokens minted before the "restart".
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier(t, again, nil).Verify(tok, "https://revoke.local"); err != nil {
		t.Errorf("reopened signer: %v", err)
	}

	other, _ := Open("")
	parts := strings.Split(tok, ".")
	for name, bad := range map[string]string{
		"wrong audience": tok,
		"tampered":       parts[0] + "." + parts[1] + "x." + parts[2],
		"truncated":      parts[0] + "." + parts[1],
	} {
		aud := "https://revoke.local"
		if name == "wrong audience" {
			aud = "https://other.local"
		}
		if _, err := verifier(t, s, nil).Verify(bad, aud); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if _, err := verifier(t, other, nil).Verify(tok, "https://revoke.local"); err == nil {
		t.Error("token verified with another key")
	}

	later := func() time.Time { return time.Now().Add(2 * TokenLifetime) }
	if _, err := verifier(t, s, later).Verify(tok, "https://revoke.local"); err == nil {
		t.Error("expired token verified")
	}

	var jwks struct{ Keys []map[string]string }
	if err := json.Unmarshal(s.JWKS(), &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != s.kid {
		t.Errorf("JWKS = %s (%v)", s.JWKS(), err)
	}
}

// TestAccessTokens checks that access tokens are opaque (not JWTs), name
// their service account, expire after TokenLifetime, and that an ID token
// is not an access token.
func TestAccessTokens(t *testing.T) {
	t.Parallel()
	s, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	tok, err := s.AccessToken("grant@p.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier(t, s, func() time.Time { return now }).Verify(tok, "https://x"); !strings.HasPrefix(tok, AccessTokenPrefix) || err == nil {
		t.Errorf("token %q is not an opaque access token (Verify: %v)", tok, err)
	}
	if email, ok := s.LookupAccessToken(tok); !ok || email != "grant@p.iam.gserviceaccount.com" {
		t.Errorf("LookupAccessToken = %q, %v", email, ok)
	}
	other, _ := s.AccessToken("grant@p.iam.gserviceaccount.com")
	if other == tok {
		t.Error("two access tokens are equal")
	}
	id, _ := s.IDToken("grant@p.iam.gserviceaccount.com", "https://x")
	for _, bad := range []string{id, "", AccessTokenPrefix, tok + "x"} {
		if _, ok := s.LookupAccessToken(bad); ok {
			t.Errorf("LookupAccessToken(%.20q) accepted", bad)
		}
	}
	now = now.Add(TokenLifetime)
	if _, ok := s.LookupAccessToken(tok); ok {
		t.Error("an expired access token was accepted")
	}
	if _, err := s.AccessToken(""); err == nil {
		t.Error("AccessToken accepted an empty email")
	}
}

// An ID token is minted once per service account and audience and reused
// until five minutes before it expires (an RSA signature per push, task
// and callback was a tenth of the pipeline's CPU); a different audience
// or account gets its own, and a reused token still verifies.
func TestIDTokensAreReusedUntilNearExpiry(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	mint := func(email, aud string) string {
		t.Helper()
		tok, err := s.IDToken(email, aud)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := mint("a@p.iam.gserviceaccount.com", "https://x")
	now = now.Add(TokenLifetime - idReuseMargin - time.Second)
	if got := mint("a@p.iam.gserviceaccount.com", "https://x"); got != first {
		t.Error("token re-minted before its reuse margin")
	}
	if _, err := verifier(t, s, func() time.Time { return now }).Verify(first, "https://x"); err != nil {
		t.Errorf("reused token does not verify: %v", err)
	}
	if mint("a@p.iam.gserviceaccount.com", "https://y") == first || mint("b@p.iam.gserviceaccount.com", "https://x") == first {
		t.Error("another audience or account got the same token")
	}
	now = now.Add(time.Second)
	if got := mint("a@p.iam.gserviceaccount.com", "https://x"); got == first {
		t.Error("token reused within five minutes of its expiry")
	}
}
