package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// testSecret is an HS256 key of the shortest accepted length.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// signHS256 signs header and claims (JSON or values) with secret.
func signHS256(t testing.TB, secret []byte, header, claims any) string {
	t.Helper()
	rs := signRS256(t, header, claims)
	signing := rs[:strings.LastIndex(rs, ".")]
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + b64u(m.Sum(nil))
}

func hsKind() Kind {
	return Kind{Name: "test link", Algorithms: []jose.SignatureAlgorithm{jose.HS256}, Issuers: []string{testIss},
		Skew: 30 * time.Second, OnlyKnownHeaders: true, StringAudience: true}
}

// TestHS256: secrets verify HS256 tokens and nothing else; the key type
// must match the alg whatever the Kind allows, so a public key's bytes are
// never an HMAC secret and a secret never verifies RS256.
func TestHS256(t *testing.T) {
	t.Parallel()
	der, err := x509.MarshalPKIXPublicKey(&testKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keys := KeysFunc(func(_ context.Context, kid string) (any, error) {
		switch kid {
		case "secret":
			return testSecret, nil
		case "short":
			return testSecret[:16], nil
		case "rsa":
			return &testKey().PublicKey, nil
		}
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
	})
	hs := func(kid string) map[string]any { return map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"} }
	tests := []struct {
		name string
		kind Kind
		raw  string
		want error // nil: accepted
	}{
		{name: "valid", kind: hsKind(), raw: signHS256(t, testSecret, hs("secret"), goodClaims())},
		{name: "wrong secret", kind: hsKind(), raw: signHS256(t, []byte("another secret of thirty-two byt"), hs("secret"), goodClaims()), want: ErrSignature},
		{name: "secret shorter than 32 bytes", kind: hsKind(), raw: signHS256(t, testSecret[:16], hs("short"), goodClaims()), want: ErrUnknownKey},
		{name: "kid names an RSA key", kind: hsKind(), raw: signHS256(t, der, hs("rsa"), goodClaims()), want: ErrUnknownKey},
		{name: "RS256 under an HS256 kind", kind: hsKind(), raw: signRS256(t, map[string]any{"alg": "RS256", "kid": "rsa"}, goodClaims()), want: ErrAlgorithm},
		{name: "HS384", kind: hsKind(), raw: signHS256(t, testSecret, map[string]any{"alg": "HS384", "kid": "secret"}, goodClaims()), want: ErrAlgorithm},
		{name: "HS256 under an RS256 kind, signed with the public key", kind: baseKind(), raw: signHS256(t, der, hs("rsa"), goodClaims()), want: ErrAlgorithm},
		{name: "RS256 kid names a secret", kind: baseKind(), raw: signRS256(t, map[string]any{"alg": "RS256", "kid": "secret"}, goodClaims()), want: ErrUnknownKey},
		{name: "unknown kid", kind: hsKind(), raw: signHS256(t, testSecret, hs("other"), goodClaims()), want: ErrUnknownKey},
		{name: "duplicate claim", kind: hsKind(), raw: signHS256(t, testSecret, hs("secret"), `{"iss":"`+testIss+`","sub":"a","sub":"b"}`), want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := New(tt.kind, keys, func() time.Time { return testNow })
			if err != nil {
				t.Fatal(err)
			}
			tok, err := v.Verify(t.Context(), tt.raw, testAud)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if diff := cmp.Diff("HS256/secret/s", tok.Alg+"/"+tok.Kid+"/"+tok.Subject); diff != "" {
					t.Errorf("token (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify: %v, want it to wrap %v", err, tt.want)
			}
		})
	}
}

// TestExpiredError: an expired token's error carries its exp, and still
// is ErrExpired.
func TestExpiredError(t *testing.T) {
	t.Parallel()
	keys := KeysFunc(func(context.Context, string) (any, error) { return testSecret, nil })
	v, err := New(hsKind(), keys, func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	c := goodClaims()
	exp := testNow.Add(-time.Hour)
	c["iat"], c["exp"] = exp.Add(-time.Hour).Unix(), exp.Unix()
	_, err = v.Verify(t.Context(), signHS256(t, testSecret, map[string]any{"alg": "HS256", "kid": "k"}, c), testAud)
	var expired *ExpiredError
	if !errors.As(err, &expired) || !errors.Is(err, ErrExpired) {
		t.Fatalf("Verify: %v, want an *ExpiredError wrapping ErrExpired", err)
	}
	if !expired.At.Equal(exp) {
		t.Errorf("At = %v, want %v", expired.At, exp)
	}
}

func TestKindValidateAlgorithms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		algs []jose.SignatureAlgorithm
		ok   bool
	}{
		{"HS256 alone", []jose.SignatureAlgorithm{jose.HS256}, true},
		{"RS256 and ES256", []jose.SignatureAlgorithm{jose.RS256, jose.ES256}, true},
		{"HS256 beside RS256", []jose.SignatureAlgorithm{jose.RS256, jose.HS256}, false},
		{"HS384", []jose.SignatureAlgorithm{jose.HS384}, false},
		{"none", []jose.SignatureAlgorithm{"none"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k := baseKind()
			k.Algorithms = tt.algs
			if err := k.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate(%v) = %v, want ok %v", tt.algs, err, tt.ok)
			}
		})
	}
}
