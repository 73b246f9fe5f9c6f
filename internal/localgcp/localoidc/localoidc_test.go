package localoidc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

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
	c, err := s.Verify(tok, "https://revoke.local")
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
	if _, err := again.Verify(tok, "https://revoke.local"); err != nil {
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
		if _, err := s.Verify(bad, aud); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if _, err := other.Verify(tok, "https://revoke.local"); err == nil {
		t.Error("token verified with another key")
	}

	s.now = func() time.Time { return time.Now().Add(2 * TokenLifetime) }
	if _, err := s.Verify(tok, "https://revoke.local"); err == nil {
		t.Error("expired token verified")
	}

	var jwks struct{ Keys []map[string]string }
	if err := json.Unmarshal(s.JWKS(), &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != s.kid {
		t.Errorf("JWKS = %s (%v)", s.JWKS(), err)
	}
}
