package envelope

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
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
// tests, and the local pipeline with localoidc.Signer.JWKS().
type StaticKeys map[string][]byte

// Keys returns the issuer's JWKS, or ErrUnknownIssuer.
func (s StaticKeys) Keys(_ context.Context, issuer string) ([]byte, error) {
	jwks, ok := s[emailaddr.Key(issuer)]
	if !ok {
		return nil, fmt.Errorf("%s: %w", issuer, ErrUnknownIssuer)
	}
	return jwks, nil
}

// GoogleJWKURL is where Google publishes a service account's public keys
// as a JWKS, followed by the email (signJwt reference, keyId field).
const GoogleJWKURL = "https://www.googleapis.com/service_accounts/v1/metadata/jwk/"

// GoogleKeys is a KeySource for Google service accounts: it fetches
// BaseURL+email and caches each answer for TTL. A kid missing from the
// cached set triggers one refetch (Refresh), at most every MinRefresh per
// issuer, so garbage kids cannot make it hammer Google.
type GoogleKeys struct {
	Client     *http.Client     // nil means http.DefaultClient
	BaseURL    string           // "" means GoogleJWKURL
	TTL        time.Duration    // 0 means 1 h
	MinRefresh time.Duration    // 0 means 30 s
	Now        func() time.Time // nil means time.Now

	mu    sync.Mutex
	cache map[string]cachedKeys
}

type cachedKeys struct {
	jwks    []byte
	fetched time.Time
}

// maxJWKS bounds a key set response.
const maxJWKS = 256 << 10

// Keys returns the issuer's JWKS, from the cache while it is fresh.
func (g *GoogleKeys) Keys(ctx context.Context, issuer string) ([]byte, error) {
	now := g.now()
	g.mu.Lock()
	c, ok := g.cache[issuer]
	g.mu.Unlock()
	if ok && now.Sub(c.fetched) < g.ttl() {
		return c.jwks, nil
	}
	return g.fetch(ctx, issuer, now)
}

// Refresh refetches the issuer's JWKS unless it was fetched less than
// MinRefresh ago.
func (g *GoogleKeys) Refresh(ctx context.Context, issuer string) ([]byte, error) {
	now := g.now()
	g.mu.Lock()
	c, ok := g.cache[issuer]
	g.mu.Unlock()
	minRefresh := g.MinRefresh
	if minRefresh == 0 {
		minRefresh = 30 * time.Second
	}
	if ok && now.Sub(c.fetched) < minRefresh {
		return c.jwks, nil
	}
	return g.fetch(ctx, issuer, now)
}

func (g *GoogleKeys) fetch(ctx context.Context, issuer string, now time.Time) ([]byte, error) {
	base := g.BaseURL
	if base == "" {
		base = GoogleJWKURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+url.PathEscape(issuer), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build the key request: %w", err)
	}
	client := g.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch the keys of %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("failed to read the keys of %s: %w", issuer, err)
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", issuer, ErrUnknownIssuer)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("failed to fetch the keys of %s: HTTP %d", issuer, resp.StatusCode)
	case len(body) > maxJWKS:
		return nil, errors.New("failed to fetch keys: the key set is too large")
	}
	g.mu.Lock()
	if g.cache == nil {
		g.cache = map[string]cachedKeys{}
	}
	g.cache[issuer] = cachedKeys{jwks: body, fetched: now}
	g.mu.Unlock()
	return body, nil
}

func (g *GoogleKeys) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *GoogleKeys) ttl() time.Duration {
	if g.TTL == 0 {
		return time.Hour
	}
	return g.TTL
}
