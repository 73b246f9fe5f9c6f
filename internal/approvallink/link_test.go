package approvallink

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/token"
)

const (
	testIss   = "jit-approval"
	testAud   = "https://jit.example.com"
	testGrant = "g-7f3a"
	testKid   = "k1"
)

var (
	testNow      = time.Date(2030, 5, 17, 12, 0, 0, 0, time.UTC)
	testDeadline = testNow.Add(72 * time.Hour) // days: more than signJwt allows
	testSecret   = []byte("0123456789abcdef0123456789abcdef")
)

// staticKeys is one signing key and other verifying ones.
type staticKeys struct {
	kid   string
	key   []byte
	other map[string][]byte
}

func (k staticKeys) SigningKey(context.Context) (string, []byte, error) { return k.kid, k.key, nil }

func (k staticKeys) VerifyingKeys(context.Context) (map[string][]byte, error) {
	m := map[string][]byte{k.kid: k.key}
	for id, key := range k.other {
		m[id] = key
	}
	return m, nil
}

func testKeys() staticKeys { return staticKeys{kid: testKid, key: testSecret} }

func testMinter(keys Keys) *Minter {
	return &Minter{Keys: keys, Audience: testAud, Issuer: testIss, Clock: clock.NewManual(testNow)}
}

func mint(t *testing.T, m *Minter, grant, approver string) string {
	t.Helper()
	tok, err := m.Mint(t.Context(), grant, approver, testDeadline)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign signs header and claims (JSON text) with an HMAC of h.
func sign(h func() hash.Hash, key []byte, header, claims string) string {
	signing := b64([]byte(header)) + "." + b64([]byte(claims))
	m := hmac.New(h, key)
	m.Write([]byte(signing))
	return signing + "." + b64(m.Sum(nil))
}

const goodHeader = `{"alg":"HS256","kid":"k1","typ":"JWT"}`

// claimsJSON is a valid claim set with extra members appended as is.
func claimsJSON(extra string) string {
	return fmt.Sprintf(`{"iss":%q,"sub":"alice@example.com","aud":%q,"grant":%q,"iat":%d,"exp":%d,"jti":"j1"%s}`,
		testIss, testAud, testGrant, testNow.Unix(), testDeadline.Unix(), extra)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	tok := mint(t, testMinter(keys), testGrant, "Alice@Example.COM")
	v, err := NewVerifier(keys, testIss, testAud, clock.NewManual(testNow.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(t.Context(), tok, testGrant)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &Claims{Grant: testGrant, Approver: "alice@example.com", Expires: testDeadline, IssuedAt: testNow}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Claims{}, "ID")); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if len(got.ID) < 20 {
		t.Errorf("jti %q is not a random ID", got.ID)
	}
	if again := mint(t, testMinter(keys), testGrant, "alice@example.com"); again == tok {
		t.Error("two links minted alike: jti is not random")
	}
	// The header is exactly what the verifier's OnlyKnownHeaders allows.
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if diff := cmp.Diff(goodHeader, string(header)); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
}

// TestVerifyRefuses: each way a link can be wrong gives the error the
// page explains, and no error repeats the token.
func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	good := mint(t, testMinter(keys), testGrant, "alice@example.com")
	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !strings.Contains(string(payload), `"sub":"alice@example.com"`) {
		t.Fatalf("payload %s, %v", payload, err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256 := func(header, claims string) string {
		signing := b64([]byte(header)) + "." + b64([]byte(claims))
		d := sha256.Sum256([]byte(signing))
		sig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return signing + "." + b64(sig)
	}
	otherAud := testMinter(keys)
	otherAud.Audience = "https://other.example.com"
	otherIss := testMinter(keys)
	otherIss.Issuer = "someone-else"
	tests := []struct {
		name  string
		raw   string
		grant string        // default testGrant
		at    time.Duration // verifier's time after testNow
		want  error
		why   error // the token refusal wrapped, if it matters which
	}{
		{name: "empty", raw: "", want: ErrInvalid, why: token.ErrMissing},
		{name: "not a JWT", raw: "hello", want: ErrInvalid},
		{name: "tampered payload", raw: parts[0] + "." + b64([]byte(strings.Replace(string(payload), "alice", "mallory", 1))) + "." + parts[2], want: ErrInvalid, why: token.ErrSignature},
		{name: "tampered signature", raw: parts[0] + "." + parts[1] + "." + b64(make([]byte, 32)), want: ErrInvalid, why: token.ErrSignature},
		{name: "alg none", raw: b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + ".", want: ErrInvalid, why: token.ErrUnsigned},
		{name: "alg none with a signature", raw: b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + "." + parts[2], want: ErrInvalid, why: token.ErrUnsigned},
		{name: "alg RS256", raw: rs256(`{"alg":"RS256","kid":"k1","typ":"JWT"}`, claimsJSON("")), want: ErrInvalid, why: token.ErrAlgorithm},
		{name: "alg HS384, same key", raw: sign(sha512.New384, testSecret, `{"alg":"HS384","kid":"k1","typ":"JWT"}`, claimsJSON("")), want: ErrInvalid, why: token.ErrAlgorithm},
		{name: "another key", raw: sign(sha256.New, []byte("another key, also thirty-two b.."), goodHeader, claimsJSON("")), want: ErrInvalid, why: token.ErrSignature},
		{name: "unknown kid", raw: sign(sha256.New, testSecret, `{"alg":"HS256","kid":"k9","typ":"JWT"}`, claimsJSON("")), want: ErrInvalid, why: token.ErrUnknownKey},
		{name: "jku header", raw: sign(sha256.New, testSecret, `{"alg":"HS256","jku":"https://evil.example/k","kid":"k1"}`, claimsJSON("")), want: ErrInvalid},
		{name: "expired", raw: good, at: 72*time.Hour + Skew, want: ErrExpired},
		{name: "expired, other grant", raw: good, grant: "g-other", at: 80 * time.Hour, want: ErrExpired},
		{name: "other grant", raw: good, grant: "g-other", want: ErrOtherGrant},
		{name: "other audience", raw: mint(t, otherAud, testGrant, "alice@example.com"), want: ErrInvalid, why: token.ErrAudience},
		{name: "other issuer", raw: mint(t, otherIss, testGrant, "alice@example.com"), want: ErrInvalid, why: token.ErrIssuer},
		{name: "audience array", raw: sign(sha256.New, testSecret, goodHeader, strings.Replace(claimsJSON(""), `"aud":"`+testAud+`"`, `"aud":["`+testAud+`"]`, 1)), want: ErrInvalid, why: token.ErrAudience},
		{name: "duplicate grant claim", raw: sign(sha256.New, testSecret, goodHeader, claimsJSON(`,"grant":"g-other"`)), want: ErrInvalid, why: token.ErrMalformed},
		{name: "case-variant claim", raw: sign(sha256.New, testSecret, goodHeader, claimsJSON(`,"GRANT":"g-other"`)), want: ErrInvalid, why: token.ErrMalformed},
		{name: "too large", raw: sign(sha256.New, testSecret, goodHeader, claimsJSON(`,"pad":"`+strings.Repeat("x", MaxBytes)+`"`)), want: ErrInvalid, why: token.ErrMalformed},
		{name: "sub not canonical", raw: sign(sha256.New, testSecret, goodHeader, strings.Replace(claimsJSON(""), "alice@", "Alice@", 1)), want: ErrInvalid},
		{name: "no jti", raw: sign(sha256.New, testSecret, goodHeader, strings.Replace(claimsJSON(""), `,"jti":"j1"`, "", 1)), want: ErrInvalid},
		{name: "grant not a string", raw: sign(sha256.New, testSecret, goodHeader, strings.Replace(claimsJSON(""), `"grant":"`+testGrant+`"`, `"grant":7`, 1)), want: ErrInvalid},
		{name: "issued in the future", raw: good, at: -time.Minute, want: ErrInvalid, why: token.ErrNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(keys, testIss, testAud, clock.NewManual(testNow.Add(tt.at)))
			if err != nil {
				t.Fatal(err)
			}
			grant := tt.grant
			if grant == "" {
				grant = testGrant
			}
			c, err := v.Verify(t.Context(), tt.raw, grant)
			if !errors.Is(err, tt.want) || c != nil {
				t.Fatalf("Verify = %v, %v; want %v", c, err, tt.want)
			}
			if tt.why != nil && !errors.Is(err, tt.why) {
				t.Errorf("Verify: %v, want it to wrap %v", err, tt.why)
			}
			for _, other := range []error{ErrInvalid, ErrExpired, ErrOtherGrant} {
				if !errors.Is(other, tt.want) && errors.Is(err, other) {
					t.Errorf("Verify: %v is also %v", err, other)
				}
			}
			if tt.raw != "" && (strings.Contains(err.Error(), tt.raw) || len(err.Error()) > 600) {
				t.Errorf("the error repeats the token: %v", err)
			}
		})
	}
}

func TestExpiredAt(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	tok := mint(t, testMinter(keys), testGrant, "alice@example.com")
	v, err := NewVerifier(keys, testIss, testAud, clock.NewManual(testDeadline.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(t.Context(), tok, testGrant)
	var expired *ExpiredError
	if !errors.As(err, &expired) {
		t.Fatalf("Verify: %v, want an *ExpiredError", err)
	}
	if !expired.At.Equal(testDeadline) {
		t.Errorf("At = %v, want %v", expired.At, testDeadline)
	}
	if want := "approval link expired at 2030-05-20T12:00:00Z"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

// TestVerifyKeysUnavailable: when the keys cannot be had, the link is not
// called invalid.
func TestVerifyKeysUnavailable(t *testing.T) {
	t.Parallel()
	f := newSMFake()
	f.add(testSecret)
	keys := &SecretManagerKeys{Client: f, Secret: "projects/acme-jit/secrets/approval-links", Clock: clock.NewManual(testNow)}
	tok := mint(t, testMinter(keys), testGrant, "alice@example.com")
	broken := &SecretManagerKeys{Client: f, Secret: "projects/acme-jit/secrets/gone", Clock: clock.NewManual(testNow)}
	v, err := NewVerifier(broken, testIss, testAud, clock.NewManual(testNow))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(t.Context(), tok, testGrant)
	if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrExpired) || errors.Is(err, ErrOtherGrant) {
		t.Errorf("Verify: %v, want an error of ours, not the link's", err)
	}
}

func TestMintRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		minter   func(*Minter)
		grant    string
		approver string
		deadline time.Time
	}{
		{name: "deadline now", deadline: testNow},
		{name: "deadline past", deadline: testNow.Add(-time.Hour)},
		{name: "deadline within this second", deadline: testNow.Add(500 * time.Millisecond)},
		{name: "approver not an address", approver: "alice"},
		{name: "approver with spaces", approver: " alice@example.com"},
		{name: "no grant", grant: "-"},
		{name: "grant ID too long for a link", grant: strings.Repeat("g", MaxBytes)},
		{name: "no keys", minter: func(m *Minter) { m.Keys = nil }},
		{name: "no audience", minter: func(m *Minter) { m.Audience = "" }},
		{name: "no issuer", minter: func(m *Minter) { m.Issuer = "" }},
		{name: "key too short", minter: func(m *Minter) { m.Keys = staticKeys{kid: "k", key: testSecret[:16]} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := testMinter(testKeys())
			if tt.minter != nil {
				tt.minter(m)
			}
			grant, approver, deadline := tt.grant, tt.approver, tt.deadline
			switch grant {
			case "":
				grant = testGrant
			case "-":
				grant = ""
			}
			if approver == "" {
				approver = "alice@example.com"
			}
			if deadline.IsZero() {
				deadline = testDeadline
			}
			if tok, err := m.Mint(t.Context(), grant, approver, deadline); err == nil {
				t.Errorf("Mint = %.40q…, want an error", tok)
			}
		})
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, grant, want string
	}{
		{"https://jit.example.com", "g-1", "https://jit.example.com/approvals/g-1?t=a.b.c"},
		{"https://jit.example.com/", "g-1", "https://jit.example.com/approvals/g-1?t=a.b.c"},
		{"http://localhost:8080/jit", "a/b c?", "http://localhost:8080/jit/approvals/a%2Fb%20c%3F?t=a.b.c"},
	}
	for _, tt := range tests {
		if got := URL(tt.base, tt.grant, "a.b.c"); got != tt.want {
			t.Errorf("URL(%q, %q) = %q, want %q", tt.base, tt.grant, got, tt.want)
		}
	}
}

func TestNewVerifierValidates(t *testing.T) {
	t.Parallel()
	if _, err := NewVerifier(nil, "", "", nil); err == nil || strings.Count(err.Error(), "required") != 3 {
		t.Errorf("NewVerifier(nil, \"\", \"\") = %v, want three problems", err)
	}
}
