// Package auth authenticates the pipeline's callers. This file: services
// (Cloud Tasks, Pub/Sub push, workflow callbacks) presenting Google-style
// ID tokens. The token's signature, issuer, audience and expiry are
// checked by the verifier; the email, email_verified and the allow-list of
// service accounts per entry point are checked here, because Google's
// idtoken package checks only audience, expiry and signature (docs/architecture.md §5).
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// Claims are the claims of a verified Google ID token that callers use.
type Claims struct {
	Issuer        string
	Audience      string
	AuthorizedBy  string // azp
	Subject       string
	Email         string
	EmailVerified bool
	IssuedAt      int64
	Expires       int64
}

// TokenVerifier checks an ID token for an audience and returns its claims.
// Google is the one implementation (fed the local token service's keys by
// the embedded pipeline); tests may have others.
type TokenVerifier interface {
	Verify(token, audience string) (*Claims, error)
}

// Service is an entry point's rule: who may call it, for which audience.
type Service struct {
	Verifier TokenVerifier
	Audience string
	Allowed  []string // service account emails
}

// Check authenticates a request and returns the caller's email.
func (s Service) Check(r *http.Request) (string, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return "", errors.New("missing bearer token")
	}
	if s.Verifier == nil {
		return "", errors.New("no token verifier configured for this endpoint")
	}
	c, err := s.Verifier.Verify(raw, s.Audience)
	if err != nil {
		return "", fmt.Errorf("invalid token: %w", err)
	}
	if c.Email == "" || !c.EmailVerified {
		return "", errors.New("token without a verified email")
	}
	// Allow-lists and audit records use the canonical form; a look-alike
	// of an allowed account is not that account.
	email, err := emailaddr.Canonical(c.Email)
	if err != nil {
		return "", fmt.Errorf("invalid token: %w", err)
	}
	if !slices.ContainsFunc(s.Allowed, func(a string) bool { return emailaddr.Equal(a, email) }) {
		return "", fmt.Errorf("%s may not call this endpoint", email)
	}
	return email, nil
}

// Middleware refuses requests that fail Check with 401 or 403.
func (s Service) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.Check(r); err != nil {
			code := http.StatusForbidden
			if strings.HasPrefix(err.Error(), "missing") || strings.HasPrefix(err.Error(), "invalid") {
				code = http.StatusUnauthorized
			}
			http.Error(w, err.Error(), code)
			return
		}
		next.ServeHTTP(w, r)
	})
}
