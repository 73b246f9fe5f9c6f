package envelope

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: no input panics the verifier, every failure is a refusal
// (the key source here never fails), and nothing is
// accepted but an envelope this test signed, with its own body. docs/architecture.md §5:
// the message on the requests topic is not authenticated by Pub/Sub, so
// any byte string can arrive as data and attribute.
//
//	go test -run='^$' -fuzz=FuzzVerify -fuzztime=60s ./internal/envelope/
func FuzzVerify(f *testing.F) {
	trusted, other := keys(f)
	v := newVerifier(f)
	signed := map[string]string{} // token → the body it was signed for
	add := func(tok, data string) {
		f.Add(tok, []byte(data))
	}
	seed := func(data string, change func(map[string]any)) {
		c := validClaims(data)
		change(c)
		tok := sign(f, trusted, c)
		signed[tok] = data
		add(tok, data)
	}
	seed(body, func(map[string]any) {})
	seed(`{"entitlement":"prod-admin"}`, func(c map[string]any) {})
	seed(body, func(c map[string]any) { c["aud"] = "other" })
	seed(body, func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })
	seed(body, func(c map[string]any) { c["user"] = "x" })
	seed(body, func(c map[string]any) { c["iss"], c["sub"] = stranger, stranger })
	valid := sign(f, trusted, validClaims(body))
	signed[valid] = body
	parts := strings.Split(valid, ".")
	add(valid, strings.Replace(body, "PT1H", "PT2H", 1))
	add(sign(f, other, validClaims(body)), body)
	add(forge(map[string]any{"alg": "none", "kid": "k"}, validClaims(body), ""), body)
	add(hs256(map[string]any{"alg": "HS256", "kid": kidOf(f, valid)}, validClaims(body), trusted.JWKS()), body)
	add(parts[0]+"."+parts[1], body)
	add("", "")
	add("a.b.c", "{}")
	add(enc(`{"alg":"RS256","kid":"k","kid":"k"}`)+"."+enc(`{"iss":1}`)+"."+parts[2], `[]`)
	add(valid, `{"entitlement":"prod-admin","Entitlement":"prod-owner"}`)
	seed(`{"entitlement":"prod-admin","inputs":{"a":1,"A":2}}`, func(map[string]any) {})

	f.Fuzz(func(t *testing.T, tok string, data []byte) {
		req, err := v.Verify(context.Background(), data, map[string]string{Attribute: tok})
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("a failure that is not a refusal: %v", err)
			}
			return
		}
		want, ok := signed[tok]
		if !ok {
			t.Fatalf("accepted a token this test did not sign: %q", tok)
		}
		if string(data) != want {
			t.Fatalf("accepted %q with a body it was not signed for: %q", tok, data)
		}
		if req.Issuer != caller || req.User == "" || req.ID == "" || req.Key != KeyPrefix+req.Issuer+"/"+req.ID || req.Body.Entitlement != req.Entitlement {
			b, _ := json.Marshal(req)
			t.Fatalf("accepted an incomplete request: %s", b)
		}
	})
}
