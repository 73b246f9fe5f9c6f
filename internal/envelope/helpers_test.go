package envelope

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
)

const (
	caller   = "incident-bot@tools.iam.gserviceaccount.com"
	stranger = "other-bot@tools.iam.gserviceaccount.com"
	nokeys   = "deleted-bot@tools.iam.gserviceaccount.com"
	audience = "jit-requests"
)

// now is the verifiers' fixed clock: tests never depend on the wall clock.
var now = time.Date(2030, 5, 17, 12, 0, 0, 0, time.UTC)

// Key generation is slow; every test shares two signers.
var signers = sync.OnceValues(func() ([2]*localoidc.Signer, error) {
	a, err := localoidc.Open("")
	if err != nil {
		return [2]*localoidc.Signer{}, err
	}
	b, err := localoidc.Open("")
	return [2]*localoidc.Signer{a, b}, err
})

// keys returns the trusted test signer and another one whose key nobody
// published.
func keys(t testing.TB) (trusted, other *localoidc.Signer) {
	t.Helper()
	s, err := signers()
	if err != nil {
		t.Fatal(err)
	}
	return s[0], s[1]
}

// failingKeys is a key source that is down.
type failingKeys struct{}

func (failingKeys) Keys(context.Context, string) ([]byte, error) {
	return nil, errors.New("connection refused")
}

// newVerifier builds a verifier that trusts caller and stranger's keys
// are published but stranger is not trusted.
func newVerifier(t testing.TB) *Verifier {
	t.Helper()
	trusted, _ := keys(t)
	v, err := New(Config{
		Keys:     StaticKeys{caller: trusted.JWKS(), stranger: trusted.JWKS()},
		Trusted:  TrustSet(caller, nokeys),
		Audience: audience,
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const body = `{"entitlement":"prod-admin","requestedDuration":"PT1H","justification":"INC-42: database down","inputs":{"ticket":"INC-42"}}`

// validClaims are the claims of a valid envelope for body, as a map so
// tests can break them one at a time.
func validClaims(data string) map[string]any {
	return map[string]any{
		"iss":         caller,
		"sub":         caller,
		"aud":         audience,
		"user":        "Alice@example.com",
		"entitlement": "prod-admin",
		"jti":         "req-0001",
		"iat":         now.Add(-time.Minute).Unix(),
		"exp":         now.Add(4 * time.Minute).Unix(),
		"body_sha256": BodyHash([]byte(data)),
	}
}

func sign(t testing.TB, s *localoidc.Signer, claims any) string {
	t.Helper()
	tok, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func enc(v any) string {
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// forge builds a token by hand from a header and claims, with sig as the
// signature segment.
func forge(header, claims any, sig string) string {
	return enc(header) + "." + enc(claims) + "." + sig
}

// hs256 "signs" header.claims with HMAC-SHA256 keyed by secret, the
// classic algorithm-confusion attack when secret is the public key.
func hs256(header, claims any, secret []byte) string {
	signing := enc(header) + "." + enc(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// kidOf reads the kid of a token the signer made.
func kidOf(t testing.TB, tok string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}
