package token

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify: no input panics Peek or Verify, Peek refuses whatever
// Verify refuses for form, and nothing is accepted but a token this test
// signed. Every option is on, so their code is fuzzed too.
//
//	go test -run='^$' -fuzz=FuzzVerify -fuzztime=60s ./internal/token/
func FuzzVerify(f *testing.F) {
	keys, err := NewKeySet(KeySetConfig{KeysJSON: testJWKS(f), Algorithms: []jose.SignatureAlgorithm{jose.RS256}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	kind := baseKind()
	kind.OnlyKnownHeaders, kind.StringAudience, kind.MaxLifetime = true, true, 5*time.Minute
	v, err := New(kind, keys, func() time.Time { return testNow })
	if err != nil {
		f.Fatal(err)
	}
	signed := map[string]bool{}
	valid := signRS256(f, goodHeader(), goodClaims())
	signed[valid] = true
	f.Add(valid)
	for _, c := range []func(map[string]any){
		func(c map[string]any) { c["aud"] = []string{testAud} },
		func(c map[string]any) { c["exp"] = testNow.Add(time.Hour).Unix() },
		func(c map[string]any) { c["iat"] = -1 },
		func(c map[string]any) { c["nbf"] = testNow.Add(time.Hour).Unix() },
	} {
		claims := goodClaims()
		c(claims)
		f.Add(signRS256(f, goodHeader(), claims))
	}
	f.Add(signRS256(f, `{"alg":"RS256","kid":"k1","jku":"x"}`, goodClaims()))
	f.Add(signRS256(f, `{"alg":"none","kid":"k1"}`, goodClaims()))
	f.Add(signRS256(f, `{"kid":"k1"}`, `{"iss":1}`))
	f.Add("a.b.c")
	f.Add("")

	f.Fuzz(func(t *testing.T, raw string) {
		_, peekErr := Peek(raw, kind)
		tok, err := v.Verify(context.Background(), raw, testAud)
		if peekErr != nil && err == nil {
			t.Fatalf("Peek refused what Verify accepted: %v", peekErr)
		}
		if err != nil {
			return
		}
		if !signed[raw] {
			t.Fatalf("accepted a token this test did not sign: %q", raw)
		}
		if tok.Issuer != testIss || tok.Audience != testAud {
			t.Fatalf("accepted %+v", tok)
		}
	})
}
