package auth

// Fuzz targets for the token parsers. Run each for 60 s with:
//
//	go test -run='^$' -fuzz='^FuzzIAPVerify$' -fuzztime=60s ./internal/auth/
//	go test -run='^$' -fuzz='^FuzzGoogleVerify$' -fuzztime=60s ./internal/auth/
//
// Without -fuzz, the seeds run as ordinary tests. Properties: no panic, and
// nothing accepted that the test key did not sign with the right claims.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

func FuzzIAPVerify(f *testing.F) {
	key := newECKey(f)
	v, err := NewIAP(IAPConfig{
		Audiences: []string{backendAud, cloudRunAud},
		KeysJSON:  ecJWKS(f, map[string]*ecdsa.PublicKey{testKid: &key.PublicKey}),
		Now:       fixedNow,
	})
	if err != nil {
		f.Fatal(err)
	}
	hdr := mustJSON(f, map[string]string{"alg": "ES256", "kid": testKid})
	valid := esToken(f, key, hdr, mustJSON(f, iapClaimsFor(backendAud)))
	for _, s := range []string{
		valid,
		esToken(f, key, hdr, mustJSON(f, iapClaimsFor(cloudRunAud))),
		esToken(f, key, hdr, []byte(`{"a":{"b":[{"c":1},[2,{"d":3}]]},"e":"f"}`)),
		esToken(f, key, hdr, []byte(`[]`)),
		hsToken([]byte("k"), []byte(`{"alg":"HS256","kid":"iap-key-1"}`), mustJSON(f, iapClaimsFor(backendAud))),
		b64u([]byte(`{"alg":"none"}`)) + "." + b64u([]byte(`{}`)) + ".",
		"..", "a.b.c.d", "", strings.Repeat("A", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(t.Context(), token)
		if err != nil {
			if id != nil {
				t.Fatal("identity returned with an error")
			}
			return
		}
		// Accepted: it must be ES256 over header.payload by the test key,
		// with IAP's issuer and one of our audiences.
		parts := strings.Split(token, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if len(sig) != 64 || !ecdsa.Verify(&key.PublicKey, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatalf("accepted a token the test key did not sign")
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c struct{ Iss, Aud string }
		if json.Unmarshal(payload, &c) != nil || c.Iss != IAPIssuer || (c.Aud != backendAud && c.Aud != cloudRunAud) || id.Email != strings.ToLower(id.Email) {
			t.Fatalf("accepted claims %s as %+v", payload, id)
		}
	})
}

func FuzzGoogleVerify(f *testing.F) {
	key := testRSAKey()
	g, err := NewGoogle(GoogleConfig{KeysJSON: rsaJWKS(f, map[string]*rsa.PublicKey{googleKid: &key.PublicKey}), Now: fixedNow})
	if err != nil {
		f.Fatal(err)
	}
	hdr := mustJSON(f, map[string]string{"alg": "RS256", "kid": googleKid, "typ": "JWT"})
	for _, s := range []string{
		rsToken(f, key, hdr, mustJSON(f, googleClaimsFor(revokeURL))),
		rsToken(f, key, hdr, mustJSON(f, with(googleClaimsFor(revokeURL), "aud", []string{revokeURL}))),
		rsToken(f, key, hdr, []byte(`{"iss":1}`)),
		hsToken([]byte("k"), []byte(`{"alg":"HS256","kid":"g-key-1"}`), mustJSON(f, googleClaimsFor(revokeURL))),
		"..", "x.y.z", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := g.Verify(token, revokeURL)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			return
		}
		parts := strings.Split(token, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
			t.Fatalf("accepted a token the test key did not sign")
		}
		if c.Audience != revokeURL || (c.Issuer != "https://accounts.google.com" && c.Issuer != "accounts.google.com") {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
