package token

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

const (
	testKid = "k1"
	testIss = "https://issuer.example"
	testAud = "aud-1"
)

var testNow = time.Date(2030, 5, 17, 12, 0, 0, 0, time.UTC)

// testKey is generated once: RSA key generation is slow.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func testJWKS(t testing.TB) []byte {
	t.Helper()
	jwk := jose.JSONWebKey{Key: &testKey().PublicKey, KeyID: testKid, Algorithm: "RS256", Use: "sig"}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signRS256 signs header and claims, given as JSON or as values to marshal.
func signRS256(t testing.TB, header, claims any) string {
	t.Helper()
	js := func(v any) []byte {
		if s, ok := v.(string); ok {
			return []byte(s)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	signing := b64u(js(header)) + "." + b64u(js(claims))
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, testKey(), crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64u(sig)
}

func goodHeader() map[string]any { return map[string]any{"alg": "RS256", "kid": testKid, "typ": "JWT"} }

func goodClaims() map[string]any {
	return map[string]any{
		"iss": testIss, "sub": "s", "aud": testAud,
		"iat": testNow.Add(-time.Minute).Unix(), "exp": testNow.Add(4 * time.Minute).Unix(),
	}
}

func baseKind() Kind {
	return Kind{Name: "test token", Algorithms: []jose.SignatureAlgorithm{jose.RS256}, Issuers: []string{testIss}, Skew: 30 * time.Second}
}

// TestKindOptions: each option of Kind refuses what it says, and only
// when it is set.
func TestKindOptions(t *testing.T) {
	t.Parallel()
	keys, err := NewKeySet(KeySetConfig{KeysJSON: testJWKS(t), Algorithms: []jose.SignatureAlgorithm{jose.RS256}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	strict := func(k *Kind) { k.OnlyKnownHeaders = true }
	stringAud := func(k *Kind) { k.StringAudience = true }
	fiveMinutes := func(k *Kind) { k.MaxLifetime = 5 * time.Minute }
	tests := []struct {
		name   string
		kind   func(*Kind) // nil: baseKind
		header func(map[string]any)
		claims func(map[string]any)
		want   []error // nil: accepted
	}{
		{name: "valid"},
		{name: "valid, all options", kind: func(k *Kind) { strict(k); stringAud(k); fiveMinutes(k) }},
		{name: "jku ignored by default", header: func(h map[string]any) { h["jku"] = "https://evil.example/keys" }},
		{name: "jku refused with OnlyKnownHeaders", kind: strict, header: func(h map[string]any) { h["jku"] = "https://evil.example/keys" }, want: []error{ErrMalformed}},
		{name: "x5u refused with OnlyKnownHeaders", kind: strict, header: func(h map[string]any) { h["x5u"] = "https://evil.example/cert" }, want: []error{ErrMalformed}},
		{name: "typ jwt accepted by default", header: func(h map[string]any) { h["typ"] = "jwt" }},
		{name: "typ jwt refused with OnlyKnownHeaders", kind: strict, header: func(h map[string]any) { h["typ"] = "jwt" }, want: []error{ErrMalformed}},
		{name: "no typ with OnlyKnownHeaders", kind: strict, header: func(h map[string]any) { delete(h, "typ") }},
		{name: "typ JOSE refused", header: func(h map[string]any) { h["typ"] = "JOSE" }, want: []error{ErrMalformed}},
		{name: "aud list accepted by default", claims: func(c map[string]any) { c["aud"] = []string{"other", testAud} }},
		{name: "aud list refused with StringAudience", kind: stringAud, claims: func(c map[string]any) { c["aud"] = []string{testAud} }, want: []error{ErrAudience}},
		{name: "aud number refused with StringAudience", kind: stringAud, claims: func(c map[string]any) { c["aud"] = 1 }, want: []error{ErrAudience}},
		{name: "long life accepted without MaxLifetime", claims: func(c map[string]any) { c["exp"] = testNow.Add(24 * time.Hour).Unix() }},
		{name: "lives exactly MaxLifetime", kind: fiveMinutes},
		{name: "lives MaxLifetime + 1 s", kind: fiveMinutes, claims: func(c map[string]any) { c["exp"] = testNow.Add(4*time.Minute + time.Second).Unix() }, want: []error{ErrTooLong}},
		{name: "alg missing", header: func(h map[string]any) { delete(h, "alg") }, want: []error{ErrAlgorithm, ErrMalformed}},
		{name: "alg empty", header: func(h map[string]any) { h["alg"] = "" }, want: []error{ErrAlgorithm, ErrMalformed}},
		{name: "alg none", header: func(h map[string]any) { h["alg"] = "none" }, want: []error{ErrAlgorithm, ErrUnsigned}},
		{name: "iat zero", claims: func(c map[string]any) { c["iat"] = 0 }, want: []error{ErrClaims}},
		{name: "iat negative", claims: func(c map[string]any) { c["iat"] = -(int64(1) << 62) }, want: []error{ErrClaims}},
		{name: "exp beyond the year 36812", claims: func(c map[string]any) { c["exp"] = int64(1) << 62 }, want: []error{ErrClaims}},
		{name: "nbf negative", claims: func(c map[string]any) { c["nbf"] = -1 }, want: []error{ErrClaims}},
		{name: "exp not after iat", claims: func(c map[string]any) { c["exp"] = c["iat"] }, want: []error{ErrClaims}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind := baseKind()
			if tt.kind != nil {
				tt.kind(&kind)
			}
			h, c := goodHeader(), goodClaims()
			if tt.header != nil {
				tt.header(h)
			}
			if tt.claims != nil {
				tt.claims(c)
			}
			v, err := New(kind, keys, func() time.Time { return testNow })
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(t.Context(), signRS256(t, h, c), testAud)
			if tt.want == nil && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.want != nil && err == nil {
				t.Fatalf("Verify accepted, want %v", tt.want)
			}
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("Verify: %v, want it to wrap %v", err, want)
				}
			}
		})
	}
}

// TestPeek: Peek applies the form rules of the kind, verifies nothing,
// and reads string claims by exact name.
func TestPeek(t *testing.T) {
	t.Parallel()
	strict := baseKind()
	strict.OnlyKnownHeaders = true
	valid := signRS256(t, goodHeader(), goodClaims())
	tests := []struct {
		name string
		raw  string
		kind Kind
		want map[string]string // claim → String; nil when err
		err  error
	}{
		{name: "valid", raw: valid, kind: baseKind(), want: map[string]string{"iss": testIss, "sub": "s", "iat": "", "ISS": "", "none": ""}},
		{name: "bad signature is not checked", raw: valid[:len(valid)-4] + "AAAA", kind: baseKind(), want: map[string]string{"iss": testIss}},
		{name: "iss not a string", raw: signRS256(t, goodHeader(), `{"iss":1}`), kind: baseKind(), want: map[string]string{"iss": ""}},
		{name: "unknown header with OnlyKnownHeaders", raw: signRS256(t, `{"alg":"RS256","kid":"k1","jwk":{}}`, goodClaims()), kind: strict, err: ErrMalformed},
		{name: "alg none", raw: signRS256(t, `{"alg":"none","kid":"k1"}`, goodClaims()), kind: baseKind(), err: ErrUnsigned},
		{name: "duplicate iss", raw: signRS256(t, goodHeader(), `{"iss":"a","iss":"b"}`), kind: baseKind(), err: ErrMalformed},
		{name: "too long", raw: valid, kind: Kind{MaxBytes: 100, Algorithms: baseKind().Algorithms}, err: ErrMalformed},
		{name: "empty", raw: "", kind: baseKind(), err: ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := Peek(tt.raw, tt.kind)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Peek: %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Peek: %v", err)
			}
			got := map[string]string{}
			for name := range tt.want {
				got[name] = u.String(name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKindValidate(t *testing.T) {
	t.Parallel()
	k := baseKind()
	k.MaxLifetime = -time.Second
	if err := k.Validate(); err == nil {
		t.Error("a negative MaxLifetime was accepted")
	}
}
