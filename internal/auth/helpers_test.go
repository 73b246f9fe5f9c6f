package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testNow is the fixed clock of every test: tokens never age out.
var testNow = time.Unix(1_900_000_000, 0)

func fixedNow() time.Time { return testNow }

const (
	backendAud  = "/projects/123456789012/global/backendServices/4567890123456789"
	cloudRunAud = "/projects/123456789012/locations/europe-west1/services/jit-api"
	testKid     = "iap-key-1"
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// esSig signs input with ES256 in JWS form (R||S, 32 bytes each).
func esSig(t testing.TB, key *ecdsa.PrivateKey, input string) []byte {
	t.Helper()
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig
}

func rsSig(t testing.TB, key *rsa.PrivateKey, input string) []byte {
	t.Helper()
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// esToken signs raw header and payload JSON with an ECDSA key.
func esToken(t testing.TB, key *ecdsa.PrivateKey, header, payload []byte) string {
	t.Helper()
	input := b64u(header) + "." + b64u(payload)
	return input + "." + b64u(esSig(t, key, input))
}

func rsToken(t testing.TB, key *rsa.PrivateKey, header, payload []byte) string {
	t.Helper()
	input := b64u(header) + "." + b64u(payload)
	return input + "." + b64u(rsSig(t, key, input))
}

func hsToken(secret, header, payload []byte) string {
	input := b64u(header) + "." + b64u(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64u(m.Sum(nil))
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testRSAKey is generated once: 2048-bit generation is slow under -race.
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

var otherRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// ecJWKS is a JWKS of P-256 keys, as IAP publishes at public_key-jwk.
func ecJWKS(t testing.TB, keys map[string]*ecdsa.PublicKey) []byte {
	t.Helper()
	var list []map[string]string
	for kid, k := range keys {
		raw, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, map[string]string{
			"kty": "EC", "alg": "ES256", "use": "sig", "crv": "P-256", "kid": kid,
			"x": b64u(raw[1:33]), "y": b64u(raw[33:]),
		})
	}
	return mustJSON(t, map[string]any{"keys": list})
}

// ecPEMMap is IAP's other published form: kid → PEM public key.
func ecPEMMap(t testing.TB, keys map[string]*ecdsa.PublicKey) []byte {
	t.Helper()
	m := map[string]string{}
	for kid, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		m[kid] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	return mustJSON(t, m)
}

// rsaJWKS is a JWKS in the form of https://www.googleapis.com/oauth2/v3/certs.
func rsaJWKS(t testing.TB, keys map[string]*rsa.PublicKey) []byte {
	t.Helper()
	var list []map[string]string
	for kid, k := range keys {
		list = append(list, map[string]string{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
			"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	return mustJSON(t, map[string]any{"keys": list})
}

// iapClaimsFor are the claims IAP sets, with context-aware access.
func iapClaimsFor(aud string) map[string]any {
	return map[string]any{
		"iss":   IAPIssuer,
		"aud":   aud,
		"sub":   "accounts.google.com:112233445566778899",
		"email": "Alice@Example.com",
		"hd":    "example.com",
		"iat":   testNow.Unix() - 10,
		"exp":   testNow.Unix() + 590,
		"google": map[string]any{
			"device_id":     "dev-42",
			"access_levels": []string{"accessPolicies/1/accessLevels/corp_device"},
		},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}
