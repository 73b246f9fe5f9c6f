package envelope

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestHappyPath: a valid envelope yields the request it carries.
// docs/architecture.md §5: "require a signed envelope (JWT signed by a service account
// the policy trusts) and say on whose behalf"; signJwt writes the header
// {"alg":"RS256","kid":…,"typ":"JWT"} (IAM Credentials signJwt reference,
// signedJwt field), which localoidc.Signer.Sign reproduces.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	v := newVerifier(t)
	tok := sign(t, trusted, validClaims(body))

	got, err := v.Verify(t.Context(), []byte(body), map[string]string{Attribute: tok, "source": "pagerduty"})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &Request{
		Issuer:      caller,
		User:        "alice@example.com",
		Entitlement: "prod-admin",
		ID:          "req-0001",
		Key:         "envelope:" + caller + "/req-0001",
		Body: Body{
			Entitlement:       "prod-admin",
			RequestedDuration: "PT1H",
			Justification:     "INC-42: database down",
			Inputs:            map[string]any{"ticket": "INC-42"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

// TestAttacks: every named attack is refused with its reason. The time
// checks allow a 30 s skew as IAP's verification does (docs/google-cloud.md §7, IAP:
// "exp in the future and iat in the past, allowing 30 s skew"); the
// algorithm is pinned as Google's verifiers pin it (docs/google-cloud.md §7,
// idtoken: "Any other algorithm is an error").
func TestAttacks(t *testing.T) {
	t.Parallel()
	trusted, other := keys(t)
	kid := kidOf(t, sign(t, trusted, validClaims(body)))
	header := map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}
	with := func(changes map[string]any) map[string]any {
		c := validClaims(body)
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	tampered := []byte(body)
	tampered[strings.Index(body, "PT1H")+2] = '9' // PT9H: one byte
	otherBody := strings.Replace(body, "prod-admin", "prod-owner", 1)
	valid := sign(t, trusted, validClaims(body))
	parts := strings.Split(valid, ".")
	// A 2048-bit signature is 342 base64url characters carrying 4 stray
	// bits; setting one gives another spelling of the same signature.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, parts[2][len(parts[2])-1])
	respelled := parts[2][:len(parts[2])-1] + string(alphabet[last+1])

	tests := []struct {
		name  string
		data  string // body unless set
		attrs map[string]string
		token string // the attribute, unless attrs is set
		want  Reason
	}{
		{name: "no attribute", attrs: map[string]string{"source": "x"}, want: ReasonUnsigned},
		{name: "empty attribute", attrs: map[string]string{Attribute: ""}, want: ReasonUnsigned},
		{name: "garbage", token: "not a token at all", want: ReasonMalformed},
		{name: "two segments", token: parts[0] + "." + parts[1], want: ReasonMalformed},
		{name: "padded base64", token: parts[0] + "=." + parts[1] + "." + parts[2], want: ReasonMalformed},
		{name: "signature with stray bits", token: parts[0] + "." + parts[1] + "." + respelled, want: ReasonMalformed},
		{name: "alg none", token: forge(map[string]any{"alg": "none", "kid": kid}, validClaims(body), ""), want: ReasonUnsigned},
		{name: "alg None with a signature", token: forge(map[string]any{"alg": "None", "kid": kid}, validClaims(body), parts[2]), want: ReasonUnsigned},
		{name: "RS256 without a signature", token: parts[0] + "." + parts[1] + ".", want: ReasonUnsigned},
		{name: "HS256 with the public key as secret", token: hs256(map[string]any{"alg": "HS256", "kid": kid}, validClaims(body), trusted.JWKS()), want: ReasonBadSignature},
		{name: "RS512", token: forge(map[string]any{"alg": "RS512", "kid": kid}, validClaims(body), parts[2]), want: ReasonBadSignature},
		{name: "no kid", token: forge(map[string]any{"alg": "RS256"}, validClaims(body), parts[2]), want: ReasonMalformed},
		{name: "jku header (key injection)", token: forge(map[string]any{"alg": "RS256", "kid": kid, "jku": "https://evil.example/keys"}, validClaims(body), parts[2]), want: ReasonMalformed},
		{name: "typ not JWT", token: forge(map[string]any{"alg": "RS256", "kid": kid, "typ": "JOSE"}, validClaims(body), parts[2]), want: ReasonMalformed},
		{name: "signed by an unknown key", token: sign(t, other, validClaims(body)), want: ReasonUnknownSigner},
		{name: "known kid, other key", token: forge(header, validClaims(body), strings.Split(sign(t, other, validClaims(body)), ".")[2]), want: ReasonBadSignature},
		{name: "claims changed after signing", token: parts[0] + "." + enc(with(map[string]any{"user": "mallory@example.com"})) + "." + parts[2], want: ReasonBadSignature},
		{name: "issuer not trusted", token: sign(t, trusted, with(map[string]any{"iss": stranger, "sub": stranger})), want: ReasonUntrustedSigner},
		{name: "trusted issuer without keys", token: sign(t, trusted, with(map[string]any{"iss": nokeys, "sub": nokeys})), want: ReasonUnknownSigner},
		{name: "issuer missing", token: sign(t, trusted, with(map[string]any{"iss": nil})), want: ReasonMalformed},
		{name: "sub differs from iss", token: sign(t, trusted, with(map[string]any{"sub": stranger})), want: ReasonMalformed},
		{name: "duplicate iss claim", token: sign(t, trusted, json.RawMessage(`{"iss":"`+caller+`","iss":"`+stranger+`"}`)), want: ReasonMalformed},
		{name: "wrong audience", token: sign(t, trusted, with(map[string]any{"aud": "jit-requests-staging"})), want: ReasonWrongAudience},
		{name: "audience as a list", token: sign(t, trusted, with(map[string]any{"aud": []string{audience}})), want: ReasonWrongAudience},
		{name: "expired", token: sign(t, trusted, with(map[string]any{"iat": now.Add(-5 * time.Minute).Unix(), "exp": now.Add(-31 * time.Second).Unix()})), want: ReasonExpired},
		{name: "iat in the future", token: sign(t, trusted, with(map[string]any{"iat": now.Add(2 * time.Minute).Unix(), "exp": now.Add(4 * time.Minute).Unix()})), want: ReasonNotYetValid},
		{name: "nbf in the future", token: sign(t, trusted, with(map[string]any{"nbf": now.Add(time.Minute).Unix()})), want: ReasonNotYetValid},
		{name: "lifetime 1 h", token: sign(t, trusted, with(map[string]any{"exp": now.Add(59 * time.Minute).Unix()})), want: ReasonTooLongLived},
		{name: "exp beyond int64 nanoseconds", token: sign(t, trusted, with(map[string]any{"exp": int64(1) << 62})), want: ReasonMalformed},
		{name: "negative iat", token: sign(t, trusted, with(map[string]any{"iat": -(int64(1) << 62)})), want: ReasonMalformed},
		{name: "alg missing", token: forge(map[string]any{"kid": kid}, validClaims(body), parts[2]), want: ReasonMalformed},
		{name: "exp before iat", token: sign(t, trusted, with(map[string]any{"iat": now.Unix(), "exp": now.Add(-time.Second).Unix()})), want: ReasonMalformed},
		{name: "exp missing", token: sign(t, trusted, with(map[string]any{"exp": nil})), want: ReasonMalformed},
		{name: "iat not an integer", token: sign(t, trusted, with(map[string]any{"iat": 1.5})), want: ReasonMalformed},
		{name: "body tampered (one byte)", data: string(tampered), token: valid, want: ReasonTampered},
		{name: "body replaced", data: otherBody, token: valid, want: ReasonTampered},
		{name: "body_sha256 missing", token: sign(t, trusted, with(map[string]any{"body_sha256": nil})), want: ReasonMalformed},
		{name: "entitlement in body differs from claim", data: otherBody, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(otherBody))})), want: ReasonMismatch},
		{name: "entitlement claim missing", token: sign(t, trusted, with(map[string]any{"entitlement": nil})), want: ReasonMalformed},
		{name: "user missing", token: sign(t, trusted, with(map[string]any{"user": nil})), want: ReasonMalformed},
		{name: "user not an email", token: sign(t, trusted, with(map[string]any{"user": "alice"})), want: ReasonMalformed},
		{name: "user is an address list", token: sign(t, trusted, with(map[string]any{"user": "alice@example.com, root@example.com"})), want: ReasonMalformed},
		// Look-alikes of a user's or the signer's address are refused, not
		// trimmed or folded into theirs.
		{name: "user with a no-break space", token: sign(t, trusted, with(map[string]any{"user": "alice@example.com\u00a0"})), want: ReasonMalformed},
		{name: "user with an ideographic space", token: sign(t, trusted, with(map[string]any{"user": "\u3000alice@example.com"})), want: ReasonMalformed},
		{name: "user with NEL", token: sign(t, trusted, with(map[string]any{"user": "alice@example.com\u0085"})), want: ReasonMalformed},
		{name: "user with dotted I", token: sign(t, trusted, with(map[string]any{"user": "al\u0130ce@example.com"})), want: ReasonMalformed},
		{name: "user with zero-width space", token: sign(t, trusted, with(map[string]any{"user": "alice\u200b@example.com"})), want: ReasonMalformed},
		{name: "user with fullwidth at", token: sign(t, trusted, with(map[string]any{"user": "alice\uff20example.com"})), want: ReasonMalformed},
		{name: "issuer with a no-break space", token: sign(t, trusted, with(map[string]any{"iss": caller + "\u00a0", "sub": caller + "\u00a0"})), want: ReasonMalformed},
		{name: "sub a look-alike of iss", token: sign(t, trusted, with(map[string]any{"sub": strings.Replace(caller, "i", "\u0130", 1)})), want: ReasonMalformed},
		{name: "jti missing", token: sign(t, trusted, with(map[string]any{"jti": nil})), want: ReasonMalformed},
		{name: "jti with spaces", token: sign(t, trusted, with(map[string]any{"jti": "a b"})), want: ReasonMalformed},
		{name: "body with an unknown field", data: `{"entitlement":"prod-admin","role":"owner"}`, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(`{"entitlement":"prod-admin","role":"owner"}`))})), want: ReasonMalformed},
		{name: "body with a duplicate entitlement", data: `{"entitlement":"prod-admin","entitlement":"prod-owner"}`, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(`{"entitlement":"prod-admin","entitlement":"prod-owner"}`))})), want: ReasonMalformed},
		{name: "duplicate user claim", token: sign(t, trusted, json.RawMessage(claimsJSON(`"user":"alice@example.com","user":"mallory@example.com"`))), want: ReasonMalformed},
		{name: "case-variant user claim", token: sign(t, trusted, json.RawMessage(claimsJSON(`"user":"alice@example.com","User":"mallory@example.com"`))), want: ReasonMalformed},
		{name: "case-variant entitlement claim", token: sign(t, trusted, json.RawMessage(claimsJSON(`"user":"alice@example.com","Entitlement":"prod-owner"`))), want: ReasonMalformed},
		{name: "escaped duplicate jti claim", token: sign(t, trusted, json.RawMessage(claimsJSON(`"user":"alice@example.com","j\u0074i":"req-0002"`))), want: ReasonMalformed},
		{name: "user claim only in another case", token: sign(t, trusted, json.RawMessage(strings.Replace(claimsJSON(`"user":"alice@example.com"`), `"user"`, `"USER"`, 1))), want: ReasonMalformed},
		{name: "duplicate inside a nested claim", token: sign(t, trusted, json.RawMessage(claimsJSON(`"user":"alice@example.com","ext":{"a":1,"a":2}`))), want: ReasonMalformed},
		{name: "claims with trailing data", token: parts[0] + "." + enc(claimsJSON(`"user":"alice@example.com"`)+` {}`) + "." + parts[2], want: ReasonMalformed},
		{name: "case-variant kid header", token: forge(json.RawMessage(`{"alg":"RS256","kid":"`+kid+`","KID":"other"}`), validClaims(body), parts[2]), want: ReasonMalformed},
		{name: "case-variant alg header", token: forge(json.RawMessage(`{"alg":"RS256","Alg":"none","kid":"`+kid+`"}`), validClaims(body), parts[2]), want: ReasonMalformed},
		{name: "body with a case-variant entitlement", data: caseVariantBody, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(caseVariantBody))})), want: ReasonMalformed},
		{name: "body field only in another case", data: upperBody, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(upperBody))})), want: ReasonMalformed},
		{name: "body with duplicate inputs", data: dupInputsBody, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(dupInputsBody))})), want: ReasonMalformed},
		{name: "body with case-variant inputs", data: caseInputsBody, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(caseInputsBody))})), want: ReasonMalformed},
		{name: "body with trailing data", data: body + ` {"entitlement":"prod-owner"}`, token: sign(t, trusted, with(map[string]any{"body_sha256": BodyHash([]byte(body + ` {"entitlement":"prod-owner"}`))})), want: ReasonMalformed},
		{name: "body too large", data: `{"justification":"` + strings.Repeat("x", MaxBody) + `"}`, token: valid, want: ReasonMalformed},
		{name: "token too large", token: parts[0] + "." + strings.Repeat("A", MaxToken) + "." + parts[2], want: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newVerifier(t)
			data, attrs := tt.data, tt.attrs
			if data == "" {
				data = body
			}
			if attrs == nil {
				attrs = map[string]string{Attribute: tt.token}
			}
			req, err := v.Verify(t.Context(), []byte(data), attrs)
			var r *Refused
			if !errors.As(err, &r) || !errors.Is(err, ErrRefused) {
				t.Fatalf("Verify = %+v, %v; want a refusal (%s)", req, err, tt.want)
			}
			if r.Reason != tt.want {
				t.Errorf("reason = %s (%s), want %s", r.Reason, r.Detail, tt.want)
			}
			if tt.token != "" && strings.Contains(r.Error(), tt.token) {
				t.Error("the refusal quotes the token")
			}
		})
	}
}

// TestKey: Verify remembers nothing (replay protection is the ledger's,
// on Request.Key: see the package comment), so every delivery of one
// envelope verifies with the same key, "envelope:" + issuer + "/" + jti;
// another jti, or the same jti from another trusted system, is another
// key. Pub/Sub delivery to functions is at-least-once (docs/google-cloud.md §5,
// Delivery: "Event-driven functions get at-least-once execution"), and
// anyone who can publish to the topic can copy a message: the ledger
// must see one key for all copies.
func TestKey(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	v, err := New(Config{
		Keys:     StaticKeys{caller: trusted.JWKS(), stranger: trusted.JWKS()},
		Trusted:  TrustSet(caller, stranger),
		Audience: audience,
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	other := validClaims(body)
	other["jti"] = "req-0002"
	fromStranger := validClaims(body)
	fromStranger["iss"], fromStranger["sub"] = stranger, stranger
	upper := validClaims(body)
	upper["iss"], upper["sub"] = strings.ToUpper(caller), strings.ToUpper(caller)
	valid := sign(t, trusted, validClaims(body))
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"first delivery", valid, "envelope:" + caller + "/req-0001"},
		{"the same envelope again", valid, "envelope:" + caller + "/req-0001"},
		{"re-signed, same jti", sign(t, trusted, validClaims(body)), "envelope:" + caller + "/req-0001"},
		{"issuer in upper case", sign(t, trusted, upper), "envelope:" + caller + "/req-0001"},
		{"another jti", sign(t, trusted, other), "envelope:" + caller + "/req-0002"},
		{"same jti, another issuer", sign(t, trusted, fromStranger), "envelope:" + stranger + "/req-0001"},
	}
	for _, tt := range tests {
		req, err := v.Verify(t.Context(), []byte(body), map[string]string{Attribute: tt.token})
		if err != nil {
			t.Errorf("%s: Verify: %v", tt.name, err)
			continue
		}
		if req.Key != tt.want {
			t.Errorf("%s: Key = %q, want %q", tt.name, req.Key, tt.want)
		}
		if req.Key != KeyPrefix+req.Issuer+"/"+req.ID {
			t.Errorf("%s: Key %q is not KeyPrefix + Issuer + \"/\" + ID", tt.name, req.Key)
		}
	}
}

// TestSkewBoundaries: exp and iat are honoured with exactly Skew of
// tolerance (docs/google-cloud.md §7, IAP: "allowing 30 s skew").
func TestSkewBoundaries(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	tests := []struct {
		name     string
		iat, exp time.Duration // relative to now
		want     Reason        // "" accepts
	}{
		{name: "expired 29 s ago", iat: -4 * time.Minute, exp: -29 * time.Second},
		{name: "expired 30 s ago", iat: -4 * time.Minute, exp: -30 * time.Second, want: ReasonExpired},
		{name: "issued 30 s ahead", iat: 30 * time.Second, exp: 2 * time.Minute},
		{name: "issued 31 s ahead", iat: 31 * time.Second, exp: 2 * time.Minute, want: ReasonNotYetValid},
		{name: "lives exactly 5 min", iat: -time.Minute, exp: 4 * time.Minute},
		{name: "lives 5 min 1 s", iat: -time.Minute, exp: 4*time.Minute + time.Second, want: ReasonTooLongLived},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validClaims(body)
			c["iat"], c["exp"] = now.Add(tt.iat).Unix(), now.Add(tt.exp).Unix()
			_, err := newVerifier(t).Verify(t.Context(), []byte(body), map[string]string{Attribute: sign(t, trusted, c)})
			var r *Refused
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (!errors.As(err, &r) || r.Reason != tt.want):
				t.Errorf("Verify: %v, want %s", err, tt.want)
			}
		})
	}
}

// TestTransientErrorsAreNotRefusals: when the key source fails, the error
// is not a refusal, so the subscriber lets Pub/Sub redeliver (docs/google-cloud.md
// §5: "a non-acknowledged event is redelivered with backoff"), and a
// later delivery succeeds.
func TestTransientErrorsAreNotRefusals(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	attrs := map[string]string{Attribute: sign(t, trusted, validClaims(body))}

	v, err := New(Config{Keys: JWKSFunc(failingKeys{}.Keys), Trusted: TrustSet(caller), Audience: audience, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), []byte(body), attrs); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("keys down: %v, want a transient error", err)
	}
	if _, err := newVerifier(t).Verify(t.Context(), []byte(body), attrs); err != nil {
		t.Errorf("redelivery once the keys are back: %v", err)
	}
}

// TestConfigValidate reports every problem at once.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := Config{MaxLifetime: 2 * time.Hour, Skew: -time.Second}.Validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"Keys", "Trusted", "Audience", "MaxLifetime", "Skew"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted an invalid config")
	}
}

// TestNewClaims: claims built for a body verify, so the signing side and
// the verifying side agree on body_sha256 and the claim names.
func TestNewClaims(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	c, err := NewClaims(caller, audience, "bob@example.com", "req-77", []byte(body), now, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, err := newVerifier(t).Verify(t.Context(), []byte(body), map[string]string{Attribute: sign(t, trusted, c)})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if req.User != "bob@example.com" || req.ID != "req-77" || req.Entitlement != "prod-admin" {
		t.Errorf("request = %+v", req)
	}
	// A body the verifier would refuse is refused when signing already.
	if _, err := NewClaims(caller, audience, "bob@example.com", "req-78", []byte(caseVariantBody), now, time.Minute); err == nil {
		t.Error("NewClaims accepted a body with a case-variant duplicate")
	}
}

// Bodies that two JSON readers can read differently.
const (
	caseVariantBody = `{"entitlement":"prod-admin","Entitlement":"prod-owner","requestedDuration":"PT1H","justification":"x"}`
	upperBody       = `{"entitlement":"prod-admin","RequestedDuration":"PT9H","justification":"x"}`
	dupInputsBody   = `{"entitlement":"prod-admin","justification":"x","inputs":{"ticket":"INC-1","ticket":"INC-2"}}`
	caseInputsBody  = `{"entitlement":"prod-admin","justification":"x","inputs":{"ticket":"INC-1","Ticket":"INC-2"}}`
)

// claimsJSON is the JSON of validClaims(body) without user, with members
// appended verbatim: for claims encoding/json cannot produce.
func claimsJSON(members string) string {
	c := validClaims(body)
	delete(c, "user")
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(string(b), "}") + "," + members + "}"
}
