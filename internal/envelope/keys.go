package envelope

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/token"
)

// TrustSet is a Trusted function for a fixed set of service accounts
// (compared in lower case), until the policy supplies the list.
func TrustSet(emails ...string) func(string) bool {
	set := make(map[string]bool, len(emails))
	for _, e := range emails {
		set[emailaddr.Key(e)] = true
	}
	return func(email string) bool { return set[emailaddr.Key(email)] }
}

// StaticKeys is a KeySource of fixed JWKS per issuer (lower-case email):
// tests, and the local pipeline with localoidc.Signer.JWKS(). A set is
// parsed each time it is asked for; it is not for production traffic.
type StaticKeys map[string][]byte

// KeySet returns the issuer's keys, or ErrUnknownIssuer.
func (s StaticKeys) KeySet(_ context.Context, issuer string) (token.Keys, error) {
	return fixedKeys(issuer, s[emailaddr.Key(issuer)])
}

// JWKSFunc is a KeySource from a function that returns an issuer's fixed
// JWKS, or an error wrapping ErrUnknownIssuer.
type JWKSFunc func(ctx context.Context, issuer string) ([]byte, error)

// KeySet returns the keys of the JWKS f gives for the issuer.
func (f JWKSFunc) KeySet(ctx context.Context, issuer string) (token.Keys, error) {
	jwks, err := f(ctx, issuer)
	if err != nil {
		return nil, err
	}
	return fixedKeys(issuer, jwks)
}

func fixedKeys(issuer string, jwks []byte) (token.Keys, error) {
	if len(jwks) == 0 {
		return nil, fmt.Errorf("%s: %w", issuer, ErrUnknownIssuer)
	}
	keys, err := token.NewKeySet(token.KeySetConfig{KeysJSON: jwks, Algorithms: rs256}, nil)
	if err != nil {
		return nil, fmt.Errorf("the keys of %s: %w", issuer, err) // wraps token.ErrKeysInvalid
	}
	return keys, nil
}

// GoogleJWKURL is where Google publishes a service account's public keys
// as a JWKS, followed by the email (signJwt reference, keyId field).
const GoogleJWKURL = "https://www.googleapis.com/service_accounts/v1/metadata/jwk/"

// GoogleKeys is a KeySource for Google service accounts: one token.KeySet
// per issuer, at BaseURL+email, which caches per Cache-Control max-age
// and refetches when a kid is not in the cached set, at most once per
// MinRefresh, so garbage kids cannot make it hammer Google. Issuers come
// only after the trust check, so the sets are as many as trusted signers.
type GoogleKeys struct {
	Client     *http.Client     // nil means a client with token.FetchTimeout
	BaseURL    string           // "" means GoogleJWKURL
	TTL        time.Duration    // how long keys are kept without max-age; 0 means 1 h
	MinRefresh time.Duration    // least time between fetches per issuer; 0 means 30 s
	Now        func() time.Time // nil means time.Now

	mu   sync.Mutex
	sets map[string]*token.KeySet
}

// KeySet returns the issuer's key set, made on first use; it fetches
// nothing itself.
func (g *GoogleKeys) KeySet(_ context.Context, issuer string) (token.Keys, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.sets[issuer]; ok {
		return s, nil
	}
	s, err := token.NewKeySet(token.KeySetConfig{
		KeysURL:          cmp.Or(g.BaseURL, GoogleJWKURL) + url.PathEscape(issuer),
		HTTPClient:       g.Client,
		Algorithms:       rs256,
		RefreshInterval:  g.TTL,
		MinFetchInterval: g.MinRefresh,
	}, g.Now)
	if err != nil {
		return nil, fmt.Errorf("failed to set up the keys of %s: %w", issuer, err)
	}
	if g.sets == nil {
		g.sets = map[string]*token.KeySet{}
	}
	g.sets[issuer] = s
	return s, nil
}
