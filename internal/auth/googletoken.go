package auth

// This file: services, through Google-signed ID tokens (Cloud Tasks and
// Pub/Sub push OIDC tokens, workflow HTTP calls). Google's idtoken package
// checks audience, expiry (with no skew) and signature only (gcp-facts §7);
// this verifier also checks the issuer and iat, parses as strictly as the
// IAP verifier, and can take its keys from a file or fixed JWKS, so the
// embedded pipeline verifies localoidc tokens with this same code.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jitpipeline/jit/internal/localgcp/localoidc"
)

// GoogleCertsURL is Google's ID token signing key set (JWKS).
const GoogleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"

// googleIssuers are the iss values of Google ID tokens (gcp-facts §7).
var googleIssuers = []string{"https://accounts.google.com", "accounts.google.com"}

// GoogleConfig configures the Google ID token verifier.
type GoogleConfig struct {
	// At most one key source; none means GoogleCertsURL. KeysJSON takes
	// localoidc.Signer.JWKS() for the embedded pipeline's production-auth mode.
	KeysURL    string
	KeysFile   string
	KeysJSON   []byte
	HTTPClient *http.Client

	Skew             time.Duration    // default DefaultSkew (30 s)
	Now              func() time.Time // default time.Now
	RefreshInterval  time.Duration    // key cache lifetime without max-age; default 1 h
	MinFetchInterval time.Duration    // least time between key fetches; default 30 s
}

func (c GoogleConfig) keySource() keySourceConfig {
	src := keySourceConfig{
		KeysURL: c.KeysURL, KeysFile: c.KeysFile, KeysJSON: c.KeysJSON, HTTPClient: c.HTTPClient,
		RefreshInterval: c.RefreshInterval, MinFetchInterval: c.MinFetchInterval,
	}
	if src.KeysURL == "" && src.KeysFile == "" && len(src.KeysJSON) == 0 {
		src.KeysURL = GoogleCertsURL
	}
	return src
}

// Validate reports every problem at once.
func (c GoogleConfig) Validate() error {
	errs := c.keySource().validate()
	if c.Skew < 0 || c.Skew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("Skew %s is outside 0..5m", c.Skew))
	}
	return errors.Join(errs...)
}

// Google verifies Google-signed (RS256) ID tokens. It implements
// TokenVerifier and is safe for concurrent use.
type Google struct {
	skew time.Duration
	now  func() time.Time
	keys *keySource
}

// NewGoogle validates cfg and builds the verifier; with KeysFile or
// KeysJSON it parses the keys now, so bad keys stop the server at start.
func NewGoogle(cfg GoogleConfig) (*Google, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid Google token verifier configuration: %w", err)
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys, err := newKeySource(cfg.keySource(), cfg.Now, parseRSAKeys)
	if err != nil {
		return nil, fmt.Errorf("failed to load the Google ID token keys: %w", err)
	}
	return &Google{skew: cfg.Skew, now: cfg.Now, keys: keys}, nil
}

// googleClaims are the claims of a Google ID token that we read.
type googleClaims struct {
	stdClaims
	AuthorizedBy  string `json:"azp"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
}

// Verify implements TokenVerifier, with a 10 s bound on any key fetch.
func (g *Google) Verify(token, audience string) (*localoidc.Claims, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	return g.VerifyContext(ctx, token, audience)
}

// VerifyContext checks form, RS256 signature by a known key, issuer,
// audience (exact; an empty audience is refused, unlike idtoken, which then
// skips the check), times and sub. Email, email_verified and the allow-list
// are the caller's (Service.Check).
func (g *Google) VerifyContext(ctx context.Context, token, audience string) (*localoidc.Claims, error) {
	if audience == "" {
		return nil, fmt.Errorf("%w: no audience to check against", ErrAudience)
	}
	var c googleClaims
	if err := verifySigned(ctx, g.keys, token, "RS256", verifyRS256, &c); err != nil {
		return nil, err
	}
	aud, err := c.check(googleIssuers, []string{audience}, g.now(), g.skew)
	if err != nil {
		return nil, err
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", ErrClaims)
	}
	return &localoidc.Claims{
		Issuer: c.Issuer, Audience: aud, AuthorizedBy: c.AuthorizedBy, Subject: c.Subject,
		Email: c.Email, EmailVerified: c.EmailVerified, IssuedAt: *c.IssuedAt, Expires: *c.Expires,
	}, nil
}
