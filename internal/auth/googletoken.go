package auth

// This file: services, through Google-signed ID tokens (Cloud Tasks and
// Pub/Sub push OIDC tokens, workflow HTTP calls). Google's idtoken package
// checks audience, expiry (with no skew) and signature only (docs/google-cloud.md §7);
// this verifier also checks the issuer and iat, parses as strictly as the
// IAP verifier, and can take its keys from a file or fixed JWKS, so the
// embedded pipeline verifies localoidc tokens with this same code.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jitpipeline/jit/internal/token"
)

// GoogleCertsURL is Google's ID token signing key set (JWKS).
const GoogleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"

// googleIssuers are the iss values of Google ID tokens (docs/google-cloud.md §7).
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

func (c GoogleConfig) keySet() token.KeySetConfig {
	src := token.KeySetConfig{
		KeysURL: c.KeysURL, KeysFile: c.KeysFile, KeysJSON: c.KeysJSON, HTTPClient: c.HTTPClient,
		RefreshInterval: c.RefreshInterval, MinFetchInterval: c.MinFetchInterval,
		Algorithms: []jose.SignatureAlgorithm{jose.RS256},
	}
	if src.KeysURL == "" && src.KeysFile == "" && len(src.KeysJSON) == 0 {
		src.KeysURL = GoogleCertsURL
	}
	return src
}

// Validate reports every problem at once.
func (c GoogleConfig) Validate() error {
	errs := c.keySet().Validate()
	if c.Skew < 0 || c.Skew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("Skew %s is outside 0..5m", c.Skew))
	}
	return errors.Join(errs...)
}

// Google verifies Google-signed (RS256) ID tokens. It implements
// TokenVerifier and is safe for concurrent use.
type Google struct{ verifier *token.Verifier }

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
	keys, err := token.NewKeySet(cfg.keySet(), cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("failed to load the Google ID token keys: %w", err)
	}
	v, err := token.New(token.Kind{
		Name: "Google ID token", Algorithms: []jose.SignatureAlgorithm{jose.RS256},
		Issuers: googleIssuers, Skew: cfg.Skew,
	}, keys, cfg.Now)
	if err != nil {
		return nil, err
	}
	return &Google{verifier: v}, nil
}

// Verify implements TokenVerifier, with a 10 s bound on any key fetch.
func (g *Google) Verify(token, audience string) (*Claims, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	return g.VerifyContext(ctx, token, audience)
}

// VerifyContext checks form, RS256 signature by a known key, issuer,
// audience (exact; an empty audience is refused, unlike idtoken, which then
// skips the check), times and sub. Email, email_verified and the allow-list
// are the caller's (Service.Check).
func (g *Google) VerifyContext(ctx context.Context, raw, audience string) (*Claims, error) {
	if audience == "" {
		return nil, fmt.Errorf("%w: no audience to check against", ErrAudience)
	}
	tok, err := g.verifier.Verify(ctx, raw, audience)
	if err != nil {
		return nil, err
	}
	c := &Claims{
		Issuer: tok.Issuer, Audience: tok.Audience, Subject: tok.Subject,
		IssuedAt: tok.IssuedAt.Unix(), Expires: tok.Expires.Unix(),
	}
	for name, dst := range map[string]any{"azp": &c.AuthorizedBy, "email": &c.Email, "email_verified": &c.EmailVerified} {
		if _, err := tok.Claim(name, dst); err != nil {
			return nil, err
		}
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", ErrClaims)
	}
	return c, nil
}
