package envelope

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/jitpipeline/jit/internal/jsonstrict"
)

// b64 is strict unpadded base64url: non-canonical encodings (stray bits in
// the last character) are refused, so one signature has one spelling.
var b64 = base64.RawURLEncoding.Strict()

// token is a parsed, not yet verified, compact JWS.
type token struct {
	kid     string
	signing string // header.payload, the signed bytes
	sig     []byte
	claims  map[string]json.RawMessage
}

// parseToken splits and decodes a compact JWS, refusing anything but the
// header signJwt writes: alg RS256, a kid, and optionally typ JWT.
func parseToken(raw string) (*token, error) {
	if len(raw) > MaxToken {
		return nil, refuse(ReasonMalformed, "", "the token is longer than %d bytes", MaxToken)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, refuse(ReasonMalformed, "", "a compact JWS has 3 segments, not %d", len(parts))
	}
	rawHeader, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, refuse(ReasonMalformed, "", "header is not base64url: %v", err)
	}
	header, err := parseObject(rawHeader)
	if err != nil {
		return nil, refuse(ReasonMalformed, "", "header: %v", err)
	}
	for name := range header {
		if name != "alg" && name != "kid" && name != "typ" {
			return nil, refuse(ReasonMalformed, "", "header parameter %s is not accepted", quote(name))
		}
	}
	alg, err := stringMember(header, "alg")
	switch {
	case err != nil || alg == "":
		return nil, refuse(ReasonMalformed, "", "header alg is required and must be a string")
	case strings.EqualFold(alg, "none"):
		return nil, refuse(ReasonUnsigned, "", "alg %s: the token is not signed", quote(alg))
	case alg != "RS256":
		return nil, refuse(ReasonBadSignature, "", "alg %s is not RS256", quote(alg))
	}
	if typ, ok := header["typ"]; ok {
		var s string
		if jsonstrict.Unmarshal(typ, &s) != nil || s != "JWT" {
			return nil, refuse(ReasonMalformed, "", "header typ must be \"JWT\"")
		}
	}
	kid, err := stringMember(header, "kid")
	if err != nil || kid == "" {
		return nil, refuse(ReasonMalformed, "", "header kid is required")
	}
	rawClaims, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, refuse(ReasonMalformed, "", "claims are not base64url: %v", err)
	}
	claims, err := parseObject(rawClaims)
	if err != nil {
		return nil, refuse(ReasonMalformed, "", "claims: %v", err)
	}
	if parts[2] == "" {
		return nil, refuse(ReasonUnsigned, "", "the signature is empty")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, refuse(ReasonMalformed, "", "signature is not base64url: %v", err)
	}
	return &token{kid: kid, signing: parts[0] + "." + parts[1], sig: sig, claims: claims}, nil
}

// verify checks the RS256 signature with key.
func (t *token) verify(key *rsa.PublicKey) bool {
	digest := sha256.Sum256([]byte(t.signing))
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], t.sig) == nil
}

// parseObject decodes one JSON object into its members by exact name,
// strictly (package jsonstrict): duplicate names, names that differ only
// in case, at any depth, and trailing data are refused. encoding/json
// would keep the last duplicate and match names case-insensitively, which
// lets two parsers read different claims from one signed token.
func parseObject(data []byte) (map[string]json.RawMessage, error) {
	var members map[string]json.RawMessage
	if err := jsonstrict.Unmarshal(data, &members); err != nil {
		return nil, err
	}
	if members == nil {
		return nil, errors.New("not a JSON object")
	}
	return members, nil
}

// stringMember reads a member that must be a JSON string, if present.
func stringMember(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := jsonstrict.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s must be a string", name)
	}
	return s, nil
}

// intMember reads a member that must be an integer (JWT NumericDate as
// signJwt requires it), and reports whether it was present.
func intMember(m map[string]json.RawMessage, name string) (int64, bool, error) {
	raw, ok := m[name]
	if !ok {
		return 0, false, nil
	}
	var n int64
	if err := jsonstrict.Unmarshal(raw, &n); err != nil {
		return 0, true, fmt.Errorf("%s must be an integer number of seconds", name)
	}
	return n, true, nil
}

// parseJWKS reads the RSA signing keys of a JWKS by kid. Keys that are not
// RSA, declare another alg or use, or are weaker than 2048 bits are skipped:
// such a key can never verify an envelope.
func parseJWKS(data []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Alg string `json:"alg"`
			Use string `json:"use"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("failed to parse JWKS: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Alg != "" && k.Alg != "RS256") || (k.Use != "" && k.Use != "sig") {
			continue
		}
		n, errN := base64.RawURLEncoding.DecodeString(k.N)
		e, errE := base64.RawURLEncoding.DecodeString(k.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if bits := key.N.BitLen(); bits < 2048 || bits > 8192 || key.E < 3 || key.E%2 == 0 {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			// Two keys under one kid: refuse the kid rather than guess.
			keys[k.Kid] = nil
			continue
		}
		keys[k.Kid] = key
	}
	return keys, nil
}

// quote quotes an attacker-supplied value for a refusal's detail, cut short
// so a log line stays small.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}
