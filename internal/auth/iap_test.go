package auth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// asn1Sig re-encodes a JWS R||S signature as the DER form that
// ecdsa.SignASN1 produces, which JWS does not allow.
func asn1Sig(raw []byte) ([]byte, error) {
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
}

// iapFixture is a verifier trusting one generated key, for backendAud only.
type iapFixture struct {
	key *ecdsa.PrivateKey
	v   *IAP
}

func newIAPFixture(t *testing.T, audiences ...string) *iapFixture {
	t.Helper()
	key := newECKey(t)
	if len(audiences) == 0 {
		audiences = []string{backendAud}
	}
	v, err := NewIAP(IAPConfig{
		Audiences: audiences,
		KeysJSON:  ecJWKS(t, map[string]*ecdsa.PublicKey{testKid: &key.PublicKey}),
		Now:       fixedNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &iapFixture{key: key, v: v}
}

func (f *iapFixture) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	return esToken(t, f.key, mustJSON(t, map[string]string{"alg": "ES256", "kid": testKid, "typ": "JWT"}), mustJSON(t, claims))
}

// Happy paths. docs/google-cloud.md §7 (IAP; [doc] cloud.google.com/iap/docs/signed-headers-howto):
// ES256, iss https://cloud.google.com/iap, aud per backend type, email
// without prefix, hd and sub; the google claim carries device_id and
// access_levels with context-aware access ([2nd] public IAP payload types).
func TestIAPVerifyAcceptsBothAudienceForms(t *testing.T) {
	t.Parallel()
	f := newIAPFixture(t, backendAud, cloudRunAud)
	for _, aud := range []string{backendAud, cloudRunAud} {
		got, err := f.v.Verify(t.Context(), f.token(t, iapClaimsFor(aud)))
		if err != nil {
			t.Fatalf("%s: %v", aud, err)
		}
		want := &Identity{
			Email: "alice@example.com", Subject: "accounts.google.com:112233445566778899",
			HostedDomain: "example.com", DeviceID: "dev-42",
			AccessLevels: []string{"accessPolicies/1/accessLevels/corp_device"},
			Audience:     aud,
			IssuedAt:     testNow.Add(-10 * time.Second).UTC(), Expires: testNow.Add(590 * time.Second).UTC(),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: identity (-want +got):\n%s", aud, diff)
		}
	}
}

// Skew: docs/google-cloud.md §7 (IAP): exp in the future and iat in the past,
// allowing 30 s skew.
func TestIAPSkew(t *testing.T) {
	t.Parallel()
	f := newIAPFixture(t)
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   error
	}{
		{"expired 20s ago, within skew", with(iapClaimsFor(backendAud), "exp", testNow.Unix()-20, "iat", testNow.Unix()-600), nil},
		{"expired 31s ago", with(iapClaimsFor(backendAud), "exp", testNow.Unix()-31, "iat", testNow.Unix()-600), ErrExpired},
		{"issued 20s ahead, within skew", with(iapClaimsFor(backendAud), "iat", testNow.Unix()+20), nil},
		{"issued 31s ahead", with(iapClaimsFor(backendAud), "iat", testNow.Unix()+31), ErrNotYetValid},
	} {
		_, err := f.v.Verify(t.Context(), f.token(t, tc.claims))
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// Each named attack must be refused, for the stated reason. docs/google-cloud.md §7
// (IAP; [doc] signed-headers-howto): alg must be ES256, kid must name a
// published key, iss and aud exact, exp/iat with 30 s skew.
func TestIAPRefusesAttacks(t *testing.T) {
	t.Parallel()
	f := newIAPFixture(t)
	good := iapClaimsFor(backendAud)
	hdr := func(kv ...string) []byte {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return mustJSON(t, m)
	}
	es := hdr("alg", "ES256", "kid", testKid)
	valid := f.token(t, good)
	parts := strings.Split(valid, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	flipped := append([]byte(nil), sig...)
	flipped[10] ^= 1

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"forged signature", parts[0] + "." + parts[1] + "." + b64u(flipped), ErrSignature},
		{"payload swapped under a valid signature", parts[0] + "." + b64u(mustJSON(t, with(good, "email", "mallory@example.com"))) + "." + parts[2], ErrSignature},
		{"wrong key with the same kid", esToken(t, newECKey(t), es, mustJSON(t, good)), ErrSignature},
		{"psychic signature r=s=0", parts[0] + "." + parts[1] + "." + b64u(make([]byte, 64)), ErrSignature},
		{"DER signature instead of R||S", func() string {
			der, err := asn1Sig(esSig(t, f.key, parts[0]+"."+parts[1]))
			if err != nil {
				t.Fatal(err)
			}
			return parts[0] + "." + parts[1] + "." + b64u(der)
		}(), ErrSignature},
		{"alg none, empty signature", b64u(hdr("alg", "none", "kid", testKid)) + "." + parts[1] + ".", ErrMalformed},
		{"alg none, some signature", b64u(hdr("alg", "none", "kid", testKid)) + "." + parts[1] + "." + parts[2], ErrAlgorithm},
		{"alg HS256 keyed with the public key", hsToken(pubDER, hdr("alg", "HS256", "kid", testKid), mustJSON(t, good)), ErrAlgorithm},
		{"alg RS256", rsToken(t, testRSAKey(), hdr("alg", "RS256", "kid", testKid), mustJSON(t, good)), ErrAlgorithm},
		{"alg ES384", esToken(t, f.key, hdr("alg", "ES384", "kid", testKid), mustJSON(t, good)), ErrAlgorithm},
		{"alg es256 lower case", esToken(t, f.key, hdr("alg", "es256", "kid", testKid), mustJSON(t, good)), ErrAlgorithm},
		{"alg missing", esToken(t, f.key, hdr("kid", testKid), mustJSON(t, good)), ErrAlgorithm},
		{"unknown kid", esToken(t, f.key, hdr("alg", "ES256", "kid", "other"), mustJSON(t, good)), ErrUnknownKey},
		{"kid missing", esToken(t, f.key, hdr("alg", "ES256"), mustJSON(t, good)), ErrUnknownKey},
		{"crit header", esToken(t, f.key, []byte(`{"alg":"ES256","kid":"`+testKid+`","crit":["exp"]}`), mustJSON(t, good)), ErrMalformed},
		{"typ not JWT", esToken(t, f.key, hdr("alg", "ES256", "kid", testKid, "typ", "JOSE+JSON"), mustJSON(t, good)), ErrMalformed},
		{"duplicate alg in header", esToken(t, f.key, []byte(`{"alg":"none","alg":"ES256","kid":"`+testKid+`"}`), mustJSON(t, good)), ErrMalformed},
		{"wrong issuer", f.token(t, with(good, "iss", "https://accounts.google.com")), ErrIssuer},
		{"issuer with trailing slash", f.token(t, with(good, "iss", IAPIssuer+"/")), ErrIssuer},
		{"wrong audience", f.token(t, with(good, "aud", "/projects/123456789012/global/backendServices/1")), ErrAudience},
		{"audience of the other form", f.token(t, with(good, "aud", cloudRunAud)), ErrAudience},
		{"audience prefix only", f.token(t, with(good, "aud", backendAud[:len(backendAud)-1])), ErrAudience},
		{"audience array without ours", f.token(t, with(good, "aud", []string{"x", "y"})), ErrAudience},
		{"audience missing", f.token(t, with(good, "aud", nil)), ErrAudience},
		{"expired", f.token(t, with(good, "exp", testNow.Unix()-3600, "iat", testNow.Unix()-4200)), ErrExpired},
		{"issued in the future", f.token(t, with(good, "iat", testNow.Unix()+300, "exp", testNow.Unix()+900)), ErrNotYetValid},
		{"not yet valid (nbf)", f.token(t, with(good, "nbf", testNow.Unix()+300)), ErrNotYetValid},
		{"exp missing", f.token(t, with(good, "exp", nil)), ErrClaims},
		{"iat missing", f.token(t, with(good, "iat", nil)), ErrClaims},
		{"exp as a string", f.token(t, with(good, "exp", "1900000600")), ErrMalformed},
		{"email missing", f.token(t, with(good, "email", nil)), ErrClaims},
		{"email without @", f.token(t, with(good, "email", "alice")), ErrClaims},
		{"sub missing", f.token(t, with(good, "sub", nil)), ErrClaims},
		{"payload not an object", esToken(t, f.key, es, []byte(`["iss","aud"]`)), ErrMalformed},
		{"payload a string", esToken(t, f.key, es, []byte(`"hello"`)), ErrMalformed},
		{"alg and ALG in header", esToken(t, f.key, []byte(`{"ALG":"none","alg":"ES256","kid":"`+testKid+`"}`), mustJSON(t, good)), ErrMalformed},
		{"email and EMAIL in payload", esToken(t, f.key, es, []byte(`{"iss":"`+IAPIssuer+`","aud":"`+backendAud+`","sub":"1","email":"a@example.com","EMAIL":"root@example.com","iat":1899999990,"exp":1900000500}`)), ErrMalformed},
		{"duplicate email in payload", esToken(t, f.key, es, []byte(`{"iss":"`+IAPIssuer+`","aud":"`+backendAud+`","sub":"1","email":"a@example.com","email":"root@example.com","iat":1899999990,"exp":1900000500}`)), ErrMalformed},
		{"trailing data after payload", esToken(t, f.key, es, append(mustJSON(t, good), []byte(` {}`)...)), ErrMalformed},
		{"empty", "", ErrMissing},
		{"malformed base64", parts[0] + ".*" + parts[1] + "." + parts[2], ErrMalformed},
		{"standard base64 alphabet", parts[0] + "." + parts[1] + "+." + parts[2], ErrMalformed},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2], ErrMalformed},
		{"newline inside a segment", parts[0] + "." + parts[1][:5] + "\n" + parts[1][5:] + "." + parts[2], ErrMalformed},
		{"two dots only", "..", ErrMalformed},
		{"one dot", parts[0] + "." + parts[1], ErrMalformed},
		{"extra segment", valid + "." + parts[2], ErrMalformed},
		{"oversized", f.token(t, with(good, "pad", strings.Repeat("x", MaxTokenBytes))), ErrMalformed},
	} {
		got, err := f.v.Verify(t.Context(), tc.token)
		if err == nil {
			t.Errorf("%s: accepted as %+v", tc.name, got)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[:20]) {
			t.Errorf("%s: error echoes the token: %v", tc.name, err)
		}
	}
	// The control: the unmodified token passes, so each refusal above is
	// due to its mutation.
	if _, err := f.v.Verify(t.Context(), valid); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
}

// Caller reads x-goog-iap-jwt-assertion, case-insensitively (docs/google-cloud.md §7,
// IAP: the header name); a missing or empty header is refused, and so are
// the unsigned x-goog-authenticated-user-email headers on their own.
func TestIAPCaller(t *testing.T) {
	t.Parallel()
	f := newIAPFixture(t)
	tok := f.token(t, iapClaimsFor(backendAud))
	for _, tc := range []struct {
		name    string
		headers map[string][]string
		want    string
		wantErr bool
	}{
		{"canonical header", map[string][]string{"X-Goog-Iap-Jwt-Assertion": {tok}}, "alice@example.com", false},
		{"lower-case header", map[string][]string{IAPHeader: {tok}}, "alice@example.com", false},
		{"missing header", nil, "", true},
		{"empty header", map[string][]string{"X-Goog-Iap-Jwt-Assertion": {""}}, "", true},
		{"unsigned identity headers only", map[string][]string{"X-Goog-Authenticated-User-Email": {"accounts.google.com:root@example.com"}}, "", true},
		{"two assertions", map[string][]string{"X-Goog-Iap-Jwt-Assertion": {tok, tok}}, "", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for k, vs := range tc.headers {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		got, err := f.v.Caller(r)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: Caller = %q, %v; want %q (error %t)", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

// Startup refusals: no audience (production mode needs one), audiences not
// of the two forms of docs/google-cloud.md §7, and key sources not exactly one.
func TestIAPConfigValidate(t *testing.T) {
	t.Parallel()
	keys := []byte(`{"keys":[]}`)
	for _, tc := range []struct {
		name string
		cfg  IAPConfig
		want []string // substrings of the error; nil means valid
	}{
		{"valid backend", IAPConfig{Audiences: []string{backendAud}, KeysURL: IAPKeysURL}, nil},
		{"valid cloud run", IAPConfig{Audiences: []string{cloudRunAud}, KeysFile: "/k.json"}, nil},
		{"no audience", IAPConfig{KeysURL: IAPKeysURL}, []string{"production mode needs an IAP audience",
			"/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID", "/projects/PROJECT_NUMBER/locations/REGION/services/SERVICE_NAME"}},
		{"no keys", IAPConfig{Audiences: []string{backendAud}}, []string{"exactly one of KeysURL, KeysFile and KeysJSON"}},
		{"two key sources", IAPConfig{Audiences: []string{backendAud}, KeysURL: IAPKeysURL, KeysFile: "/k"}, []string{"(2 are)"}},
		{"everything wrong at once", IAPConfig{Skew: -time.Second, KeysJSON: keys, KeysFile: "/k"}, []string{"production mode", "(2 are)", "Skew"}},
		{"app engine form", IAPConfig{Audiences: []string{"/projects/123/apps/my-app"}, KeysJSON: keys}, []string{"is neither"}},
		{"trailing slash", IAPConfig{Audiences: []string{backendAud + "/"}, KeysJSON: keys}, []string{"is neither"}},
		{"project id not number", IAPConfig{Audiences: []string{"/projects/my-proj/global/backendServices/1"}, KeysJSON: keys}, []string{"is neither"}},
		{"upper-case service", IAPConfig{Audiences: []string{"/projects/1/locations/europe-west1/services/Jit"}, KeysJSON: keys}, []string{"is neither"}},
		{"bad region", IAPConfig{Audiences: []string{"/projects/1/locations/global/services/jit"}, KeysJSON: keys}, []string{"is neither"}},
		{"leading space", IAPConfig{Audiences: []string{" " + backendAud}, KeysJSON: keys}, []string{"is neither"}},
		{"key URL not http", IAPConfig{Audiences: []string{backendAud}, KeysURL: "file:///etc/keys"}, []string{"not an http(s) URL"}},
	} {
		err := tc.cfg.Validate()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: valid, want error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
	}
	if _, err := NewIAP(IAPConfig{KeysURL: IAPKeysURL}); err == nil || !strings.Contains(err.Error(), "production mode") {
		t.Errorf("NewIAP without audience: %v", err)
	}
}

// A key file is read at start: missing or garbled stops the server; both of
// IAP's published forms (JWKS, kid → PEM) work (docs/google-cloud.md §7, IAP key URLs).
func TestIAPKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := newECKey(t)
	pubs := map[string]*ecdsa.PublicKey{testKid: &key.PublicKey}
	files := map[string][]byte{
		"jwks.json":    ecJWKS(t, pubs),
		"pem.json":     ecPEMMap(t, pubs),
		"garbled.json": []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"AAAA","y":"AAAA"}]}`),
		"notjson.json": []byte("-----BEGIN PUBLIC KEY-----"),
		"empty.json":   []byte(`{"keys":[]}`),
		"rsa.json":     rsaJWKS(t, map[string]*rsa.PublicKey{"r": &testRSAKey().PublicKey}),
		"offcurve.json": mustJSON(t, map[string]any{"keys": []map[string]string{{
			"kty": "EC", "crv": "P-256", "kid": "k", "x": b64u(make([]byte, 32)), "y": b64u(append(make([]byte, 31), 7)),
		}}}),
	}
	var one struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(files["jwks.json"], &one); err != nil {
		t.Fatal(err)
	}
	files["duplicate-kid.json"] = []byte(`{"keys":[` + string(one.Keys[0]) + "," + string(one.Keys[0]) + `]}`)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tok := esToken(t, key, mustJSON(t, map[string]string{"alg": "ES256", "kid": testKid}), mustJSON(t, iapClaimsFor(backendAud)))
	for _, tc := range []struct {
		file   string
		wantOK bool
	}{
		{"jwks.json", true}, {"pem.json", true}, {"missing.json", false}, {"garbled.json", false},
		{"notjson.json", false}, {"empty.json", false}, {"rsa.json", false}, {"offcurve.json", false}, {"duplicate-kid.json", false},
	} {
		v, err := NewIAP(IAPConfig{Audiences: []string{backendAud}, KeysFile: filepath.Join(dir, tc.file), Now: fixedNow})
		if (err == nil) != tc.wantOK {
			t.Errorf("%s: NewIAP err = %v, want ok=%t", tc.file, err, tc.wantOK)
			continue
		}
		if err != nil {
			continue
		}
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("%s: Verify: %v", tc.file, err)
		}
	}
}

// identityVariants are addresses that differ from an approver's,
// alice@example.com, only by characters that Unicode folding or trimming
// would remove or map: signed by IAP's key, each is still refused with
// 401, never taken for alice.
var identityVariants = []struct{ name, email string }{
	{"no-break space U+00A0", "alice@example.com\u00a0"},
	{"ideographic space U+3000", "alice@example.com\u3000"},
	{"next line U+0085", "\u0085alice@example.com"},
	{"dotted capital I U+0130", "al\u0130ce@example.com"},
	{"zero-width space U+200B", "alice\u200b@example.com"},
	{"fullwidth at U+FF20", "alice\uff20example.com"},
}

func TestIAPRefusesIdentityVariants(t *testing.T) {
	t.Parallel()
	f := newIAPFixture(t)
	for _, tc := range identityVariants {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/v1/grants", nil)
			r.Header.Set(IAPHeader, f.token(t, with(iapClaimsFor(backendAud), "email", tc.email)))
			if got, err := f.v.Caller(r); err == nil || !errors.Is(err, ErrClaims) {
				t.Errorf("Caller = %q, %v; want a refusal wrapping ErrClaims", got, err)
			}
			if id, err := f.v.Identify(r); err == nil {
				t.Errorf("Identify = %+v, want a refusal", id)
			}
		})
	}
	// The control: the same token with alice's own address passes.
	r := httptest.NewRequest(http.MethodGet, "/v1/grants", nil)
	r.Header.Set(IAPHeader, f.token(t, with(iapClaimsFor(backendAud), "email", "alice@example.com")))
	if got, err := f.v.Caller(r); err != nil || got != "alice@example.com" {
		t.Fatalf("control: Caller = %q, %v", got, err)
	}
}
