// Package token is the project's one JWT verifier: IAP assertions, Google
// ID tokens of service accounts, and the signed envelopes of other systems
// all go through Verifier.Verify.
//
// Signatures and JSON Web Keys are the job of go-jose v4 rather than
// lestrrat-go/jwx v3: its API is small, it parses only compact JWS and
// takes the accepted algorithms as a required argument (no alg confusion,
// no "none"), it is widely used (Kubernetes, Dex) and has few dependencies.
// Around it sits a thin policy of our own, because a general library
// accepts more than Google or our signers ever send, and each liberty is an
// attack surface:
//
//   - one compact JWS of at most Kind.MaxBytes, three segments of strict
//     base64url (no padding, no white space, no stray bits), so one token
//     has one spelling;
//   - header and payload each one JSON object without duplicate or
//     case-variant member names at any depth (package jsonstrict): two
//     readers never see different claims, and "EMAIL" is not "email";
//   - alg exactly one of Kind.Algorithms, a kid, no crit, typ JWT if any;
//     the key the kid names must be of the alg's type (RSA for RS256, P-256
//     for ES256, a secret of at least 32 bytes for HS256), and HS256 is
//     never accepted beside a public-key alg, so a public key can never be
//     used as an HMAC secret;
//     optionally no other header parameter (Kind.OnlyKnownHeaders);
//   - claims read by exact name: iss one of Kind.Issuers, aud exactly one
//     of the audiences asked for (optionally a string only), integer exp
//     and iat (required) and nbf after 1970 and before the year 36812,
//     with Kind.Skew, and optionally a longest lifetime.
//
// Keys come from KeySet, the one cached JWKS fetcher; HS256 secrets, which
// are never published, from their holder through KeysFunc (approval
// links). Where the issuer chooses the keys (signed envelopes), Peek reads
// iss before any key is fetched.
package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jitpipeline/jit/internal/jsonstrict"
)

// DefaultMaxBytes bounds a token before any decoding: IAP assertions and
// Google ID tokens are about 1 KiB.
const DefaultMaxBytes = 8 << 10

// MinSecretBytes is the shortest HS256 secret accepted: RFC 7518 §3.2
// requires a key at least as long as the hash output.
const MinSecretBytes = 32

// Refusals, wrapped with detail; test with errors.Is. Messages never
// contain the token.
var (
	ErrMissing     = errors.New("missing token")
	ErrMalformed   = errors.New("malformed token")
	ErrUnsigned    = errors.New("token not signed")
	ErrAlgorithm   = errors.New("token algorithm not accepted")
	ErrUnknownKey  = errors.New("token signed with an unknown key")
	ErrSignature   = errors.New("token signature invalid")
	ErrIssuer      = errors.New("token issuer not accepted")
	ErrAudience    = errors.New("token audience not accepted")
	ErrExpired     = errors.New("token expired")
	ErrNotYetValid = errors.New("token not yet valid")
	ErrTooLong     = errors.New("token lives too long")
	ErrClaims      = errors.New("token claims incomplete")
	// ErrKeysUnusable: the keys could not be had (fetch failed, or the
	// set did not parse); ErrNoKeys: the key server says the issuer has
	// none (HTTP 404). The first may pass; the second is an answer.
	ErrKeysUnusable = errors.New("verification keys unavailable")
	ErrNoKeys       = errors.New("issuer has no published keys")
	// ErrKeysInvalid is wrapped, with ErrKeysUnusable, when a key set was
	// had but did not parse: the publisher's answer, not an outage.
	ErrKeysInvalid = errors.New("published key set unusable")
)

// ExpiredError is the ErrExpired of a token whose signature and other
// claims were good: At is its exp, which the caller may show ("this link
// expired at …") because it was signed.
type ExpiredError struct{ At time.Time }

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("%s: at %s", ErrExpired, e.At.Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrExpired) hold.
func (e *ExpiredError) Unwrap() error { return ErrExpired }

// maxTime bounds exp, iat and nbf (seconds; the year 36812), far from
// overflow in any arithmetic on them.
const maxTime = 1 << 40

// Kind is the policy for one kind of token.
type Kind struct {
	// Name names the kind in messages ("IAP assertion").
	Name string
	// Algorithms are the accepted alg values: ES256 for IAP, RS256 for
	// Google ID tokens and envelopes, HS256 (alone) for tokens we sign
	// and verify ourselves with a shared secret. Required.
	Algorithms []jose.SignatureAlgorithm
	// Issuers are the accepted iss values. Required.
	Issuers []string
	// Skew is the clock skew allowed on exp, iat and nbf.
	Skew time.Duration
	// MaxLifetime, if set, bounds exp - iat (ErrTooLong).
	MaxLifetime time.Duration
	// MaxBytes bounds the token; default DefaultMaxBytes.
	MaxBytes int
	// OnlyKnownHeaders refuses header parameters other than alg, kid and
	// typ, and a typ other than exactly "JWT" (what signJwt writes), so
	// no jku, jwk or x5u can even be offered. Otherwise unknown
	// parameters are ignored (but crit is refused) and typ may be any
	// case of "JWT".
	OnlyKnownHeaders bool
	// StringAudience refuses an aud that is an array (RFC 7519 allows
	// both; envelope signers send a string).
	StringAudience bool
}

// Validate reports every problem with the policy at once.
func (k Kind) Validate() error {
	var errs []error
	if len(k.Algorithms) == 0 {
		errs = append(errs, errors.New("Algorithms is required"))
	}
	for _, a := range k.Algorithms {
		if a != jose.RS256 && a != jose.ES256 && a != jose.HS256 {
			errs = append(errs, fmt.Errorf("algorithm %s is not one this project verifies (RS256, ES256, HS256)", a))
		}
	}
	if slices.Contains(k.Algorithms, jose.HS256) && slices.ContainsFunc(k.Algorithms, func(a jose.SignatureAlgorithm) bool { return a != jose.HS256 }) {
		// The classic confusion: a verifier that takes both would check
		// an HS256 token against a public key's bytes, which anyone has.
		errs = append(errs, errors.New("HS256 may not be accepted beside another algorithm"))
	}
	if len(k.Issuers) == 0 || slices.Contains(k.Issuers, "") {
		errs = append(errs, errors.New("Issuers is required and may not hold an empty issuer"))
	}
	if k.Skew < 0 || k.MaxLifetime < 0 || k.MaxBytes < 0 {
		errs = append(errs, errors.New("Skew, MaxLifetime and MaxBytes must not be negative"))
	}
	return errors.Join(errs...)
}

// Keys finds verification keys by key id.
type Keys interface {
	// Key returns the key with id kid (*rsa.PublicKey, *ecdsa.PublicKey,
	// or a []byte HMAC secret), or an error wrapping ErrUnknownKey,
	// ErrKeysUnusable or ErrNoKeys (an unknown kid whose refetch failed:
	// ErrUnknownKey and the fetch's error).
	Key(ctx context.Context, kid string) (any, error)
}

// KeysFunc adapts a function to Keys: the key source of tokens whose keys
// are not a JWKS (HS256 secrets the verifier holds itself).
type KeysFunc func(ctx context.Context, kid string) (any, error)

// Key calls f.
func (f KeysFunc) Key(ctx context.Context, kid string) (any, error) { return f(ctx, kid) }

// Verifier checks tokens of one kind against one key set.
type Verifier struct {
	kind Kind
	keys Keys
	now  func() time.Time
}

// New returns a verifier; now nil means time.Now.
func New(kind Kind, keys Keys, now func() time.Time) (*Verifier, error) {
	if err := kind.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %s policy: %w", kind.Name, err)
	}
	if keys == nil {
		return nil, fmt.Errorf("invalid %s policy: Keys is required", kind.Name)
	}
	if kind.MaxBytes == 0 {
		kind.MaxBytes = DefaultMaxBytes
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{kind: kind, keys: keys, now: now}, nil
}

// Token is a verified token: its registered claims, checked, and access to
// the others by exact name.
type Token struct {
	Alg, Kid  string
	Issuer    string
	Subject   string
	Audience  string // the accepted audience that matched
	IssuedAt  time.Time
	Expires   time.Time
	NotBefore time.Time // zero without nbf
	claims    map[string]json.RawMessage
}

// Claim decodes the claim of exactly this name into v; false if absent. A
// claim of the wrong type is ErrMalformed.
func (t *Token) Claim(name string, v any) (bool, error) {
	raw, ok := t.claims[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("%w: claim %s: %w", ErrMalformed, name, err)
	}
	return true, nil
}

// Raw is the claim of exactly this name as JSON, or false.
func (t *Token) Raw(name string) (json.RawMessage, bool) {
	raw, ok := t.claims[name]
	return raw, ok
}

// Verify checks raw under the verifier's policy, the audience being
// exactly one of audiences, and returns its claims.
func (v *Verifier) Verify(ctx context.Context, raw string, audiences ...string) (*Token, error) {
	if len(audiences) == 0 || slices.Contains(audiences, "") {
		return nil, fmt.Errorf("%w: no audience to check against", ErrAudience)
	}
	p, err := parse(raw, v.kind)
	if err != nil {
		return nil, err
	}
	key, err := v.keys.Key(ctx, p.kid)
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if p.alg != string(jose.RS256) {
			return nil, fmt.Errorf("%w: key %.40q is an RSA key, the token says %s", ErrUnknownKey, p.kid, p.alg)
		}
	case *ecdsa.PublicKey:
		if p.alg != string(jose.ES256) {
			return nil, fmt.Errorf("%w: key %.40q is an EC key, the token says %s", ErrUnknownKey, p.kid, p.alg)
		}
	case []byte:
		if p.alg != string(jose.HS256) {
			return nil, fmt.Errorf("%w: key %.40q is a secret key, the token says %s", ErrUnknownKey, p.kid, p.alg)
		}
		if len(k) < MinSecretBytes {
			return nil, fmt.Errorf("%w: key %.40q is a secret of %d bytes, fewer than %d", ErrUnknownKey, p.kid, len(k), MinSecretBytes)
		}
	default:
		return nil, fmt.Errorf("%w: key %.40q is of no usable type", ErrUnknownKey, p.kid)
	}
	jws, err := jose.ParseSignedCompact(raw, v.kind.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, ErrSignature
	}
	if string(payload) != string(p.payload) {
		return nil, fmt.Errorf("%w: the verified payload is not the parsed one", ErrMalformed)
	}
	return p.check(v.kind, audiences, v.now())
}

// Unverified is a token checked for form but not verified: what a caller
// may read before it knows whose keys to use (an envelope's iss). Nothing
// read from it is to be trusted.
type Unverified struct{ p *parsed }

// Peek parses raw under kind's form rules (size, encoding, strict JSON,
// header) without verifying it; its errors are those Verify would return
// for the same form.
func Peek(raw string, kind Kind) (*Unverified, error) {
	if kind.MaxBytes == 0 {
		kind.MaxBytes = DefaultMaxBytes
	}
	p, err := parse(raw, kind)
	if err != nil {
		return nil, err
	}
	return &Unverified{p: p}, nil
}

// String is the unverified string claim of exactly this name, or "" if it
// is absent or not a string.
func (u *Unverified) String(name string) string {
	var s string
	if raw, ok := u.p.claims[name]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// parsed is a token split, decoded and checked for form.
type parsed struct {
	alg, kid string
	payload  []byte
	claims   map[string]json.RawMessage
}

var b64 = base64.RawURLEncoding.Strict()

func parse(raw string, kind Kind) (*parsed, error) {
	if raw == "" {
		return nil, ErrMissing
	}
	if len(raw) > kind.MaxBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, kind.MaxBytes)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: %d segments, want 3", ErrMalformed, len(parts))
	}
	var seg [3][]byte
	for i, s := range parts {
		if s == "" {
			if i == 2 {
				return nil, fmt.Errorf("%w: %w: the signature is empty", ErrMalformed, ErrUnsigned)
			}
			return nil, fmt.Errorf("%w: segment %d is empty", ErrMalformed, i+1)
		}
		if j := strings.IndexFunc(s, notBase64URL); j >= 0 {
			return nil, fmt.Errorf("%w: segment %d: byte %d is not base64url", ErrMalformed, i+1, j)
		}
		b, err := b64.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: segment %d: %w", ErrMalformed, i+1, err)
		}
		seg[i] = b
	}
	var header map[string]json.RawMessage
	if err := jsonstrict.Unmarshal(seg[0], &header); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	p := &parsed{payload: seg[1]}
	if err := p.checkHeader(header, kind); err != nil {
		return nil, err
	}
	if err := jsonstrict.Unmarshal(seg[1], &p.claims); err != nil || p.claims == nil {
		return nil, fmt.Errorf("%w: payload is not one strict JSON object: %w", ErrMalformed, err)
	}
	return p, nil
}

func notBase64URL(r rune) bool {
	return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_'
}

func (p *parsed) checkHeader(h map[string]json.RawMessage, kind Kind) error {
	str := func(name string) (string, bool, error) {
		raw, ok := h[name]
		if !ok {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", true, fmt.Errorf("%w: header %s is not a string", ErrMalformed, name)
		}
		return s, true, nil
	}
	alg, hasAlg, err := str("alg")
	switch {
	case err != nil:
		return err
	case !hasAlg || alg == "":
		// RFC 7515 §4.1.1: alg is required, so this is malformed too.
		return fmt.Errorf("%w: %w: no alg", ErrAlgorithm, ErrMalformed)
	case strings.EqualFold(alg, "none"):
		return fmt.Errorf("%w: %w: alg %.20q", ErrAlgorithm, ErrUnsigned, alg)
	case !slices.Contains(kind.Algorithms, jose.SignatureAlgorithm(alg)):
		return fmt.Errorf("%w: alg %.20q, want one of %v", ErrAlgorithm, alg, kind.Algorithms)
	}
	if _, ok := h["crit"]; ok {
		return fmt.Errorf("%w: header has crit extensions", ErrMalformed)
	}
	if kind.OnlyKnownHeaders {
		for name := range h {
			if name != "alg" && name != "kid" && name != "typ" {
				return fmt.Errorf("%w: header parameter %.40q is not accepted", ErrMalformed, name)
			}
		}
	}
	typ, hasTyp, err := str("typ")
	switch {
	case err != nil:
		return err
	case hasTyp && kind.OnlyKnownHeaders && typ != "JWT", hasTyp && !strings.EqualFold(typ, "JWT"):
		return fmt.Errorf("%w: typ %.20q", ErrMalformed, typ)
	}
	kid, _, err := str("kid")
	if err != nil {
		return err
	}
	if kid == "" {
		return fmt.Errorf("%w: %w: no kid", ErrUnknownKey, ErrMalformed)
	}
	p.alg, p.kid = alg, kid
	return nil
}

// check verifies the registered claims.
func (p *parsed) check(kind Kind, audiences []string, now time.Time) (*Token, error) {
	t := &Token{Alg: p.alg, Kid: p.kid, claims: p.claims}
	if _, err := t.Claim("iss", &t.Issuer); err != nil {
		return nil, err
	}
	if !slices.Contains(kind.Issuers, t.Issuer) {
		return nil, fmt.Errorf("%w: %.80q", ErrIssuer, t.Issuer)
	}
	if _, err := t.Claim("sub", &t.Subject); err != nil {
		return nil, err
	}
	aud, err := audienceOf(p.claims["aud"], kind.StringAudience)
	if err != nil {
		return nil, err
	}
	for _, a := range aud {
		if a != "" && slices.Contains(audiences, a) {
			t.Audience = a
			break
		}
	}
	if t.Audience == "" {
		return nil, fmt.Errorf("%w: %.200q, want one of %q", ErrAudience, aud, audiences)
	}
	var exp, iat, nbf int64
	hasExp, errExp := t.Claim("exp", &exp)
	hasIAT, errIAT := t.Claim("iat", &iat)
	hasNBF, errNBF := t.Claim("nbf", &nbf)
	if err := errors.Join(errExp, errIAT, errNBF); err != nil {
		return nil, err
	}
	if !hasExp || !hasIAT {
		return nil, fmt.Errorf("%w: exp and iat are required", ErrClaims)
	}
	if iat <= 0 || exp > maxTime || hasNBF && (nbf <= 0 || nbf > maxTime) {
		return nil, fmt.Errorf("%w: exp, iat and nbf must be seconds after 1970 and before the year 36812", ErrClaims)
	}
	sk, n := int64(kind.Skew/time.Second), now.Unix()
	if exp <= iat {
		// Incomplete claims, and expired too when it is: callers that
		// rank form first and those that rank time first both see theirs.
		if exp <= n-sk {
			return nil, fmt.Errorf("%w: %w: exp not after iat", ErrClaims, ErrExpired)
		}
		return nil, fmt.Errorf("%w: exp not after iat", ErrClaims)
	}
	switch {
	case exp <= n-sk:
		return nil, &ExpiredError{At: time.Unix(exp, 0).UTC()}
	case iat > n+sk:
		return nil, fmt.Errorf("%w: issued at %s", ErrNotYetValid, time.Unix(iat, 0).UTC().Format(time.RFC3339))
	case hasNBF && nbf > n+sk:
		return nil, fmt.Errorf("%w: not before %s", ErrNotYetValid, time.Unix(nbf, 0).UTC().Format(time.RFC3339))
	case kind.MaxLifetime > 0 && exp-iat > int64(kind.MaxLifetime/time.Second):
		return nil, fmt.Errorf("%w: lives %d s, more than %s", ErrTooLong, exp-iat, kind.MaxLifetime)
	}
	t.Expires, t.IssuedAt = time.Unix(exp, 0).UTC(), time.Unix(iat, 0).UTC()
	if hasNBF {
		t.NotBefore = time.Unix(nbf, 0).UTC()
	}
	return t, nil
}

// audienceOf reads aud: a string, or an array of strings (RFC 7519
// §4.1.3) unless only a string is accepted.
func audienceOf(raw json.RawMessage, stringOnly bool) ([]string, error) {
	if raw == nil {
		return nil, fmt.Errorf("%w: no aud", ErrAudience)
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if stringOnly {
		return nil, fmt.Errorf("%w: aud is not a string", ErrAudience)
	}
	if json.Unmarshal(raw, &many) != nil {
		return nil, fmt.Errorf("%w: aud is neither a string nor an array of strings", ErrAudience)
	}
	return many, nil
}
