// Package localoidc stands in for Google's token service in the embedded
// Google Cloud: it mints Google-style OIDC ID tokens (RS256, issuer
// https://accounts.google.com, email and email_verified claims) for the
// service accounts that Cloud Tasks and Workflows call as, and publishes the
// public key as a JWKS in the format of https://www.googleapis.com/oauth2/v3/certs
// so receivers verify local tokens with the same code as real ones.
//
// The key is created once and kept in the data directory, so tokens issued
// before a restart still verify after it.
package localoidc

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
)

// Issuer is the issuer of Google-signed ID tokens (docs/google-cloud.md §7).
const Issuer = "https://accounts.google.com"

// TokenLifetime is how long minted tokens are valid, as for Google's.
const TokenLifetime = time.Hour

// Signer mints ID tokens with one RSA key, and issues opaque OAuth 2.0
// access tokens. It does not verify: receivers use package auth with
// JWKS(), the code that verifies Google's tokens in production.
type Signer struct {
	key *rsa.PrivateKey
	kid string
	now func() time.Time

	mu     sync.Mutex
	access map[string]accessGrant // by token
	ids    map[[2]string]cachedID // by (email, audience)
}

// cachedID is an ID token minted earlier, reused until near its expiry.
type cachedID struct {
	token   string
	expires time.Time
}

// idReuseMargin: an ID token is reused until this long before it
// expires, as Google's clients reuse theirs (oauth2.ReuseTokenSource
// under google.golang.org/api/idtoken, which refreshes 10 s early; the
// wider margin here leaves any receiver's clock skew allowance untouched).
// An RSA signature costs about a millisecond of CPU, and every push,
// task and callback needs a token.
const idReuseMargin = 5 * time.Minute

// accessGrant is what an access token stands for.
type accessGrant struct {
	email   string
	expires time.Time
}

// Open loads the signing key from dir/oidc-key.pem, creating it on first use.
// An empty dir gives an ephemeral key (tests).
func Open(dir string) (*Signer, error) {
	if dir == "" {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("failed to generate key: %w", err)
		}
		return newSigner(key), nil
	}
	path := filepath.Join(dir, "oidc-key.pem")
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("failed to generate key: %w", err)
		}
		der := x509.MarshalPKCS1PrivateKey(key)
		if err := durable.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
		return newSigner(key), nil
	case err != nil:
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return newSigner(key), nil
}

func newSigner(key *rsa.PrivateKey) *Signer {
	sum := sha256.Sum256(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	return &Signer{key: key, kid: fmt.Sprintf("%x", sum[:10]), now: time.Now, access: map[string]accessGrant{}}
}

// Claims are the claims of a Google ID token that receivers check.
type Claims struct {
	Issuer        string `json:"iss"`
	Audience      string `json:"aud"`
	AuthorizedBy  string `json:"azp,omitempty"`
	Subject       string `json:"sub"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	IssuedAt      int64  `json:"iat"`
	Expires       int64  `json:"exp"`
}

// IDToken mints a token for the service account email, for audience.
func (s *Signer) IDToken(email, audience string) (string, error) {
	if email == "" || audience == "" {
		return "", errors.New("localoidc: email and audience are required")
	}
	now := s.now()
	key := [2]string{email, audience}
	s.mu.Lock()
	c, ok := s.ids[key]
	s.mu.Unlock()
	if ok && now.Before(c.expires.Add(-idReuseMargin)) && !now.Before(c.expires.Add(-TokenLifetime)) {
		return c.token, nil
	}
	sub := sha256.Sum256([]byte(email))
	tok, err := s.Sign(Claims{
		Issuer:        Issuer,
		Audience:      audience,
		AuthorizedBy:  email,
		Subject:       new(big.Int).SetBytes(sub[:9]).String(), // numeric, like Google's
		Email:         email,
		EmailVerified: true,
		IssuedAt:      now.Unix(),
		Expires:       now.Add(TokenLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.ids == nil {
		s.ids = map[[2]string]cachedID{}
	}
	s.ids[key] = cachedID{token: tok, expires: time.Unix(now.Add(TokenLifetime).Unix(), 0)}
	s.mu.Unlock()
	return tok, nil
}

// Sign signs arbitrary claims with the key (RS256).
func (s *Signer) Sign(claims any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "kid": s.kid, "typ": "JWT"})
	if err != nil {
		return "", fmt.Errorf("failed to encode header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("failed to encode claims: %w", err)
	}
	signing := b64(header) + "." + b64(payload)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("failed to sign: %w", err)
	}
	return signing + "." + b64(sig), nil
}

// AccessTokenPrefix starts every local access token; Google's start "ya29.".
const AccessTokenPrefix = "ya29.local." //nolint:gosec // G101: a prefix, not a credential

// AccessToken issues an OAuth 2.0 access token for the service account
// email, valid for TokenLifetime. Like Google's, it is opaque: a bearer of
// the string, not a JWT, so an API that wants an access token can tell an
// ID token apart (docs/google-cloud.md §7). Tokens live in memory; after a restart
// callers get new ones, as they refresh Google's.
func (s *Signer) AccessToken(email string) (string, error) {
	if email == "" {
		return "", errors.New("localoidc: email is required")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("localoidc: %w", err)
	}
	tok := AccessTokenPrefix + b64(raw)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, g := range s.access {
		if !now.Before(g.expires) {
			delete(s.access, t)
		}
	}
	s.access[tok] = accessGrant{email: email, expires: now.Add(TokenLifetime)}
	return tok, nil
}

// LookupAccessToken answers what Google's tokeninfo answers for an access
// token: the email it was issued to, or ok false for an unknown or expired
// token (an ID token is unknown here).
func (s *Signer) LookupAccessToken(tok string) (email string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, found := s.access[tok]
	if !found || !s.now().Before(g.expires) {
		return "", false
	}
	return g.email, true
}

// JWKS is the public key set, in the JSON form Google serves at
// https://www.googleapis.com/oauth2/v3/certs.
func (s *Signer) JWKS() []byte {
	pub := s.key.PublicKey
	data, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": s.kid,
		"n": b64(pub.N.Bytes()),
		"e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	return data
}

// ServeHTTP serves the JWKS, so that a verifier can be pointed at this
// signer instead of Google's certificate URL.
func (s *Signer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.JWKS()) //nolint:errcheck // the client sees a short body
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
