package auth

// This file: people, through Identity-Aware Proxy. IAP signs every request
// it forwards with an ES256 JWT in x-goog-iap-jwt-assertion; the unsigned
// x-goog-authenticated-user-* headers can be forged by anyone who reaches
// the backend around IAP, so only the signed assertion names the caller
// (docs/google-cloud.md §7, https://cloud.google.com/iap/docs/signed-headers-howto).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/lazyregexp"
	"github.com/jitpipeline/jit/internal/token"
)

const (
	// IAPHeader carries IAP's signed assertion.
	IAPHeader = "x-goog-iap-jwt-assertion"
	// IAPIssuer is the iss of every IAP assertion.
	IAPIssuer = "https://cloud.google.com/iap"
	// IAPKeysURL is IAP's public key set in JWK form.
	IAPKeysURL = "https://www.gstatic.com/iap/verify/public_key-jwk"
	// DefaultSkew is the clock skew IAP's documentation allows on exp and iat.
	DefaultSkew = 30 * time.Second
)

// The two audience forms we accept (docs/google-cloud.md §7): a backend service behind
// a load balancer, and IAP enabled directly on a Cloud Run service. App
// Engine's form is not accepted: the pipeline does not run there.
var (
	backendServiceAudRE = lazyregexp.New(`^/projects/[1-9][0-9]{0,19}/global/backendServices/[1-9][0-9]{0,19}$`)
	cloudRunAudRE       = lazyregexp.New(`^/projects/[1-9][0-9]{0,19}/locations/[a-z]+-[a-z]+[0-9]{1,2}/services/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// IAPConfig configures the IAP assertion verifier.
type IAPConfig struct {
	// Audiences are the accepted aud values, each exactly one of
	// /projects/NUMBER/global/backendServices/ID or
	// /projects/NUMBER/locations/REGION/services/NAME.
	Audiences []string

	// Exactly one key source: IAPKeysURL in production; a file or fixed
	// JWKS (or kid → PEM map) for tests and air-gapped runs.
	KeysURL    string
	KeysFile   string
	KeysJSON   []byte
	HTTPClient *http.Client

	Skew             time.Duration    // default DefaultSkew (30 s)
	Now              func() time.Time // default time.Now
	RefreshInterval  time.Duration    // key cache lifetime without max-age; default 1 h
	MinFetchInterval time.Duration    // least time between key fetches; default 30 s
}

// Validate reports every problem at once.
func (c IAPConfig) Validate() error {
	var errs []error
	if len(c.Audiences) == 0 {
		errs = append(errs, errors.New("production mode needs an IAP audience, or any IAP-signed assertion "+
			"for another application would be accepted: set it to /projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID "+
			"(IAP on a load balancer backend service, e.g. /projects/123456789012/global/backendServices/4567890123456789) or "+
			"/projects/PROJECT_NUMBER/locations/REGION/services/SERVICE_NAME "+
			"(IAP on Cloud Run, e.g. /projects/123456789012/locations/europe-west1/services/jit-api)"))
	}
	for _, a := range c.Audiences {
		if !backendServiceAudRE.MatchString(a) && !cloudRunAudRE.MatchString(a) {
			errs = append(errs, fmt.Errorf("IAP audience %q is neither /projects/NUMBER/global/backendServices/ID "+
				"nor /projects/NUMBER/locations/REGION/services/NAME", a))
		}
	}
	errs = append(errs, c.keySet().Validate()...)
	if c.Skew < 0 || c.Skew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("Skew %s is outside 0..5m", c.Skew))
	}
	return errors.Join(errs...)
}

func (c IAPConfig) keySet() token.KeySetConfig {
	return token.KeySetConfig{
		KeysURL: c.KeysURL, KeysFile: c.KeysFile, KeysJSON: c.KeysJSON, HTTPClient: c.HTTPClient,
		RefreshInterval: c.RefreshInterval, MinFetchInterval: c.MinFetchInterval,
		Algorithms: []jose.SignatureAlgorithm{jose.ES256},
	}
}

// IAP verifies IAP assertions. It is safe for concurrent use.
type IAP struct {
	audiences []string
	verifier  *token.Verifier
}

// Identity is a person IAP vouches for, with what the audit record keeps.
type Identity struct {
	Email        string // canonical (emailaddr), ASCII-lower-cased; the principal
	Subject      string // stable account id (sub)
	HostedDomain string // hd; empty for consumer accounts
	DeviceID     string // google.device_id, with context-aware access
	AccessLevels []string
	Audience     string
	IssuedAt     time.Time
	Expires      time.Time
}

// NewIAP validates cfg and builds the verifier; with KeysFile it reads the
// keys now, so a missing or garbled file stops the server at start.
func NewIAP(cfg IAPConfig) (*IAP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid IAP configuration: %w", err)
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys, err := token.NewKeySet(cfg.keySet(), cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("failed to load the IAP keys: %w", err)
	}
	v, err := token.New(token.Kind{
		Name: "IAP assertion", Algorithms: []jose.SignatureAlgorithm{jose.ES256},
		Issuers: []string{IAPIssuer}, Skew: cfg.Skew,
	}, keys, cfg.Now)
	if err != nil {
		return nil, err
	}
	return &IAP{audiences: cfg.Audiences, verifier: v}, nil
}

// Verify checks an assertion: form, ES256 signature by a known IAP key,
// issuer, audience, times, subject and email.
func (v *IAP) Verify(ctx context.Context, assertion string) (*Identity, error) {
	tok, err := v.verifier.Verify(ctx, assertion, v.audiences...)
	if err != nil {
		return nil, err
	}
	var rawEmail, hd string
	var google map[string]json.RawMessage
	for name, dst := range map[string]any{"email": &rawEmail, "hd": &hd, "google": &google} {
		if _, err := tok.Claim(name, dst); err != nil {
			return nil, err
		}
	}
	// Refused, not repaired: an address that only looks like someone's
	// (a trailing U+00A0, a dotted İ) must not become theirs.
	email, err := emailaddr.Canonical(rawEmail)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: email: %w", ErrClaims, err)
	case tok.Subject == "":
		return nil, fmt.Errorf("%w: no sub", ErrClaims)
	}
	id := &Identity{
		Email: email, Subject: tok.Subject, HostedDomain: hd, Audience: tok.Audience,
		IssuedAt: tok.IssuedAt, Expires: tok.Expires,
	}
	if raw, ok := google["device_id"]; ok {
		if err := json.Unmarshal(raw, &id.DeviceID); err != nil {
			return nil, fmt.Errorf("%w: google.device_id: %w", ErrMalformed, err)
		}
	}
	if raw, ok := google["access_levels"]; ok {
		if err := json.Unmarshal(raw, &id.AccessLevels); err != nil {
			return nil, fmt.Errorf("%w: google.access_levels: %w", ErrMalformed, err)
		}
	}
	return id, nil
}

// Identify verifies the request's IAP assertion. Two copies of the header
// are refused rather than one picked: IAP sends exactly one.
func (v *IAP) Identify(r *http.Request) (*Identity, error) {
	if vals := r.Header.Values(IAPHeader); len(vals) > 1 {
		return nil, fmt.Errorf("%w: %d %s headers", ErrMalformed, len(vals), IAPHeader)
	}
	return v.Verify(r.Context(), r.Header.Get(IAPHeader))
}

// Caller returns the verified email of the person behind the request; it
// satisfies api.Authenticator.
func (v *IAP) Caller(r *http.Request) (string, error) {
	id, err := v.Identify(r)
	if err != nil {
		if errors.Is(err, ErrMissing) {
			return "", fmt.Errorf("no %s header: the request did not come through Identity-Aware Proxy", IAPHeader)
		}
		return "", fmt.Errorf("invalid IAP assertion: %w", err)
	}
	return id.Email, nil
}
