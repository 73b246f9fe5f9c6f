package auth

// This file: the strict JWT (JWS compact) parsing shared by the IAP and
// Google ID token verifiers. It is written here rather than borrowed because
// a general JWT library accepts more than either issuer ever sends (other
// algorithms, padding, whitespace, duplicate keys), and every such liberty is
// an attack surface: alg confusion, "none", malleable encodings.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// MaxTokenBytes bounds a token before any decoding. IAP assertions and
// Google ID tokens are about 1 KiB; 8 KiB leaves room and stops a caller
// from making us decode megabytes of JSON.
const MaxTokenBytes = 8 << 10

// Errors returned by the verifiers, wrapped with detail; test with errors.Is.
// Messages never contain the token.
var (
	ErrMissing      = errors.New("missing token")
	ErrMalformed    = errors.New("malformed token")
	ErrAlgorithm    = errors.New("token algorithm not accepted")
	ErrUnknownKey   = errors.New("token signed with an unknown key")
	ErrSignature    = errors.New("token signature invalid")
	ErrIssuer       = errors.New("token issuer not accepted")
	ErrAudience     = errors.New("token audience not accepted")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not yet valid")
	ErrClaims       = errors.New("token claims incomplete")
	ErrKeysUnusable = errors.New("verification keys unavailable")
)

// jwsHeader is the protected header. Unknown members are ignored, except
// crit, which by RFC 7515 §4.1.11 obliges us to refuse what we don't know.
type jwsHeader struct {
	Alg  *string         `json:"alg"`
	Kid  *string         `json:"kid"`
	Typ  *string         `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// rawToken is a token split and decoded, not yet verified.
type rawToken struct {
	header  jwsHeader
	payload []byte // JSON object, duplicate-free
	signed  []byte // "header.payload", the signing input
	sig     []byte
}

// parseToken splits and decodes a compact JWS, insisting on exactly the
// algorithm alg and a kid. It checks form only, not the signature.
func parseToken(token, alg string) (*rawToken, error) {
	if token == "" {
		return nil, ErrMissing
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: %d segments, want 3", ErrMalformed, len(parts))
	}
	var seg [3][]byte
	for i, p := range parts {
		b, err := decodeSegment(p)
		if err != nil {
			return nil, fmt.Errorf("%w: segment %d: %w", ErrMalformed, i+1, err)
		}
		seg[i] = b
	}
	if err := checkObject(seg[0]); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	var h jwsHeader
	if err := json.Unmarshal(seg[0], &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	switch {
	case h.Alg == nil:
		return nil, fmt.Errorf("%w: no alg", ErrAlgorithm)
	case *h.Alg != alg:
		return nil, fmt.Errorf("%w: alg %.20q, want %s", ErrAlgorithm, *h.Alg, alg)
	case h.Crit != nil:
		return nil, fmt.Errorf("%w: header has crit extensions", ErrMalformed)
	case h.Typ != nil && !strings.EqualFold(*h.Typ, "JWT"):
		return nil, fmt.Errorf("%w: typ %.20q", ErrMalformed, *h.Typ)
	case h.Kid == nil || *h.Kid == "":
		return nil, fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	if err := checkObject(seg[1]); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	return &rawToken{header: h, payload: seg[1], signed: []byte(parts[0] + "." + parts[1]), sig: seg[2]}, nil
}

// decodeSegment decodes base64url without padding, strictly: Go's decoder
// silently skips CR and LF, and without Strict accepts non-zero trailing
// bits, both of which make one token spellable many ways.
func decodeSegment(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("byte %d is not base64url", i)
		}
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// checkObject accepts a single JSON object with no duplicate member names
// at any depth and nothing after it. encoding/json keeps the last of
// duplicate names; another parser may keep the first, and that difference
// is how claims get smuggled past one of two readers.
func checkObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	// A stack of the member names seen in each open object; nil for arrays.
	stack := []map[string]bool{{}}
	expectKey := true
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		top := stack[len(stack)-1]
		if top != nil && expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				expectKey = len(stack) > 0 && stack[len(stack)-1] != nil
				continue
			}
			name, ok := tok.(string)
			if !ok {
				return errors.New("object member without a name")
			}
			if top[name] {
				return fmt.Errorf("duplicate member %.40q", name)
			}
			top[name] = true
			expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, map[string]bool{})
			expectKey = true
			continue
		case json.Delim('['):
			stack = append(stack, nil)
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object, a name comes next.
		expectKey = len(stack) > 0 && stack[len(stack)-1] != nil
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// verifyES256 checks a JWS ES256 signature: 64 bytes, R||S big-endian
// (RFC 7518 §3.4), not the DER form crypto/ecdsa produces by default.
func verifyES256(key *ecdsa.PublicKey, signed, sig []byte) error {
	if len(sig) != 64 {
		return fmt.Errorf("%w: %d bytes, want 64", ErrSignature, len(sig))
	}
	digest := sha256.Sum256(signed)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(key, digest[:], r, s) {
		return ErrSignature
	}
	return nil
}

// verifyRS256 checks an RSASSA-PKCS1-v1_5 SHA-256 signature.
func verifyRS256(key *rsa.PublicKey, signed, sig []byte) error {
	digest := sha256.Sum256(signed)
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return ErrSignature
	}
	return nil
}

// stdClaims are the registered claims both verifiers check. Times are
// integer seconds; a fractional or string time fails decoding.
type stdClaims struct {
	Issuer    string   `json:"iss"`
	Audience  audience `json:"aud"`
	Subject   string   `json:"sub"`
	Expires   *int64   `json:"exp"`
	IssuedAt  *int64   `json:"iat"`
	NotBefore *int64   `json:"nbf"`
}

// audience is the aud claim: a string, or an array of strings (RFC 7519
// §4.1.3). Google and IAP send a string.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// check verifies the registered claims: issuer in issuers, an audience in
// wants (exact), exp in the future and iat and nbf not in the future, each
// with skew. It returns the audience that matched.
func (c *stdClaims) check(issuers, wants []string, now time.Time, skew time.Duration) (string, error) {
	if !contains(issuers, c.Issuer) {
		return "", fmt.Errorf("%w: %.80q", ErrIssuer, c.Issuer)
	}
	matched := ""
	for _, a := range c.Audience {
		if a != "" && contains(wants, a) {
			matched = a
			break
		}
	}
	if matched == "" {
		return "", fmt.Errorf("%w: %.200q, want one of %q", ErrAudience, []string(c.Audience), wants)
	}
	if c.Expires == nil || c.IssuedAt == nil {
		return "", fmt.Errorf("%w: exp and iat are required", ErrClaims)
	}
	sk := int64(skew / time.Second)
	t := now.Unix()
	switch {
	case *c.Expires <= t-sk:
		return "", fmt.Errorf("%w: at %s", ErrExpired, time.Unix(*c.Expires, 0).UTC().Format(time.RFC3339))
	case *c.IssuedAt > t+sk:
		return "", fmt.Errorf("%w: issued at %s", ErrNotYetValid, time.Unix(*c.IssuedAt, 0).UTC().Format(time.RFC3339))
	case c.NotBefore != nil && *c.NotBefore > t+sk:
		return "", fmt.Errorf("%w: not before %s", ErrNotYetValid, time.Unix(*c.NotBefore, 0).UTC().Format(time.RFC3339))
	case *c.Expires <= *c.IssuedAt:
		return "", fmt.Errorf("%w: exp not after iat", ErrClaims)
	}
	return matched, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// verifySigned is the part both verifiers share: the strict parse for one
// algorithm, the key named by kid (which must be of type K), the signature,
// and the claims decoded into claims. The claims' meaning is the caller's.
func verifySigned[K crypto.PublicKey](ctx context.Context, keys *keySource, token, alg string, verify func(K, []byte, []byte) error, claims any) error {
	tok, err := parseToken(token, alg)
	if err != nil {
		return err
	}
	key, err := keys.key(ctx, *tok.header.Kid)
	if err != nil {
		return err
	}
	k, ok := key.(K)
	if !ok {
		return fmt.Errorf("%w: key is not usable for %s", ErrUnknownKey, alg)
	}
	if err := verify(k, tok.signed, tok.sig); err != nil {
		return err
	}
	if err := json.Unmarshal(tok.payload, claims); err != nil {
		return fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	return nil
}
